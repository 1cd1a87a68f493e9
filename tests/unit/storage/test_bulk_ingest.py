"""Backend contract for bulk ingest: invisible while pending, never replaces a stored
version before the commit, deferred cells land atomically with the commit."""

from __future__ import annotations

import threading
from pathlib import Path

from mussel.codec.keys import cell_key
from mussel.model import OP_PUT, Cell, Floor, Mutation
from mussel.storage.base import Backend, BulkIngest, IngestCounts, RowQuery, ScanQuery
from mussel.storage.versions import ReadFilter, Visibility
from tests.unit.storage.conftest import SMALL

T = 1
LOCK = threading.Lock()


def add(
    ing: BulkIngest, pks: list[bytes], sks: list[bytes], tss: list[int], values: list[bytes]
) -> IngestCounts:
    keys = [cell_key(pk, sk, ts) for pk, sk, ts in zip(pks, sks, tss, strict=True)]
    return ing.add(keys, values)


def cells(
    b: Backend, vis: Visibility, pk: bytes = b"r", versions: int = 1
) -> list[tuple[bytes, int, bytes]]:
    got, _ = b.read_row(T, vis, pk, RowQuery(rf=ReadFilter(versions=versions)))
    return [(c.sk, c.ts, c.value) for c in got]


def test_ingested_cells_are_invisible_while_pending_and_visible_after(
    backend: Backend, tmp_path: Path
) -> None:
    backend.apply([Mutation(T, OP_PUT, b"r", b"a", 5, b"stream")], {T: 0}, {})
    assert backend.get_latest(T, b"s", b"", None) is None  # a point iterator before ingest
    ing = backend.bulk_ingest(T, 1, tmp_path / "job", LOCK)
    counts = add(ing, [b"r", b"r", b"s"], [b"a", b"b", b""], [9, 9, 9], [b"x", b"y", b"z"])
    assert (counts.written, counts.deferred) == (3, 0)
    pending = Visibility(hidden_epochs=frozenset({1}))
    assert cells(backend, pending) == [(b"a", 5, b"stream")]
    assert backend.get_cell(T, pending, b"s", b"", ReadFilter()) == []
    ing.commit_write({b"\x00test\x00k": b"v"})
    ing.discard()
    assert backend.meta_get(b"\x00test\x00k") == b"v"
    done = Visibility()
    assert cells(backend, done) == [(b"a", 9, b"x"), (b"b", 9, b"y")]
    assert backend.get_cell(T, done, b"s", b"", ReadFilter()) == [Cell(b"", 9, b"z")]
    assert backend.get_latest(T, b"s", b"", None) == Cell(b"", 9, b"z")
    page, _ = backend.scan(T, done, ScanQuery())
    assert [(c.pk, c.sk, c.value) for c in page] == [
        (b"r", b"a", b"x"),
        (b"r", b"b", b"y"),
        (b"s", b"", b"z"),
    ]
    assert backend.table_stats(T).approx_cells >= 4


def test_a_colliding_cell_is_deferred_and_the_stored_version_survives_an_abort(
    backend: Backend, tmp_path: Path
) -> None:
    backend.apply(
        [
            Mutation(T, OP_PUT, b"r", b"a", 7, b"stored"),
            Mutation(T, OP_PUT, b"r", b"c", 7, b"other"),
        ],
        {T: 0},
        {},
    )
    ing = backend.bulk_ingest(T, 4, tmp_path / "job", LOCK)
    counts = add(ing, [b"r", b"r"], [b"a", b"b"], [7, 7], [b"loaded", b"new"])
    assert (counts.written, counts.deferred) == (1, 1)
    # The job fails: its epoch is aborted; the stored version is untouched.
    ing.discard()
    aborted = Visibility(hidden_epochs=frozenset({4}))
    assert cells(backend, aborted) == [(b"a", 7, b"stored"), (b"c", 7, b"other")]


def test_deferred_cells_land_with_the_commit(backend: Backend, tmp_path: Path) -> None:
    backend.apply([Mutation(T, OP_PUT, b"r", b"a", 7, b"stored")], {T: 0}, {})
    ing = backend.bulk_ingest(T, 2, tmp_path / "job", LOCK)
    add(ing, [b"r"], [b"a"], [7], [b"loaded"])
    add(ing, [b"r"], [b"b"], [7], [b"fresh"])
    pending = Visibility(hidden_epochs=frozenset({2}))
    assert cells(backend, pending) == [(b"a", 7, b"stored")]
    ing.commit_write({b"\x00test\x00commit": b"1"})
    ing.discard()
    # A replace floor at ts 7 for epoch 2: the loaded version (epoch 2) is what remains.
    replaced = Visibility(floors=(Floor(7, 2),))
    assert cells(backend, replaced) == [(b"a", 7, b"loaded"), (b"b", 7, b"fresh")]
    assert backend.meta_get(b"\x00test\x00commit") == b"1"


def test_many_files_with_stored_keys_between_them(backend: Backend, tmp_path: Path) -> None:
    backend.apply(
        [Mutation(T, OP_PUT, f"k{i:04d}".encode(), b"", 3, b"old") for i in range(0, 300, 7)],
        {T: 0},
        {},
    )
    ing = backend.bulk_ingest(T, 1, tmp_path / "job", LOCK)
    total_deferred = 0
    for start in range(0, 300, 50):
        pks = [f"k{i:04d}".encode() for i in range(start, start + 50)]
        c = add(ing, pks, [b""] * 50, [3] * 50, [b"new"] * 50)
        total_deferred += c.deferred
    assert total_deferred == len(range(0, 300, 7))
    ing.commit_write({b"\x00test\x00x": b""})
    ing.discard()
    page, _ = backend.scan(T, Visibility(floors=(Floor(3, 1),)), ScanQuery(limit=1000))
    assert len(page) == 300 and {c.value for c in page} == {b"new"}


def test_rocks_ingest_survives_reopen(tmp_path: Path) -> None:
    from mussel.storage.rocksdb import RocksBackend

    b = RocksBackend(tmp_path / "db", SMALL)
    ing = b.bulk_ingest(T, 1, tmp_path / "job", LOCK)
    add(ing, [b"p"], [b"s"], [1], [b"v"])
    ing.commit_write({b"\x00test\x00c": b"1"})
    ing.discard()
    assert not (tmp_path / "job").exists()
    b.close()
    b = RocksBackend(tmp_path / "db", SMALL)
    assert b.get_latest(T, b"p", b"s", None) == Cell(b"s", 1, b"v")
    assert b.table_stats(T).approx_cells == 1
    b.close()
