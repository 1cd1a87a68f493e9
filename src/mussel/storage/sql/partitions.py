"""Declarative range partitions of the cells table on PostgreSQL: one or more per table.

On PostgreSQL the cells table is ``PARTITION BY RANGE (table_id, pk)`` without a
default partition, and every Mussel table has partitions of its own:

* ``mussel_cells_t<id>``: the whole table, ``FROM (id, MINVALUE) TO (id, MAXVALUE)``,
  created the first time rows of the table arrive (``ensure``);
* or, once presplit, ``mussel_cells_t<id>_<i>``: one per range between split points
  (``presplit``), ``FROM (id, MINVALUE) TO (id, p1)``, ..., ``FROM (id, pn) TO (id,
  MAXVALUE)``. Rows already stored are moved into them in the same transaction.

Why no default partition: attaching a partition next to a default one makes PostgreSQL
scan the whole default partition (every other table's rows) under a lock that stops
its writes. With a partition per table, creating or splitting one table touches that
table only, and dropping a table is ``DROP TABLE`` of its partitions: the space is back
at once instead of after deleting and vacuuming its rows.

Partitions are made as plain tables and then attached (``ATTACH PARTITION`` takes a
``SHARE UPDATE EXCLUSIVE`` lock on the parent, which reads and writes do not wait on);
a dropped table's are detached ``CONCURRENTLY`` (the same lock), then dropped. Only
splitting a table that already holds rows detaches its old partition with a short
exclusive lock on the cells table (rare: presplit comes when a table is created). The
table ``mussel_partitions`` lists what exists, and an advisory lock per Mussel table
serialises the processes that create, split or drop its partitions.

A database whose cells table was created unpartitioned (by an earlier Mussel) keeps
working unpartitioned: ``active`` is then false and every method does nothing. So do
CockroachDB and YugabyteDB, which split ranges themselves (``dialect.py``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from mussel.storage.sql.dialect import CELLS
from mussel.storage.sql.errors import map_sql_errors

__all__ = ["MAX_PIECES", "PARTITIONS_DDL", "Partitions", "piece_points"]

log = logging.getLogger("mussel.storage.sql")

PARTITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS mussel_partitions ("
    " table_id integer PRIMARY KEY, pieces integer NOT NULL)"
)
"""Which Mussel tables have partitions, and how many (1: the whole table)."""

MAX_PIECES = 64
"""Most partitions one table gets on PostgreSQL. A presplit into more shards keeps
every k-th point: on one node, more partitions add planning work and buy nothing."""

_LIKE_CELLS = CELLS.replace("_", "\\_")
_LOCK_CLASS = 0x6D75  # "mu": the advisory-lock space of partition changes


def piece_points(points: Sequence[bytes], limit: int = MAX_PIECES) -> list[bytes]:
    """The split points actually used: sorted, distinct, non-empty, and at most
    ``limit - 1`` of them, evenly spread over the ones given."""
    distinct = sorted({p for p in points if p})
    if len(distinct) < limit:
        return distinct
    step = len(distinct) / limit
    return [distinct[int(step * (i + 1))] for i in range(limit - 1)]


def _bytea(value: bytes) -> str:
    # a literal (partition bounds take no parameters); hex digits cannot inject anything
    return f"'\\x{value.hex()}'::bytea"


def _ranges(points: Sequence[bytes]) -> list[tuple[bytes | None, bytes | None]]:
    """The pk ranges ``[lo, hi)`` between split points (None: unbounded)."""
    edges: list[bytes | None] = [None, *points, None]
    return list(itertools.pairwise(edges))


def _bounds(table_id: int, points: Sequence[bytes]) -> list[tuple[str, str]]:
    tid = int(table_id)
    edges = ["MINVALUE", *(_bytea(p) for p in points), "MAXVALUE"]
    return [(f"({tid}, {lo})", f"({tid}, {hi})") for lo, hi in itertools.pairwise(edges)]


class Partitions:
    """The partitions of one database's cells table (see the module docstring).

    ``connection`` gives a pooled autocommit connection; ``active`` says whether the
    cells table is partitioned (decided once, from the catalog, by ``load``).
    """

    def __init__(
        self, connection: Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
    ) -> None:
        self._connection = connection
        self.active = False
        self._known: set[int] = set()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read whether the cells table is partitioned, and which tables have partitions."""
        with map_sql_errors("partitions"), self._connection() as conn:
            row = conn.execute(
                "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (CELLS,)
            ).fetchone()
            self.active = row is not None and row[0] == "p"
            if self.active:
                rows = conn.execute("SELECT table_id FROM mussel_partitions").fetchall()
                with self._lock:
                    self._known = {int(r[0]) for r in rows}

    def ensure(self, table_ids: Iterable[int]) -> None:
        """Every table of ``table_ids`` has partitions (rows of it can be inserted)."""
        if not self.active:
            return
        with self._lock:
            missing = sorted(set(table_ids) - self._known)
        for tid in missing:
            self._change(tid, None)

    def forget(self, table_ids: Iterable[int]) -> None:
        """Another process may have dropped these tables' partitions: look again."""
        with self._lock:
            self._known.difference_update(table_ids)

    def presplit(self, table_id: int, points: Sequence[bytes]) -> int:
        """Partition the table at ``points`` (see ``piece_points``); rows it already
        holds move into the new partitions. Returns how many partitions it has (0 when
        the cells table is not partitioned)."""
        if not self.active:
            return 0
        return self._change(table_id, piece_points(points))

    def drop(self, table_id: int) -> bool:
        """Drop the table's partitions (its rows go with them). False when the cells
        table is not partitioned and the rows must be deleted instead."""
        if not self.active:
            return False

        # DETACH ... CONCURRENTLY, outside a transaction (so under a session lock):
        # a plain DETACH or DROP would lock the whole cells table, and every other
        # table's reads and writes would queue behind any long transaction.
        with map_sql_errors("drop partitions"), self._connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_CLASS, table_id))
            try:
                with conn.cursor() as cur:
                    attached = self._attached(cur, table_id)
                for name, pending in attached:
                    how = "FINALIZE" if pending else "CONCURRENTLY"  # (one left half-way)
                    conn.execute(f"ALTER TABLE {CELLS} DETACH PARTITION {name} {how}")
                    conn.execute(f"DROP TABLE {name}")
                conn.execute("DELETE FROM mussel_partitions WHERE table_id = %s", (table_id,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_CLASS, table_id))
        self.forget((table_id,))
        return True

    # -- inside ---------------------------------------------------------------

    def _change(self, table_id: int, points: list[bytes] | None) -> int:
        """Create the whole-table partition (``points`` None) unless partitions exist,
        or split the table at ``points``."""

        def change(cur: psycopg.Cursor[Any]) -> int:
            row = cur.execute(
                "SELECT pieces FROM mussel_partitions WHERE table_id = %s", (table_id,)
            ).fetchone()
            if points is None and row is not None:
                return int(row[0])
            old = self._names(cur, table_id) if row is not None else []
            bounds = _bounds(table_id, points or [])
            names = (
                [f"{CELLS}_t{int(table_id)}"]
                if points is None
                else [f"{CELLS}_t{int(table_id)}_{i}" for i in range(len(bounds))]
            )
            staged = [f"{n}_new" if n in old else n for n in names]
            for name in staged:
                cur.execute(f"CREATE TABLE {name} (LIKE {CELLS} INCLUDING ALL)")
            ranges = _ranges(points or [])
            for name in old:  # rows already there move into the new pieces
                cur.execute(f"ALTER TABLE {CELLS} DETACH PARTITION {name}")
                for new, (lo, hi) in zip(staged, ranges, strict=True):
                    where = ["true"]
                    params: list[bytes] = []
                    if lo is not None:
                        where.append("pk >= %s")
                        params.append(lo)
                    if hi is not None:
                        where.append("pk < %s")
                        params.append(hi)
                    cur.execute(
                        f"INSERT INTO {new} SELECT * FROM {name} WHERE {' AND '.join(where)}",
                        params,
                    )
                cur.execute(f"DROP TABLE {name}")
            for name, final, (low, high) in zip(staged, names, bounds, strict=True):
                if name != final:
                    cur.execute(f"ALTER TABLE {name} RENAME TO {final}")
                cur.execute(
                    f"ALTER TABLE {CELLS} ATTACH PARTITION {final} FOR VALUES FROM {low} TO {high}"
                )
            cur.execute(
                "INSERT INTO mussel_partitions (table_id, pieces) VALUES (%s, %s)"
                " ON CONFLICT (table_id) DO UPDATE SET pieces = excluded.pieces",
                (table_id, len(names)),
            )
            return len(names)

        pieces: int = self._locked("create partitions", table_id, change)
        with self._lock:
            self._known.add(table_id)
        return pieces

    @classmethod
    def _names(cls, cur: psycopg.Cursor[Any], table_id: int) -> list[str]:
        """The partitions attached for ``table_id`` now."""
        return [name for name, _ in cls._attached(cur, table_id)]

    @staticmethod
    def _attached(cur: psycopg.Cursor[Any], table_id: int) -> list[tuple[str, bool]]:
        """(name, detach pending) of the partitions attached for ``table_id``."""
        rows = cur.execute(
            "SELECT c.relname, i.inhdetachpending FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)"
            " AND (c.relname = %s OR c.relname LIKE %s)",
            (CELLS, f"{CELLS}_t{int(table_id)}", f"{_LIKE_CELLS}\\_t{int(table_id)}\\_%"),
        ).fetchall()
        return [(str(r[0]), bool(r[1])) for r in rows]

    def _locked(self, what: str, table_id: int, body: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        """``body`` in one transaction holding the table's advisory lock."""
        with (
            map_sql_errors(what),
            self._connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, table_id))
            return body(cur)
