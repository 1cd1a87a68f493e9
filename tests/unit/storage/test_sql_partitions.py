"""PostgreSQL presplit by declarative range partitions (``storage/sql/partitions.py``):
each Mussel table in partitions of its own, split at its split points, rows moved when
a table with data is split, partitions dropped with the table, a process that still
believes in a dropped partition recovering, and a database from before partitioning
keeping working without them."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from mussel.catalog import Catalog
from mussel.clock import ManualClock
from mussel.model import OP_PUT, Mutation
from mussel.storage.base import ScanQuery
from mussel.storage.sql import SqlBackend
from mussel.storage.sql.partitions import MAX_PIECES, piece_points
from mussel.storage.versions import Visibility

VIS = Visibility(max_versions=10)


def put(table: int, pk: bytes, ts: int = 1, value: bytes = b"v") -> Mutation:
    return Mutation(table, OP_PUT, pk, b"s", ts, value)


def partitions_of(url: str, table: int) -> dict[str, str]:
    """name -> bound expression of the partitions PostgreSQL holds for ``table``."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'mussel_cells'::regclass AND c.relname ~ %s",
            (f"^mussel_cells_t{table}(_[0-9]+)?$",),
        ).fetchall()
    return {str(name): str(bound) for name, bound in rows}


def rows_in(url: str, name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
    assert row is not None
    return int(row[0])


def scan(backend: SqlBackend, table: int) -> list[bytes]:
    cells, _ = backend.scan(table, VIS, ScanQuery(limit=10_000))
    return [c.pk for c in cells]


@pytest.fixture
def backend(pg_url: str) -> Iterator[SqlBackend]:
    b = SqlBackend(pg_url)
    yield b
    b.close()


def test_piece_points_keep_at_most_max_pieces_ranges() -> None:
    assert piece_points([b"b", b"a", b"", b"a"]) == [b"a", b"b"]
    many = [f"{i:05d}".encode() for i in range(1000)]
    kept = piece_points(many)
    assert len(kept) == MAX_PIECES - 1
    assert kept == sorted(set(kept)) and set(kept) <= set(many)


def test_each_table_gets_a_partition_of_its_own_at_its_first_rows(
    backend: SqlBackend, pg_url: str
) -> None:
    assert backend.partitions.active
    backend.apply([put(1, b"a"), put(2, b"b")], {1: 0, 2: 0}, {})
    assert partitions_of(pg_url, 1) == {
        "mussel_cells_t1": "FOR VALUES FROM (1, MINVALUE) TO (1, MAXVALUE)"
    }
    assert list(partitions_of(pg_url, 2)) == ["mussel_cells_t2"]
    assert rows_in(pg_url, "mussel_cells_t1") == 1
    assert scan(backend, 1) == [b"a"]


def test_presplit_of_a_new_table_makes_one_partition_per_range(
    backend: SqlBackend, pg_url: str
) -> None:
    backend.presplit(7, [b"m", b"f"])
    parts = partitions_of(pg_url, 7)
    assert sorted(parts.values()) == sorted(
        [
            "FOR VALUES FROM (7, MINVALUE) TO (7, '\\x66')",
            "FOR VALUES FROM (7, '\\x66') TO (7, '\\x6d')",
            "FOR VALUES FROM (7, '\\x6d') TO (7, MAXVALUE)",
        ]
    )
    keys = [b"a", b"f", b"g", b"m", b"z", b"zz"]
    backend.apply([put(7, k) for k in keys], {7: 0}, {})
    assert sorted(rows_in(pg_url, name) for name in parts) == [1, 2, 3]
    assert scan(backend, 7) == keys  # one ordered scan across the partitions


def test_presplit_of_a_table_with_rows_moves_them(backend: SqlBackend, pg_url: str) -> None:
    keys = [f"k{i:03d}".encode() for i in range(300)]
    backend.apply([put(3, k, value=k) for k in keys], {3: 0}, {})
    backend.apply([put(4, b"other")], {4: 0}, {})
    backend.presplit(3, [b"k100", b"k200"])
    parts = partitions_of(pg_url, 3)
    assert len(parts) == 3 and "mussel_cells_t3" not in parts
    assert sorted(rows_in(pg_url, name) for name in parts) == [100, 100, 100]
    assert scan(backend, 3) == keys
    assert scan(backend, 4) == [b"other"]  # another table's partition untouched
    backend.presplit(3, [b"k050"])  # split again: the rows move again
    assert sorted(rows_in(pg_url, name) for name in partitions_of(pg_url, 3)) == [50, 250]
    assert scan(backend, 3) == keys


def test_dropping_a_table_drops_its_partitions_and_stale_processes_recover(
    backend: SqlBackend, pg_url: str
) -> None:
    other = SqlBackend(pg_url)
    try:
        backend.presplit(5, [b"m"])
        backend.apply([put(5, b"a"), put(5, b"x")], {5: 0}, {})
        other.apply([put(5, b"b")], {5: 0}, {})  # "other" knows table 5 has partitions
        backend.drop_table_data(5)
        assert partitions_of(pg_url, 5) == {}
        assert scan(backend, 5) == []
        assert backend.table_stats(5).approx_cells == 0
        # "other" still believes in them: its insert finds no partition, makes one
        other.apply([put(5, b"late")], {5: 0}, {})
        assert list(partitions_of(pg_url, 5)) == ["mussel_cells_t5"]
        assert scan(backend, 5) == [b"late"]
    finally:
        other.close()


def test_a_catalog_presplits_a_range_table_it_creates(backend: SqlBackend, pg_url: str) -> None:
    catalog = Catalog(backend, ManualClock())
    catalog.put_namespace("ns")
    t = catalog.put_table(
        "ns", "ranged", {"partitioning": {"kind": "range", "split_points": ["g", "p"]}}
    )
    assert len(partitions_of(pg_url, t.id)) == 3
    h = catalog.put_table("ns", "hashed", {})
    assert partitions_of(pg_url, h.id) == {}  # made with its first rows


def test_bulk_ingest_makes_the_partition_it_writes_into(backend: SqlBackend, pg_url: str) -> None:
    from contextlib import nullcontext
    from pathlib import Path

    from mussel.codec.keys import cell_key

    ingest = backend.bulk_ingest(9, 1, Path("/nonexistent"), nullcontext())
    try:
        counts = ingest.add([cell_key(b"p", b"s", 5)], [b"v"])
        ingest.commit_write({})
    finally:
        ingest.discard()
    assert counts.written == 1
    assert list(partitions_of(pg_url, 9)) == ["mussel_cells_t9"]


def test_a_database_from_before_partitioning_keeps_working_unpartitioned(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the cells table of Mussel <= 0.x
        conn.execute(
            "CREATE TABLE mussel_cells (table_id integer NOT NULL, pk bytea NOT NULL,"
            " sk bytea NOT NULL, its bigint NOT NULL, tomb boolean NOT NULL,"
            " epoch integer NOT NULL, value bytea NOT NULL,"
            " PRIMARY KEY (table_id, pk, sk, its))"
        )
    b = SqlBackend(pg_url)
    try:
        assert not b.partitions.active
        b.apply([put(1, b"a"), put(1, b"z")], {1: 0}, {})
        b.presplit(1, [b"m"])  # nothing to do, nothing lost
        assert scan(b, 1) == [b"a", b"z"]
        b.drop_table_data(1)  # rows deleted instead
        assert scan(b, 1) == []
    finally:
        b.close()
