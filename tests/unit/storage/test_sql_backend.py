"""What is particular to SqlBackend: dialects and URLs, the schema, errors when the
database goes away, eventual views, big batches, and its reads doing what they should
in SQL (pagination in chunks, consistency)."""

from __future__ import annotations

import time

import psycopg
import pytest

from mussel.errors import CorruptionError, InvalidRequestError, UnavailableError
from mussel.model import OP_PUT, Cell, Mutation, ScanCell
from mussel.storage.base import RowQuery, ScanQuery
from mussel.storage.sql import (
    SCHEMA_VERSION,
    CockroachDialect,
    PostgresDialect,
    SqlBackend,
    YugabyteDialect,
)
from mussel.storage.sql.backend import _chunked
from mussel.storage.sql.dialect import (
    dialect_by_name,
    dialect_from_version,
    split_dialect_from_url,
)
from mussel.storage.versions import ReadFilter, Visibility

T = 1


def put(pk: bytes, sk: bytes, ts: int, value: bytes) -> Mutation:
    return Mutation(T, OP_PUT, pk, sk, ts, value)


# -- dialects (no database needed) -------------------------------------------------


def test_dialect_from_the_url() -> None:
    assert split_dialect_from_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    url = "postgresql://postgres:@/t?host=/tmp/x"
    assert split_dialect_from_url(url) == (url, None)  # left alone
    plain, named = split_dialect_from_url("cockroachdb://root@h:26257/db?sslmode=disable")
    assert (plain, named) == ("postgresql://root@h:26257/db?sslmode=disable", "cockroachdb")
    plain, named = split_dialect_from_url("postgres://h/db?dialect=yugabytedb&application_name=m")
    assert (plain, named) == ("postgres://h/db?application_name=m", "yugabytedb")
    with pytest.raises(InvalidRequestError):
        split_dialect_from_url("mysql://h/db")
    with pytest.raises(InvalidRequestError):
        split_dialect_from_url("postgresql://h/db?dialect=oracle")


def test_dialect_from_version() -> None:
    assert isinstance(dialect_from_version("PostgreSQL 18.6 on x86_64"), PostgresDialect)
    assert isinstance(
        dialect_from_version("CockroachDB CCL v24.1.0 (x86_64-pc-linux-gnu)"), CockroachDialect
    )
    assert isinstance(
        dialect_from_version("PostgreSQL 11.2-YB-2.20.1.0-b0 on x86_64"), YugabyteDialect
    )
    assert isinstance(dialect_by_name("CockroachDB"), CockroachDialect)


def test_dialect_statements() -> None:
    assert PostgresDialect().presplit_statements(3, [b"m"]) == []
    assert YugabyteDialect().presplit_statements(3, [b"m"]) == []
    [(sql, params)] = CockroachDialect().presplit_statements(3, [b"g", b"p"])
    assert sql == r"ALTER TABLE mussel_cells SPLIT AT VALUES (3, b'\x67'), (3, b'\x70')"
    assert params == ()
    assert "ASC" in YugabyteDialect().cells_ddl()
    assert "follower_read_timestamp" in CockroachDialect().begin_read(True)[0]
    assert CockroachDialect().eventual_needs_tx and YugabyteDialect().eventual_needs_tx


def test_apply_chunks_by_rows_and_bytes() -> None:
    small = [put(b"k%d" % i, b"", 1, b"v") for i in range(4500)]
    assert [len(c) for c in _chunked(small)] == [2000, 2000, 500]
    big = [put(b"k%d" % i, b"", 1, b"x" * (6 << 20)) for i in range(5)]
    assert [len(c) for c in _chunked(big)] == [3, 2]
    assert list(_chunked([])) == []


# -- on PostgreSQL -----------------------------------------------------------------


def test_schema_is_idempotent_and_versioned(pg_url: str) -> None:
    a = SqlBackend(pg_url + "&dialect=postgresql", pool_size=1)
    a.apply([put(b"r", b"", 1, b"x")], {T: 0}, {0: 1})
    b = SqlBackend(pg_url, pool_size=1)  # opens the existing schema
    assert b.dialect.name == "postgresql"
    assert b.get_latest(T, b"r", b"", None) == Cell(b"", 1, b"x")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE mussel_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(CorruptionError, match="upgrade Mussel"):
        SqlBackend(pg_url, pool_size=1)
    a.close()
    b.close()
    b.close()  # twice is fine


def test_an_unreachable_database_is_unavailable() -> None:
    with pytest.raises(UnavailableError):
        SqlBackend("postgresql://postgres@/nowhere?host=/nonexistent-dir", connect_timeout_s=0.5)


def test_lost_connections_are_unavailable_then_replaced(pg_url: str) -> None:
    b = SqlBackend(pg_url, pool_size=1)
    try:
        b.apply([put(b"r", b"", 1, b"x")], {T: 0}, {})
        with psycopg.connect(pg_url, autocommit=True) as conn:
            others = (
                "FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            conn.execute(f"SELECT pg_terminate_backend(pid) {others}")
            for _ in range(500):  # termination is asynchronous: wait until it is done
                row = conn.execute(f"SELECT count(*) {others}").fetchone()
                if row is not None and row[0] == 0:
                    break
                time.sleep(0.01)
        with pytest.raises(UnavailableError):
            b.get_latest(T, b"r", b"", None)
        # the pool dropped the broken connection: the next call works
        assert b.get_latest(T, b"r", b"", None) == Cell(b"", 1, b"x")
    finally:
        b.close()


def test_eventual_view_shares_the_pool(pg_url: str) -> None:
    b = SqlBackend(pg_url, pool_size=1)
    try:
        b.apply([put(b"r", b"a", 1, b"x")], {T: 0}, {})
        e = b.eventual()
        assert e.staleness_ms == 0 and b.staleness_ms == 0  # PostgreSQL: one node
        assert e.read_row(T, Visibility(), b"r", RowQuery())[0] == [Cell(b"a", 1, b"x")]
        e.close()  # does not close the shared pool
        assert b.get_latest(T, b"r", b"a", None) == Cell(b"a", 1, b"x")
        b.presplit(T, [b"m"])  # a no-op on PostgreSQL
    finally:
        b.close()


def test_reads_that_need_many_chunks(pg_url: str) -> None:
    """A row where every cell has 30 versions and only the newest is visible, read with
    a small limit: the backend fetches chunk after chunk (in one transaction) and pages
    resume where they stopped."""
    b = SqlBackend(pg_url, pool_size=1)
    try:
        muts = [put(b"r", b"s%03d" % i, ts, b"v%d" % ts) for i in range(200) for ts in range(30)]
        b.apply(muts, {T: 0}, {})
        seen: list[Cell] = []
        q = RowQuery(limit=70)
        while True:
            cells, more = b.read_row(T, Visibility(), b"r", q)
            seen += cells
            if not more:
                break
            q = RowQuery(limit=70, after=(cells[-1].sk, cells[-1].ts))
        assert seen == [Cell(b"s%03d" % i, 29, b"v29") for i in range(200)]
        page, more = b.scan(
            T, Visibility(max_versions=2), ScanQuery(limit=5, rf=ReadFilter(versions=2))
        )
        assert more and page == [
            ScanCell(b"r", b"s000", 29, b"v29"),
            ScanCell(b"r", b"s000", 28, b"v28"),
            ScanCell(b"r", b"s001", 29, b"v29"),
            ScanCell(b"r", b"s001", 28, b"v28"),
            ScanCell(b"r", b"s002", 29, b"v29"),
        ]
        # multi_get of a row past its per-key cap falls back to read_row
        [row] = b.multi_get(T, Visibility(), [(b"r", None)], ReadFilter(), 1000)
        assert len(row) == 200
        assert b.table_stats(T).approx_cells == 6000
        assert b.split_points(T, 10_000) == []  # one pk: nothing to cut
    finally:
        b.close()


def test_a_batch_with_repeated_keys_keeps_the_last(pg_url: str) -> None:
    b = SqlBackend(pg_url, pool_size=1)
    try:
        b.apply(
            [put(b"r", b"", 5, b"1"), put(b"r", b"", 5, b"2"), put(b"r", b"", 5, b"3")],
            {T: 0},
            {},
        )
        assert b.get_latest(T, b"r", b"", None) == Cell(b"", 5, b"3")
    finally:
        b.close()


def test_a_read_of_many_chunks_sees_one_snapshot(pg_url: str) -> None:
    """A write committed between two chunks of one scan is not seen by that scan (the
    chunks run in one REPEATABLE READ transaction), and is seen by the next one."""
    writer = SqlBackend(pg_url, pool_size=1)
    wrote: list[bool] = []

    class Hooked(SqlBackend):
        def _chunks(self, fetch, cols, where, params, key_cols, chunk):  # type: ignore[no-untyped-def]
            def hooked(sql: str, p: object) -> object:
                rows = fetch(sql, p)  # type: ignore[arg-type]
                if "(pk, sk, its) >" in sql and not wrote:  # after the 2nd chunk
                    writer.apply([put(b"zzz", b"", 1, b"late")], {T: 0}, {})
                    writer.apply([Mutation(T, 1, b"k0999", b"", 10)], {T: 0}, {})
                    wrote.append(True)
                return rows

            return super()._chunks(hooked, cols, where, params, key_cols, chunk)

    reader = Hooked(pg_url, pool_size=1)
    try:
        # 5 versions of each of 1,000 cells, one visible: a page of 1,000 needs 3 chunks
        writer.apply(
            [put(b"k%04d" % i, b"", ts, b"v") for i in range(1000) for ts in range(1, 6)],
            {T: 0},
            {},
        )
        page, more = reader.scan(T, Visibility(), ScanQuery(limit=1000))
        assert wrote and not more
        assert len(page) == 1000 and page[-1].pk == b"k0999"  # neither the delete ...
        assert all(c.pk != b"zzz" for c in page)  # ... nor the put
        page, _ = reader.scan(T, Visibility(), ScanQuery(limit=1000))
        assert len(page) == 1000 and page[-1].pk == b"zzz"
        assert all(c.pk != b"k0999" for c in page)
    finally:
        reader.close()
        writer.close()
