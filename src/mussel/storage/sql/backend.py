"""``SqlBackend``: cells and metadata in a PostgreSQL-compatible database (psycopg 3).

Schema (created idempotently on open; ``mussel_schema`` holds its version):

* ``mussel_cells(table_id, pk, sk, its, tomb, epoch, value)``, primary key
  ``(table_id, pk, sk, its)`` where ``its = -1 - ts`` (the bitwise NOT of ts): the
  index's ascending order is the store's order, pk and sk bytewise ascending (bytea
  compares like ``memcmp``), versions newest first. One row per stored version;
  ``tomb`` marks a tombstone; ``epoch`` is the table epoch the version was applied in.
* ``mussel_meta(key, value)``: the metadata items (the catalog).
* ``mussel_positions(part, next_offset)``: applied log positions.
* ``mussel_stats(table_id, slot, cells, bytes)``: approximate per-table counters kept
  by ``apply`` and the sweeps (several slots so concurrent replayers rarely wait on
  one counter row), summed by ``table_stats``.
* ``mussel_jobs``, ``mussel_job_tasks``: distributed bulk-load jobs and their
  subtasks (``jobs.py``).

Every read is SQL over the primary-key index that fetches candidate versions in index
order (table id, pk and sk bounds and the keyset of pagination pushed down) and
leaves visibility to ``storage/versions.py``, like every backend: rows come in chunks
until the page is full. A read that needs one chunk is one statement (its own
snapshot); a read that needs more runs again inside one ``REPEATABLE READ`` read-only
transaction, so every read sees one consistent view.

Threading: a ``psycopg_pool.ConnectionPool``; any number of threads may call any
method. Connections are in autocommit mode, and every multi-statement step is an
explicit transaction.

Dialects (``dialect.py``): PostgreSQL is tested; CockroachDB and YugabyteDB are
written from their documentation and untested here.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool

from mussel.codec.keys import data_key, decode_data_key, prefix_end
from mussel.errors import ConflictError, CorruptionError, FencedError
from mussel.model import OP_DELETE, Cell, Mutation, ScanCell
from mussel.storage.base import (
    RANGE_DELETE_MIN,
    RowQuery,
    ScanQuery,
    SkRange,
    SweepDeleted,
    SweepPage,
    TableStats,
)
from mussel.storage.sql.dialect import (
    CELLS,
    Dialect,
    dialect_by_name,
    dialect_from_version,
    split_dialect_from_url,
)
from mussel.storage.sql.errors import is_retryable, map_sql_errors
from mussel.storage.sql.ingest import SqlIngest
from mussel.storage.sql.jobs import JOB_TABLES_DDL
from mussel.storage.sql.partitions import PARTITIONS_DDL, Partitions
from mussel.storage.sweep import SweepCollector
from mussel.storage.versions import (
    ReadFilter,
    Visibility,
    page_versions,
    removable_versions,
    visible_versions,
)

__all__ = ["SCHEMA_VERSION", "SqlBackend"]

SCHEMA_VERSION = 1
_STATS_SLOTS = 16
_APPLY_CHUNK = 2000  # rows per upsert statement
_APPLY_CHUNK_BYTES = 16 << 20  # ... and at most about this many bytes of values
_MAX_CHUNK = 8000
_RETRIES = 8

_Stored = tuple[int, bool, int, bytes]
_Row = tuple[Any, ...]


def _its(ts: int) -> int:
    return -1 - ts


def _hex_md5(value: bytes) -> str:
    return hashlib.md5(value, usedforsecurity=False).hexdigest()


def _chunked(batch: Sequence[Mutation]) -> Iterator[Sequence[Mutation]]:
    """Slices of at most ``_APPLY_CHUNK`` mutations and about ``_APPLY_CHUNK_BYTES``."""
    start = size = 0
    for i, m in enumerate(batch):
        size += len(m.value) + len(m.pk) + len(m.sk)
        if i + 1 - start >= _APPLY_CHUNK or size >= _APPLY_CHUNK_BYTES:
            yield batch[start : i + 1]
            start, size = i + 1, 0
    if start < len(batch):
        yield batch[start:]


def _sweep_token(tomb: bool, epoch: int, md5_hex: str) -> bytes:
    """A candidate's token: (tombstone, epoch, md5 of the value)."""
    return bytes((int(tomb),)) + epoch.to_bytes(4, "big") + bytes.fromhex(md5_hex)


class _RunChanged(Exception):
    """A run's range delete did not find exactly the run: undo it."""


class _NeedMore(Exception):
    """A one-statement read found its chunk full: run it again in a transaction."""


class SqlBackend:
    """The distributed backend. ``url``: ``postgresql://...`` (or ``cockroachdb://``,
    ``yugabytedb://``, or ``?dialect=``; otherwise detected with ``SELECT version()``).

    ``eventual_reads=True`` makes every read of this instance eventual (served by a
    follower on CockroachDB/YugabyteDB; the same as strong on PostgreSQL);
    ``eventual()`` returns such a view sharing this instance's pool.
    """

    def __init__(
        self,
        url: str,
        *,
        dialect: str | Dialect | None = None,
        pool_size: int = 8,
        eventual_reads: bool = False,
        connect_timeout_s: float = 10.0,
        acquire_timeout_s: float = 2.0,
        stats_cache_s: float = 0.0,
    ) -> None:
        conninfo, named = split_dialect_from_url(url)
        if isinstance(dialect, str):
            dialect = dialect_by_name(dialect)
        elif dialect is None and named is not None:
            dialect = dialect_by_name(named)
        self._eventual = eventual_reads
        self._stats_ttl = stats_cache_s
        self._stats_cache: dict[int, tuple[float, TableStats]] = {}
        self._closed = False
        self._owner = True
        self._stats_slot = itertools.count()
        with map_sql_errors("connect"):  # (opened below: closed again if that fails)
            self._pool = psycopg_pool.ConnectionPool(
                conninfo,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs={"autocommit": True},
                # a call waits this long for a connection, then fails (503): while
                # the database is away, requests fail fast instead of piling up
                timeout=acquire_timeout_s,
                name="mussel-sql",
                open=False,
            )
        try:
            with map_sql_errors("connect"):
                self._pool.open(wait=True, timeout=connect_timeout_s)
            if dialect is None:
                with map_sql_errors("connect"), self._conn() as conn:
                    row = conn.execute("SELECT version()").fetchone()
                dialect = dialect_from_version(str(row[0]) if row else "")
            self.dialect: Dialect = dialect
            self.partitions = Partitions(self._conn)
            self._create_schema()
            if dialect.partitioned:
                self.partitions.load()
        except BaseException:
            self._pool.close()
            raise

    def eventual(self) -> SqlBackend:
        """A view of this backend whose reads are eventual (shares the pool; closing
        the view does nothing)."""
        view = object.__new__(SqlBackend)
        view.__dict__.update(self.__dict__)
        view._eventual = True
        view._owner = False
        return view

    @property
    def staleness_ms(self) -> int:
        """Upper estimate of how stale this instance's reads may be."""
        return self.dialect.eventual_staleness_ms if self._eventual else 0

    # -- plumbing -----------------------------------------------------------

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn:
            yield conn

    def _write_tx(
        self, what: str, body: Callable[[psycopg.Cursor[Any]], Any], *, serializable: bool = False
    ) -> Any:
        """Run ``body`` in one transaction, again on a serialization failure/deadlock."""
        with map_sql_errors(what):
            for attempt in itertools.count():
                try:
                    with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
                        if serializable:
                            cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                        return body(cur)
                except psycopg.Error as exc:
                    if not is_retryable(exc):
                        raise
                    if attempt + 1 < _RETRIES:
                        time.sleep(random.uniform(0, 0.002 * 2**attempt))
                        continue
                    if serializable:  # a compare-and-set that kept losing races
                        raise ConflictError(
                            f"{what}: concurrent writers kept changing the same items"
                        ) from exc
                    raise
        raise AssertionError("unreachable")

    def _create_schema(self) -> None:
        statements = [
            "CREATE TABLE IF NOT EXISTS mussel_schema ("
            " id integer PRIMARY KEY, version integer NOT NULL)",
            self.dialect.cells_ddl(),
            "CREATE TABLE IF NOT EXISTS mussel_meta (key bytea PRIMARY KEY, value bytea NOT NULL)",
            "CREATE TABLE IF NOT EXISTS mussel_positions ("
            " part integer PRIMARY KEY, next_offset bigint NOT NULL)",
            "CREATE TABLE IF NOT EXISTS mussel_stats ("
            " table_id integer NOT NULL, slot integer NOT NULL,"
            " cells bigint NOT NULL, bytes bigint NOT NULL,"
            " PRIMARY KEY (table_id, slot))",
            "CREATE TABLE IF NOT EXISTS mussel_rate_buckets ("
            " key text PRIMARY KEY, tokens float8 NOT NULL, at float8 NOT NULL,"
            " granted integer NOT NULL)",
            *JOB_TABLES_DDL,
            PARTITIONS_DDL,
        ]

        def create(cur: psycopg.Cursor[Any]) -> int:
            for stmt in statements:
                cur.execute(stmt)
            cur.execute(
                "INSERT INTO mussel_schema (id, version) VALUES (1, %s) ON CONFLICT DO NOTHING",
                (SCHEMA_VERSION,),
            )
            row = cur.execute("SELECT version FROM mussel_schema WHERE id = 1").fetchone()
            return int(row[0]) if row else SCHEMA_VERSION

        for attempt in range(_RETRIES):
            try:
                version = self._write_tx("create schema", create)
                break
            except CorruptionError:  # two processes creating the tables at once
                if attempt + 1 == _RETRIES:
                    raise
        if version > SCHEMA_VERSION:
            raise CorruptionError(
                f"the database holds Mussel schema version {version}; this version of "
                f"Mussel knows up to {SCHEMA_VERSION}: upgrade Mussel"
            )

    # -- writes ---------------------------------------------------------------

    def apply(
        self,
        mutations: Sequence[Mutation],
        epochs: Mapping[int, int],
        positions: Mapping[int, int],
        *,
        expect: Mapping[int, int] | None = None,
    ) -> None:
        """One transaction: batched upserts of the versions, the counters and the
        positions. ``expect`` (partition -> first offset of this batch) fences off a
        replayer that lost its partition: ``FencedError`` if a stored position is
        greater, checked under ``SELECT ... FOR UPDATE`` in the same transaction."""
        # The last of equal (table, pk, sk, ts) wins: an upsert may not touch one row
        # twice, and the later acknowledged write is the one to keep.
        last: dict[tuple[int, bytes, bytes, int], Mutation] = {}
        for m in mutations:
            if m.table_id in epochs:
                last[(m.table_id, m.pk, m.sk, m.ts)] = m
        batch = sorted(last.values(), key=lambda m: (m.table_id, m.pk, m.sk, -m.ts))
        counts: dict[int, list[int]] = {}
        for m in batch:
            c = counts.setdefault(m.table_id, [0, 0])
            c[0] += 1
            c[1] += len(m.pk) + len(m.sk) + 8 + len(m.value)
        if not batch and not positions and not expect:
            return
        slot = next(self._stats_slot) % _STATS_SLOTS

        def body(cur: psycopg.Cursor[Any]) -> None:
            if expect:
                self._fence(cur, expect)
            for chunk in _chunked(batch):
                cur.execute(
                    f"INSERT INTO {CELLS} (table_id, pk, sk, its, tomb, epoch, value)"
                    " SELECT * FROM unnest(%b::int4[], %b::bytea[], %b::bytea[],"
                    " %b::int8[], %b::bool[], %b::int4[], %b::bytea[])"
                    " ON CONFLICT (table_id, pk, sk, its) DO UPDATE SET"
                    " tomb = excluded.tomb, epoch = excluded.epoch, value = excluded.value",
                    (
                        [m.table_id for m in chunk],
                        [m.pk for m in chunk],
                        [m.sk for m in chunk],
                        [-1 - m.ts for m in chunk],
                        [m.op == OP_DELETE for m in chunk],
                        [epochs[m.table_id] for m in chunk],
                        [m.value for m in chunk],
                    ),
                )
            if counts:
                self._count(cur, slot, {t: (c[0], c[1]) for t, c in counts.items()})
            if positions:
                parts = sorted(positions)
                cur.execute(
                    "INSERT INTO mussel_positions (part, next_offset)"
                    " SELECT * FROM unnest(%b::int4[], %b::int8[])"
                    " ON CONFLICT (part) DO UPDATE SET next_offset = excluded.next_offset",
                    (parts, [positions[p] for p in parts]),
                )

        self.write_rows_tx("apply", counts, body)
        self.forget_stats(counts)

    def write_rows_tx(
        self, what: str, table_ids: Collection[int], body: Callable[[psycopg.Cursor[Any]], Any]
    ) -> Any:
        """``body`` in one transaction (as ``_write_tx``), for a body that inserts rows
        of ``table_ids``: their partitions are made first. If another process dropped
        one meanwhile (the insert finds no partition), it is made again and ``body``
        runs once more."""
        self.partitions.ensure(table_ids)
        try:
            return self._write_tx(what, body)
        except CorruptionError as exc:
            if not self.partitions.active or not isinstance(
                exc.__cause__, psycopg.errors.CheckViolation
            ):
                raise
        self.partitions.forget(table_ids)
        self.partitions.ensure(table_ids)
        return self._write_tx(what, body)

    @staticmethod
    def _fence(cur: psycopg.Cursor[Any], expect: Mapping[int, int]) -> None:
        parts = sorted(expect)
        # Rows first, so that two replayers of a new partition also serialize on it.
        cur.execute(
            "INSERT INTO mussel_positions (part, next_offset)"
            " SELECT p, 0 FROM unnest(%b::int4[]) AS t(p) ON CONFLICT (part) DO NOTHING",
            (parts,),
        )
        cur.execute(
            "SELECT part, next_offset FROM mussel_positions WHERE part = ANY(%b::int4[])"
            " ORDER BY part FOR UPDATE",
            (parts,),
        )
        for part, stored in cur.fetchall():
            if stored > expect[part]:
                raise FencedError(
                    f"partition {part} was applied up to offset {stored} by another "
                    f"replayer; this batch starts at {expect[part]}"
                )

    @staticmethod
    def _count(cur: psycopg.Cursor[Any], slot: int, deltas: Mapping[int, tuple[int, int]]) -> None:
        tids = sorted(deltas)
        cur.execute(
            "INSERT INTO mussel_stats (table_id, slot, cells, bytes)"
            " SELECT t, %s, c, b FROM unnest(%b::int4[], %b::int8[], %b::int8[]) AS d(t, c, b)"
            " ON CONFLICT (table_id, slot) DO UPDATE SET"
            " cells = mussel_stats.cells + excluded.cells,"
            " bytes = mussel_stats.bytes + excluded.bytes",
            (slot, tids, [deltas[t][0] for t in tids], [deltas[t][1] for t in tids]),
        )

    def applied_positions(self) -> dict[int, int]:
        with map_sql_errors("read positions"), self._conn() as conn:
            rows = conn.execute("SELECT part, next_offset FROM mussel_positions").fetchall()
        return {int(p): int(o) for p, o in rows}

    def sync(self) -> None:
        """Nothing to do: every ``apply`` is a committed transaction."""
        return None

    def drop_table_data(self, table_id: int) -> None:
        """Drop the table's partitions (PostgreSQL), or delete its versions in chunks
        of 10,000 (short transactions)."""
        dropped = self.partitions.drop(table_id)
        with map_sql_errors("drop table"), self._conn() as conn:
            while not dropped:
                cur = conn.execute(
                    f"DELETE FROM {CELLS} WHERE (table_id, pk, sk, its) IN ("
                    f" SELECT table_id, pk, sk, its FROM {CELLS} WHERE table_id = %s"
                    " LIMIT 10000)",
                    (table_id,),
                )
                if cur.rowcount <= 0:
                    break
            conn.execute("DELETE FROM mussel_stats WHERE table_id = %s", (table_id,))
        self.forget_stats((table_id,))

    # -- reads ----------------------------------------------------------------

    def _point_query(self, sql: str, params: Sequence[object]) -> list[_Row]:
        """One read statement (its own snapshot)."""
        with map_sql_errors("read"), self._conn() as conn:
            if self._eventual and self.dialect.eventual_needs_tx:
                with conn.transaction():
                    for stmt in self.dialect.begin_read(True):
                        conn.execute(stmt)
                    return conn.execute(sql, params, binary=True).fetchall()
            return conn.execute(sql, params, binary=True).fetchall()

    def _paged(
        self,
        run: Callable[[Callable[[str, Sequence[object]], list[_Row]]], Any],
    ) -> Any:
        """Run a chunked read: first with one statement allowed (autocommit); if it
        needs a second chunk, again inside one repeatable-read transaction."""
        with map_sql_errors("read"), self._conn() as conn:
            if not (self._eventual and self.dialect.eventual_needs_tx):
                first = True

                def once(sql: str, params: Sequence[object]) -> list[_Row]:
                    nonlocal first
                    if not first:
                        raise _NeedMore
                    first = False
                    return conn.execute(sql, params, binary=True).fetchall()

                try:
                    return run(once)
                except _NeedMore:
                    pass
            with conn.transaction():
                for stmt in self.dialect.begin_read(self._eventual):
                    conn.execute(stmt)
                return run(lambda sql, params: conn.execute(sql, params, binary=True).fetchall())

    def _chunks(
        self,
        fetch: Callable[[str, Sequence[object]], list[_Row]],
        cols: str,
        where: str,
        params: Sequence[object],
        key_cols: Sequence[str],
        chunk: int,
    ) -> Iterator[_Row]:
        """Rows of ``cols`` (the key columns last) matching ``where`` in key order,
        fetched ``chunk`` rows at a time with keyset pagination."""
        order = ", ".join(key_cols)
        keyset = f"({order}) > ({', '.join(['%s'] * len(key_cols))})"
        sql0 = f"SELECT {cols} FROM {CELLS} WHERE {where} ORDER BY {order} LIMIT %s"
        sqln = f"SELECT {cols} FROM {CELLS} WHERE {where} AND {keyset} ORDER BY {order} LIMIT %s"
        nkey = len(key_cols)
        rows = fetch(sql0, [*params, chunk])
        while True:
            yield from rows
            if len(rows) < chunk:
                return
            last = rows[-1][-nkey:]
            chunk = min(chunk * 2, _MAX_CHUNK)
            rows = fetch(sqln, [*params, *last, chunk])

    @staticmethod
    def _first_chunk(limit: int, rf: ReadFilter, vis: Visibility) -> int:
        return max(
            32, min(_MAX_CHUNK, (limit + 1) * max(1, min(rf.versions, vis.max_versions)) + 16)
        )

    @staticmethod
    def _sk_where(sks: SkRange, after_sk: bytes | None) -> tuple[list[str], list[object]]:
        conds: list[str] = []
        params: list[object] = []
        lo: bytes | None = None
        hi: bytes | None = None
        if sks.sk is not None:
            conds.append("sk = %s")
            params.append(sks.sk)
        if sks.prefix is not None:
            lo = sks.prefix
            hi = prefix_end(sks.prefix)
        if sks.start is not None and (lo is None or sks.start > lo):
            lo = sks.start
        if after_sk is not None and (lo is None or after_sk > lo):
            lo = after_sk
        if sks.end is not None and (hi is None or sks.end < hi):
            hi = sks.end
        if lo is not None:
            conds.append("sk >= %s")
            params.append(lo)
        if hi is not None:
            conds.append("sk < %s")
            params.append(hi)
        return conds, params

    def read_row(
        self, table_id: int, vis: Visibility, pk: bytes, q: RowQuery
    ) -> tuple[list[Cell], bool]:
        if q.sks.sk is not None and q.after is None and q.limit >= q.rf.versions:
            if not q.sks.admits(q.sks.sk):  # an exact sk outside the other bounds
                return [], False
            return self.get_cell(table_id, vis, pk, q.sks.sk, q.rf), False
        conds, params = self._sk_where(q.sks, None if q.after is None else q.after[0])
        where = " AND ".join(["table_id = %s", "pk = %s", *conds])
        chunk = self._first_chunk(q.limit, q.rf, vis)

        def run(fetch: Callable[[str, Sequence[object]], list[_Row]]) -> tuple[list[Cell], bool]:
            rows = self._chunks(
                fetch,
                "tomb, epoch, value, sk, its",
                where,
                [table_id, pk, *params],
                ("sk", "its"),
                chunk,
            )
            groups = (
                (sk, [(-1 - r[4], r[0], r[1], r[2]) for r in grp])
                for sk, grp in itertools.groupby(rows, key=lambda r: bytes(r[3]))
            )
            page, more = page_versions(groups, vis, q.rf, q.limit, q.after)
            return [Cell(sk, ts, value) for sk, ts, value in page], more

        result: tuple[list[Cell], bool] = self._paged(run)
        return result

    def get_cell(
        self, table_id: int, vis: Visibility, pk: bytes, sk: bytes, rf: ReadFilter
    ) -> list[Cell]:
        if rf.versions == 1 and rf.unfiltered and not vis.uses_epochs:
            cell = self.get_latest(table_id, pk, sk, vis.expired_before_us)
            return [] if cell is None else [cell]
        rows = self._point_query(
            f"SELECT its, tomb, epoch, value FROM {CELLS}"
            " WHERE table_id = %s AND pk = %s AND sk = %s ORDER BY its",
            (table_id, pk, sk),
        )
        found = visible_versions(((-1 - r[0], r[1], r[2], r[3]) for r in rows), vis, rf)
        return [Cell(sk, ts, value) for ts, value in found]

    def get_latest(
        self, table_id: int, pk: bytes, sk: bytes, expired_before_us: int | None
    ) -> Cell | None:
        """One indexed statement: the newest stored version decides alone."""
        rows = self._point_query(
            f"SELECT its, tomb, value FROM {CELLS}"
            " WHERE table_id = %s AND pk = %s AND sk = %s ORDER BY its LIMIT 1",
            (table_id, pk, sk),
        )
        if not rows:
            return None
        its, tomb, value = rows[0]
        ts = -1 - its
        if tomb or (expired_before_us is not None and ts < expired_before_us):
            return None
        return Cell(sk, ts, value)

    def multi_get(
        self,
        table_id: int,
        vis: Visibility,
        keys: Sequence[tuple[bytes, bytes | None]],
        rf: ReadFilter,
        limit_per_key: int,
    ) -> list[list[Cell]]:
        """Two statements at most (one for cells, one for whole rows), each an
        ``unnest ... WITH ORDINALITY`` joined LATERALly with the index, at most
        ``cap`` stored versions per key. A key whose versions fill its cap (a row with
        very many cells or versions) is read again alone, with ``read_row``."""
        out: list[list[Cell]] = [[] for _ in keys]
        cap = max(64, 4 * limit_per_key * max(1, min(rf.versions, vis.max_versions)))
        cell_keys = [(i, pk, sk) for i, (pk, sk) in enumerate(keys) if sk is not None]
        row_keys = [(i, pk) for i, (pk, sk) in enumerate(keys) if sk is None]
        redo: list[int] = []
        if cell_keys:
            rows = self._point_query(
                "SELECT k.i, c.sk, c.tomb, c.epoch, c.value, c.its"
                " FROM unnest(%b::int4[], %b::bytea[], %b::bytea[]) AS k(i, pk, sk)"
                f" CROSS JOIN LATERAL (SELECT sk, tomb, epoch, value, its FROM {CELLS}"
                "  WHERE table_id = %s AND pk = k.pk AND sk = k.sk ORDER BY its LIMIT %s) c"
                " ORDER BY k.i, c.its",
                (
                    [i for i, _, _ in cell_keys],
                    [pk for _, pk, _ in cell_keys],
                    [sk for _, _, sk in cell_keys],
                    table_id,
                    cap,
                ),
            )
            for i, grp in itertools.groupby(rows, key=lambda r: int(r[0])):
                versions = list(grp)
                if len(versions) >= cap:
                    redo.append(i)
                    continue
                sk = keys[i][1]
                assert sk is not None
                stored = [(-1 - r[5], r[2], r[3], r[4]) for r in versions]
                found = visible_versions(stored, vis, rf)[:limit_per_key]
                out[i] = [Cell(sk, ts, value) for ts, value in found]
        if row_keys:
            rows = self._point_query(
                "SELECT k.i, c.sk, c.tomb, c.epoch, c.value, c.its"
                " FROM unnest(%b::int4[], %b::bytea[]) AS k(i, pk)"
                f" CROSS JOIN LATERAL (SELECT sk, tomb, epoch, value, its FROM {CELLS}"
                "  WHERE table_id = %s AND pk = k.pk ORDER BY sk, its LIMIT %s) c"
                " ORDER BY k.i, c.sk, c.its",
                ([i for i, _ in row_keys], [pk for _, pk in row_keys], table_id, cap),
            )
            for i, grp in itertools.groupby(rows, key=lambda r: int(r[0])):
                versions = list(grp)
                if len(versions) >= cap:
                    redo.append(i)
                    continue
                groups = (
                    (bytes(sk), [(-1 - r[5], r[2], r[3], r[4]) for r in g])
                    for sk, g in itertools.groupby(versions, key=lambda r: bytes(r[1]))
                )
                page, _ = page_versions(groups, vis, rf, limit_per_key, None)
                out[i] = [Cell(sk, ts, value) for sk, ts, value in page]
        for i in redo:
            pk, sk = keys[i]
            q = RowQuery(SkRange(sk=sk), rf, limit_per_key)
            out[i] = self.read_row(table_id, vis, pk, q)[0]
        return out

    @staticmethod
    def _pk_where(
        pk_start: bytes | None, pk_end: bytes | None, pk_prefix: bytes | None
    ) -> tuple[list[str], list[object]] | None:
        lo, hi = pk_start, pk_end
        if pk_prefix is not None:
            if lo is None or pk_prefix > lo:
                lo = pk_prefix
            p_end = prefix_end(pk_prefix)
            if p_end is not None and (hi is None or p_end < hi):
                hi = p_end
        if lo is not None and hi is not None and lo >= hi:
            return None
        conds: list[str] = []
        params: list[object] = []
        if lo is not None:
            conds.append("pk >= %s")
            params.append(lo)
        if hi is not None:
            conds.append("pk < %s")
            params.append(hi)
        return conds, params

    def scan(self, table_id: int, vis: Visibility, q: ScanQuery) -> tuple[list[ScanCell], bool]:
        bounds = self._pk_where(q.pk_start, q.pk_end, q.pk_prefix)
        if bounds is None:
            return [], False
        conds, params = bounds
        after = None
        if q.after is not None:
            a_pk, a_sk, a_ts = q.after
            conds.append("(pk, sk) >= (%s, %s)")
            params += [a_pk, a_sk]
            after = ((a_pk, a_sk), a_ts)
        where = " AND ".join(["table_id = %s", *conds])
        chunk = self._first_chunk(q.limit, q.rf, vis)

        def run(
            fetch: Callable[[str, Sequence[object]], list[_Row]],
        ) -> tuple[list[ScanCell], bool]:
            rows = self._chunks(
                fetch,
                "tomb, epoch, value, pk, sk, its",
                where,
                [table_id, *params],
                ("pk", "sk", "its"),
                chunk,
            )
            groups = (
                (key, [(-1 - r[5], r[0], r[1], r[2]) for r in grp])
                for key, grp in itertools.groupby(rows, key=lambda r: (bytes(r[3]), bytes(r[4])))
            )
            page, more = page_versions(groups, vis, q.rf, q.limit, after)
            return [ScanCell(pk, sk, ts, value) for (pk, sk), ts, value in page], more

        result: tuple[list[ScanCell], bool] = self._paged(run)
        return result

    def table_stats(self, table_id: int) -> TableStats:
        """Sum of the table's counter slots: one indexed statement. With
        ``stats_cache_s`` > 0 the answer is kept that long (quota checks call this for
        every table of a namespace at every write): this instance's own writes refresh
        it at once, other processes' writes show within ``stats_cache_s``. With 0 (the
        default) nothing is cached and every answer is current."""
        now = time.monotonic()
        if self._stats_ttl > 0:
            hit = self._stats_cache.get(table_id)
            if hit is not None and now - hit[0] < self._stats_ttl:
                return hit[1]
        rows = self._point_query(
            "SELECT coalesce(sum(cells), 0), coalesce(sum(bytes), 0) FROM mussel_stats"
            " WHERE table_id = %s",
            (table_id,),
        )
        n, b = rows[0] if rows else (0, 0)
        stats = TableStats(max(0, int(n)), max(0, int(b)))
        if self._stats_ttl > 0:
            self._stats_cache[table_id] = (now, stats)
        return stats

    def take_tokens(
        self, key: str, per_second: float, burst: float, want: int
    ) -> tuple[int, float]:
        """Take up to ``want`` whole tokens from the shared token bucket ``key`` (rate
        quotas across processes): ``(granted, tokens left)``. The bucket refills at
        ``per_second`` up to ``burst`` by the database's clock (one clock for every
        process, whatever machine it runs on) and starts full; one statement, the
        row lock serialising concurrent takers."""
        refilled = "least(%(burst)s, b.tokens + greatest(0, excluded.at - b.at) * %(rate)s)"
        grant = f"least(%(want)s, greatest(0, floor({refilled})))"
        rows = self._write_tx(
            "take rate tokens",
            lambda cur: cur.execute(
                "INSERT INTO mussel_rate_buckets AS b (key, tokens, at, granted)"
                " VALUES (%(key)s, %(burst)s - least(%(want)s, floor(%(burst)s)),"
                " extract(epoch FROM clock_timestamp()), least(%(want)s, floor(%(burst)s)))"
                f" ON CONFLICT (key) DO UPDATE SET tokens = {refilled} - {grant},"
                f" at = excluded.at, granted = {grant}"
                " RETURNING granted, tokens",
                {"key": key, "rate": per_second, "burst": burst, "want": want},
            ).fetchall(),
        )
        granted, left = rows[0]
        return int(granted), float(left)

    def forget_stats(self, table_ids: Iterable[int]) -> None:
        """Drop cached ``table_stats`` of tables this instance just changed."""
        for t in table_ids:
            self._stats_cache.pop(t, None)

    # -- expiration -----------------------------------------------------------

    def sweep_scan(
        self,
        table_id: int,
        vis: Visibility,
        start: tuple[bytes, bytes] | None,
        pk_end: bytes | None,
        max_versions: int,
        *,
        pending: frozenset[int] = frozenset(),
        tombstones_before_us: int | None = None,
        min_run: int = RANGE_DELETE_MIN,
    ) -> SweepPage:
        """Candidates' tokens are (tombstone, epoch, md5 of the value): ``sweep_delete``
        deletes a version only if all three still match (a version replaced since by a
        write with the same ts stays)."""
        conds = ["table_id = %s"]
        params: list[object] = [table_id]
        if start is not None:
            conds.append("(pk, sk) >= (%s, %s)")
            params += list(start)
        if pk_end is not None:
            conds.append("pk < %s")
            params.append(pk_end)
        where = " AND ".join(conds)
        chunk = max(64, min(_MAX_CHUNK, max_versions + 16))

        def run(fetch: Callable[[str, Sequence[object]], list[_Row]]) -> SweepPage:
            rows = self._chunks(
                fetch,
                "tomb, epoch, md5(value), octet_length(value), pk, sk, its",
                where,
                params,
                ("pk", "sk", "its"),
                chunk,
            )
            out = SweepCollector(min_run)
            for (pk, sk), grp in itertools.groupby(rows, key=lambda r: (bytes(r[4]), bytes(r[5]))):
                if out.examined >= max_versions:
                    return out.page((pk, sk))
                versions = list(grp)
                gone = removable_versions(
                    [(-1 - r[6], bool(r[0]), int(r[1])) for r in versions],
                    vis,
                    pending=pending,
                    tombstones_before_us=tombstones_before_us,
                )
                for r, g in zip(versions, gone, strict=True):
                    out.add(
                        data_key(table_id, pk, sk, -1 - r[6]),
                        _sweep_token(bool(r[0]), int(r[1]), r[2]),
                        len(pk) + len(sk) + 8 + int(r[3]),
                        g,
                    )
            return out.page(None)

        page: SweepPage = self._paged(run)
        return page

    def sweep_delete(
        self,
        table_id: int,
        candidates: Sequence[tuple[bytes, bytes]],
        runs: Sequence[tuple[int, int]] = (),
    ) -> SweepDeleted:
        """One transaction. Each run: one ``DELETE`` over its key range
        ``(pk, sk, its)`` from its first key to its last, in a savepoint, undone (and
        its candidates deleted one by one instead) if the rows it deleted are not
        exactly the run's keys with their tokens (a version written or replaced since,
        by any process: a rewrite being applied holds the row, and the delete sees
        its new version). The other candidates: one ``DELETE`` joined with their keys
        and tokens."""
        if not candidates:
            return SweepDeleted()
        slot = next(self._stats_slot) % _STATS_SLOTS

        def body(cur: psycopg.Cursor[Any]) -> SweepDeleted:
            removed = nbytes = ranges = 0
            single: list[tuple[bytes, bytes]] = []
            at = 0
            for i, j in runs:
                single.extend(candidates[at:i])
                at = j
                run = candidates[i:j]
                size = self._delete_run(cur, table_id, run) if run else None
                if size is None:
                    single.extend(run)
                    continue
                removed += len(run)
                nbytes += size
                ranges += 1
            single.extend(candidates[at:])
            if single:
                sizes = self._delete_each(cur, table_id, single)
                removed += len(sizes)
                nbytes += sum(sizes)
            if removed:
                self._count(cur, slot, {table_id: (-removed, -nbytes)})
            return SweepDeleted(removed, nbytes, ranges)

        result: SweepDeleted = self._write_tx("sweep delete", body)
        self.forget_stats((table_id,))
        return result

    @staticmethod
    def _delete_run(
        cur: psycopg.Cursor[Any], table_id: int, run: Sequence[tuple[bytes, bytes]]
    ) -> int | None:
        """Delete the run's key range if it holds exactly the run (its stored bytes),
        else undo and return None."""
        _, lo_pk, lo_sk, lo_ts = decode_data_key(run[0][0])
        _, hi_pk, hi_sk, hi_ts = decode_data_key(run[-1][0])
        try:
            with cur.connection.transaction():
                cur.execute(
                    f"DELETE FROM {CELLS} WHERE table_id = %s"
                    " AND (pk, sk, its) >= (%s, %s, %s) AND (pk, sk, its) <= (%s, %s, %s)"
                    " RETURNING pk, sk, its, tomb, epoch, md5(value),"
                    " octet_length(pk) + octet_length(sk) + 8 + octet_length(value)",
                    (table_id, lo_pk, lo_sk, -1 - lo_ts, hi_pk, hi_sk, -1 - hi_ts),
                )
                rows = sorted(cur.fetchall(), key=lambda r: (bytes(r[0]), bytes(r[1]), r[2]))
                got = [
                    (
                        data_key(table_id, bytes(r[0]), bytes(r[1]), -1 - r[2]),
                        _sweep_token(bool(r[3]), int(r[4]), r[5]),
                    )
                    for r in rows
                ]
                if got != list(run):
                    raise _RunChanged
                return sum(int(r[6]) for r in rows)
        except _RunChanged:
            return None

    @staticmethod
    def _delete_each(
        cur: psycopg.Cursor[Any], table_id: int, candidates: Sequence[tuple[bytes, bytes]]
    ) -> list[int]:
        """Delete each candidate still stored with its token; the sizes deleted."""
        decoded = []
        for key, token in candidates:
            _, pk, sk, ts = decode_data_key(key)
            decoded.append(
                (
                    pk,
                    sk,
                    -1 - ts,
                    bool(token[0]),
                    int.from_bytes(token[1:5], "big"),
                    token[5:].hex(),
                )
            )
        cur.execute(
            f"DELETE FROM {CELLS} AS c USING unnest(%b::bytea[], %b::bytea[], %b::int8[],"
            " %b::bool[], %b::int4[], %b::text[]) AS d(pk, sk, its, tomb, epoch, h)"
            " WHERE c.table_id = %s AND c.pk = d.pk AND c.sk = d.sk AND c.its = d.its"
            " AND c.tomb = d.tomb AND c.epoch = d.epoch AND md5(c.value) = d.h"
            " RETURNING octet_length(c.pk) + octet_length(c.sk) + 8 + octet_length(c.value)",
            ([list(col) for col in zip(*decoded, strict=True)] + [table_id]),
        )
        return [int(r[0]) for r in cur.fetchall()]

    def split_points(self, table_id: int, target_bytes: int) -> list[bytes]:
        """pks cutting the table into about ``table_stats`` bytes / ``target_bytes``
        ranges: from every pk of the index for tables up to 200,000 versions, from a
        ``TABLESAMPLE SYSTEM`` sample (PostgreSQL) above that."""
        stats = self.table_stats(table_id)
        n = stats.approx_bytes // max(1, target_bytes)
        if n < 2 or stats.approx_cells == 0:
            return []
        if stats.approx_cells > 200_000 and self.dialect.tablesample:
            # about 1,000 sampled versions of this table per range
            pct = min(100.0, 100.0 * 1000 * n / stats.approx_cells)
            rows = self._point_query(
                f"SELECT pk FROM {CELLS} TABLESAMPLE SYSTEM (%s) WHERE table_id = %s ORDER BY pk",
                (pct, table_id),
            )
        else:
            rows = self._point_query(
                f"SELECT pk FROM {CELLS} WHERE table_id = %s ORDER BY pk, sk, its",
                (table_id,),
            )
        pks = [bytes(r[0]) for r in rows]
        if len(pks) < 2:
            return []
        points: list[bytes] = []
        for k in range(1, n):
            pk = pks[min(len(pks) - 1, k * len(pks) // n)]
            if pk > pks[0] and (not points or pk > points[-1]):
                points.append(pk)
        return points

    def compact(self, table_id: int, pk_start: bytes | None, pk_end: bytes | None) -> None:
        """A no-op: the database reclaims deleted rows itself (PostgreSQL's autovacuum,
        CockroachDB's MVCC GC, YugabyteDB's compactions)."""
        return None

    def disk_bytes(self, table_id: int) -> int | None:
        """PostgreSQL: ``pg_total_relation_size`` (indexes and TOAST included) of the
        table's own partitions (``partitions.py``), or of the whole cells table in a
        database created unpartitioned (shared by every table). Deleted rows' space
        stays in the relation for reuse by later writes (autovacuum marks it free);
        PostgreSQL returns it to the file system only on ``VACUUM FULL`` (or when a
        plain ``VACUUM`` can truncate empty pages at the end), so a sweep's delta is
        usually zero. None on CockroachDB and YugabyteDB (no per-relation size)."""
        if self.dialect.name != "postgresql":
            return None
        if self.partitions.active:
            like = CELLS.replace("_", "\\_")
            rows = self._point_query(
                "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)"
                " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(%s)"
                " AND (c.relname = %s OR c.relname LIKE %s)",
                (CELLS, f"{CELLS}_t{int(table_id)}", f"{like}\\_t{int(table_id)}\\_%"),
            )
        else:
            rows = self._point_query(f"SELECT pg_total_relation_size('{CELLS}')", ())
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def presplit(self, table_id: int, pks: Sequence[bytes]) -> None:
        """Split the table's storage at each pk: its own range partitions on
        PostgreSQL (``partitions.py``), ``SPLIT AT`` on CockroachDB; nothing on
        YugabyteDB, which splits tablets itself (``dialect.py``)."""
        if self.partitions.active:
            self.partitions.presplit(table_id, pks)
            return
        stmts = self.dialect.presplit_statements(table_id, sorted(pks))
        if stmts:
            with map_sql_errors("presplit"), self._conn() as conn:
                for sql, params in stmts:
                    conn.execute(sql, params)

    # -- metadata -------------------------------------------------------------

    def meta_get(self, key: bytes) -> bytes | None:
        rows = self._point_query("SELECT value FROM mussel_meta WHERE key = %s", (key,))
        return bytes(rows[0][0]) if rows else None

    def meta_scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        end = prefix_end(prefix)
        if end is None:
            rows = self._point_query(
                "SELECT key, value FROM mussel_meta WHERE key >= %s ORDER BY key", (prefix,)
            )
        else:
            rows = self._point_query(
                "SELECT key, value FROM mussel_meta WHERE key >= %s AND key < %s ORDER BY key",
                (prefix, end),
            )
        return [(bytes(k), bytes(v)) for k, v in rows]

    def meta_write(
        self,
        items: Mapping[bytes, bytes | None],
        *,
        expect: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """One transaction. With ``expect`` (compare-and-set): SERIALIZABLE, the
        expected keys locked with ``SELECT ... FOR UPDATE`` and compared, so a
        concurrent writer of the same keys (an absent key's insert too) either waits or
        fails the transaction, which is run again and then sees the new value."""

        def body(cur: psycopg.Cursor[Any]) -> None:
            self.write_meta_in(cur, items, expect)

        self._write_tx("metadata write", body, serializable=bool(expect))

    @staticmethod
    def write_meta_in(
        cur: psycopg.Cursor[Any],
        items: Mapping[bytes, bytes | None],
        expect: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """The statements of ``meta_write``, inside the caller's transaction."""
        if expect:
            keys = sorted(expect)
            cur.execute(
                "SELECT key, value FROM mussel_meta WHERE key = ANY(%b::bytea[])"
                " ORDER BY key FOR UPDATE",
                (keys,),
            )
            current = {bytes(k): bytes(v) for k, v in cur.fetchall()}
            for k in keys:
                if current.get(k) != expect[k]:
                    raise ConflictError(
                        f"metadata item {k!r} changed concurrently: compare-and-set failed"
                    )
        deletes = sorted(k for k, v in items.items() if v is None)
        puts = sorted((k, v) for k, v in items.items() if v is not None)
        if deletes:
            cur.execute("DELETE FROM mussel_meta WHERE key = ANY(%b::bytea[])", (deletes,))
        if puts:
            cur.execute(
                "INSERT INTO mussel_meta (key, value)"
                " SELECT * FROM unnest(%b::bytea[], %b::bytea[])"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                ([k for k, _ in puts], [v for _, v in puts]),
            )

    # -- bulk ingest ------------------------------------------------------------

    def bulk_ingest(
        self, table_id: int, epoch: int, workdir: Path, lock: AbstractContextManager[object]
    ) -> SqlIngest:
        """COPY into a staging table, then set-based inserts (see ``ingest.py``)."""
        return SqlIngest(self, table_id, epoch, lock)

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection (autocommit), for sibling adapters (bulk ingest)."""
        return self._conn()

    def write_tx(
        self, what: str, body: Callable[[psycopg.Cursor[Any]], Any], *, serializable: bool = False
    ) -> Any:
        """Run ``body(cursor)`` in one transaction (again on serialization failures)."""
        return self._write_tx(what, body, serializable=serializable)

    @staticmethod
    def count_in(
        cur: psycopg.Cursor[Any], slot: int, deltas: Mapping[int, tuple[int, int]]
    ) -> None:
        """Add to tables' counters inside the caller's transaction."""
        SqlBackend._count(cur, slot, deltas)

    def close(self) -> None:
        if self._closed or not self._owner:
            return
        self._closed = True
        with map_sql_errors("close"):
            self._pool.close()
