"""Bulk ingest into the SQL backend: binary COPY into a staging table, then set-based SQL.

One ingest owns one staging table, ``mussel_stage_<table>_<epoch>_<random>``
(UNLOGGED on PostgreSQL: it is rebuilt from the source files if the job restarts),
with the loaded versions of each ``add`` call tagged by a batch number. An ``add``:

1. without any lock: ``COPY ... FROM STDIN (FORMAT BINARY)`` of the batch into the
   staging table;
2. holding the apply lock, in one transaction: insert the batch into the cells
   table with ``ON CONFLICT DO NOTHING`` (a stored version at the same (pk, sk, ts)
   is never replaced while the epoch is pending), and mark the staging rows that were
   not inserted as *deferred*, from the same statement's ``RETURNING`` (a data-
   modifying CTE), so a version stored concurrently by another process is deferred
   too, never silently lost; the written rows leave the staging table; the table's
   counters grow.

``commit_write`` upserts the deferred versions and writes the catalog items in one
transaction. ``discard`` drops the staging table.

Tested on PostgreSQL. On CockroachDB (binary COPY, data-modifying CTEs) and
YugabyteDB these statements are untested.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import psycopg

from mussel.codec.keys import decode_cell_key
from mussel.storage.base import IngestCounts
from mussel.storage.sql.dialect import CELLS
from mussel.storage.sql.errors import map_sql_errors

if TYPE_CHECKING:
    from mussel.storage.sql.backend import SqlBackend

__all__ = ["SqlIngest"]


class SqlIngest:
    def __init__(
        self,
        backend: SqlBackend,
        table_id: int,
        epoch: int,
        lock: AbstractContextManager[object],
    ) -> None:
        self._b = backend
        self._table_id = table_id
        self._epoch = epoch
        self._lock = lock
        self._stage = f"mussel_stage_{table_id}_{epoch}_{secrets.token_hex(4)}"
        self._batch = 0
        self._created = False
        self._dropped = False

    def _create(self) -> None:
        unlogged = "UNLOGGED " if self._b.dialect.name == "postgresql" else ""
        with map_sql_errors("bulk ingest (staging table)"), self._b.connection() as conn:
            conn.execute(
                f"CREATE {unlogged}TABLE IF NOT EXISTS {self._stage} ("
                " batch integer NOT NULL, pk bytea NOT NULL, sk bytea NOT NULL,"
                " its bigint NOT NULL, value bytea NOT NULL,"
                " deferred boolean NOT NULL DEFAULT false,"
                " PRIMARY KEY (batch, pk, sk, its))"
            )
        self._created = True

    def add(self, cell_keys: Sequence[bytes], values: Sequence[bytes]) -> IngestCounts:
        if not cell_keys:
            return IngestCounts()
        if not self._created:
            self._create()
        self._batch += 1
        batch = self._batch
        nbytes = 0
        rows = []
        for key, value in zip(cell_keys, values, strict=True):
            pk, sk, ts = decode_cell_key(key)
            nbytes += len(pk) + len(sk) + 8 + len(value)
            rows.append((batch, pk, sk, -1 - ts, value))
        copy_sql = f"COPY {self._stage} (batch, pk, sk, its, value) FROM STDIN (FORMAT BINARY)"
        with (
            map_sql_errors("bulk ingest (copy)"),
            self._b.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(copy_sql) as copy,
        ):
            copy.set_types(["int4", "bytea", "bytea", "int8", "bytea"])
            for row in rows:
                copy.write_row(row)
        t, e, stage = self._table_id, self._epoch, self._stage

        def publish(cur: psycopg.Cursor[Any]) -> tuple[int, int]:
            cur.execute(
                f"WITH ins AS (INSERT INTO {CELLS} (table_id, pk, sk, its, tomb, epoch, value)"
                f"  SELECT %s, pk, sk, its, false, %s, value FROM {stage} WHERE batch = %s"
                "  ON CONFLICT (table_id, pk, sk, its) DO NOTHING RETURNING pk, sk, its)"
                f" UPDATE {stage} AS s SET deferred = true WHERE s.batch = %s AND NOT EXISTS"
                " (SELECT 1 FROM ins WHERE ins.pk = s.pk AND ins.sk = s.sk AND ins.its = s.its)",
                (t, e, batch, batch),
            )
            deferred = max(0, cur.rowcount)
            cur.execute(
                f"DELETE FROM {stage} WHERE batch = %s AND NOT deferred RETURNING"
                " octet_length(pk) + octet_length(sk) + 8 + octet_length(value)",
                (batch,),
            )
            sizes = [int(r[0]) for r in cur.fetchall()]
            if sizes:
                self._b.count_in(cur, 0, {t: (len(sizes), sum(sizes))})
            return len(sizes), deferred

        with self._lock:
            written, deferred = self._b.write_rows_tx("bulk ingest (publish)", (t,), publish)
        self._b.forget_stats((t,))
        return IngestCounts(written, deferred, nbytes)

    def commit_write(self, items: Mapping[bytes, bytes | None]) -> None:
        t, e, stage = self._table_id, self._epoch, self._stage

        def commit(cur: psycopg.Cursor[Any]) -> None:
            if self._created:
                cur.execute(
                    f"INSERT INTO {CELLS} (table_id, pk, sk, its, tomb, epoch, value)"
                    f" SELECT %s, pk, sk, its, false, %s, value FROM {stage} WHERE deferred"
                    " ON CONFLICT (table_id, pk, sk, its) DO UPDATE SET"
                    " tomb = excluded.tomb, epoch = excluded.epoch, value = excluded.value",
                    (t, e),
                )
                cur.execute(f"DELETE FROM {stage} WHERE deferred")
            self._b.write_meta_in(cur, items)

        self._b.write_rows_tx("bulk ingest (commit)", (t,), commit)

    def discard(self) -> None:
        if not self._created or self._dropped:
            return
        with map_sql_errors("bulk ingest (drop staging table)"), self._b.connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {self._stage}")
        self._dropped = True
