"""Bulk ingest on RocksDB with the SST files built by worker processes (``sstbuild.py``):
the same contract as in-thread building (the ``test_bulk_ingest`` cases rerun with every
chunk sent to the builders), Arrow input, and a builder that dies."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pyarrow import ipc

from mussel.codec.keys import cell_key
from mussel.errors import UnavailableError
from mussel.model import Cell, Floor
from mussel.storage.base import ArrowBulkIngest, ScanQuery
from mussel.storage.rocksdb import RocksBackend
from mussel.storage.rocksdb.sstbuild import SstBuilders, _Worker, write_sst
from mussel.storage.versions import Visibility
from tests.unit.storage import test_bulk_ingest as contract
from tests.unit.storage.conftest import SMALL

PARALLEL = dataclasses.replace(SMALL, bulk_builders=2, bulk_parallel_min_cells=1)
T = contract.T


@pytest.fixture
def rocks(tmp_path: Path) -> Iterator[RocksBackend]:
    b = RocksBackend(tmp_path / "db", PARALLEL)
    yield b
    b.close()


@pytest.mark.parametrize(
    "case",
    [
        contract.test_ingested_cells_are_invisible_while_pending_and_visible_after,
        contract.test_a_colliding_cell_is_deferred_and_the_stored_version_survives_an_abort,
        contract.test_deferred_cells_land_with_the_commit,
        contract.test_many_files_with_stored_keys_between_them,
    ],
    ids=lambda f: f.__name__,
)
def test_the_bulk_ingest_contract_holds_with_builder_processes(
    case: object, rocks: RocksBackend, tmp_path: Path
) -> None:
    case(rocks, tmp_path)  # type: ignore[operator]


def _chunk(n: int, start: int = 0) -> tuple[pa.Array, pa.Array, list[tuple[bytes, bytes]]]:
    pks = [b"p\x00" + f"{i:07d}".encode() for i in range(start, start + n)]  # 0x00 escaped
    keys = [cell_key(pk, b"s", 5) for pk in pks]
    values = [f"v{i}".encode() * 3 for i in range(start, start + n)]
    return (
        pa.array(keys, pa.binary()),
        pa.array(values, pa.binary()),
        list(zip(pks, values, strict=True)),
    )


def test_arrow_chunks_are_split_across_builders_and_read_back_exactly(
    rocks: RocksBackend, tmp_path: Path
) -> None:
    ing = rocks.bulk_ingest(T, 1, tmp_path / "job", contract.LOCK)
    assert isinstance(ing, ArrowBulkIngest)
    want = []
    for start in (0, 5001):
        keys, values, cells = _chunk(5001, start)
        counts = ing.add_arrow(keys.slice(0), values)
        assert (counts.written, counts.deferred) == (5001, 0)
        want += cells
    assert not list((tmp_path / "job").glob("*.in.arrow"))  # the builders' inputs are gone
    ing.commit_write({b"\x00test\x00k": b"v"})
    ing.discard()
    page, _ = rocks.scan(T, Visibility(floors=(Floor(5, 1),)), ScanQuery(limit=20_000))
    assert [(c.pk, c.value) for c in page] == want
    assert rocks.get_latest(T, want[7000][0], b"s", None) == Cell(b"s", 5, want[7000][1])


def test_chunked_arrays_with_unaligned_chunks_are_built_exactly(
    rocks: RocksBackend, tmp_path: Path
) -> None:
    """Keys and values as chunked arrays cut at different places (as the loader hands
    them over, without concatenating), split across builders and written a slice at a
    time (8192 cells: not aligned with the chunks)."""
    ing = rocks.bulk_ingest(T, 1, tmp_path / "job", contract.LOCK)
    assert isinstance(ing, ArrowBulkIngest)
    keys, values, want = _chunk(30_001)
    ck = pa.chunked_array([keys.slice(0, 10_000), keys.slice(10_000, 3), keys.slice(10_003)])
    cv = pa.chunked_array([values.slice(0, 4_321), values.slice(4_321)])
    counts = ing.add_arrow(ck, cv)
    assert (counts.written, counts.deferred) == (30_001, 0)
    keys, values, more = _chunk(500, 30_001)  # small: built in this process, chunked too
    ing.add_arrow(
        pa.chunked_array([keys.slice(0, 250), keys.slice(250)]), pa.chunked_array([values])
    )
    ing.commit_write({b"\x00test\x00k": b"v"})
    ing.discard()
    page, _ = rocks.scan(T, Visibility(floors=(Floor(5, 1),)), ScanQuery(limit=40_000))
    assert [(c.pk, c.value) for c in page] == want + more


def test_a_killed_builder_is_replaced_by_the_next_add(rocks: RocksBackend, tmp_path: Path) -> None:
    ing = rocks.bulk_ingest(T, 1, tmp_path / "job", contract.LOCK)
    keys, values, _ = _chunk(100)
    ing.add_arrow(keys, values)  # starts the builders
    builders = rocks._builders
    assert builders is not None
    old = builders.pids()
    assert len(old) == 2
    for pid in old:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    keys, values, _ = _chunk(100, 100)
    assert ing.add_arrow(keys, values).written == 100
    assert set(builders.pids()).isdisjoint(old)
    ing.discard()


def test_a_builder_error_is_reported_and_the_builder_goes_on(tmp_path: Path) -> None:
    w = _Worker()
    try:
        w.send(tmp_path / "missing.arrow", tmp_path / "x.sst", b"", b"", "lz4")
        with pytest.raises(RuntimeError, match=r"SST builder: .*missing\.arrow"):
            w.receive()
        keys, values, _ = _chunk(10)
        src = tmp_path / "in.arrow"
        batch = pa.record_batch([keys, values], names=["key", "value"])
        with pa.OSFile(str(src), "wb") as sink, ipc.new_file(sink, batch.schema) as fw:
            fw.write_batch(batch)
        w.send(src, tmp_path / "x.sst", b"\x01", b"", "lz4")
        w.receive()
        assert (tmp_path / "x.sst").stat().st_size > 0 and not src.exists()
    finally:
        w.stop()


def test_a_failed_build_fails_the_add_with_unavailable(rocks: RocksBackend, tmp_path: Path) -> None:
    ing = rocks.bulk_ingest(T, 1, tmp_path / "job", contract.LOCK)
    ing.add_arrow(*_chunk(100)[:2])
    builders = rocks._builders
    assert builders is not None
    w = builders._procs[1]
    missing = tmp_path / "missing.arrow"
    w.send = lambda src, path, prefix, header, compression: _Worker.send(  # type: ignore[method-assign]
        w, missing, path, prefix, header, compression
    )
    with pytest.raises(UnavailableError, match=r"SST builder: .*missing\.arrow"):
        ing.add_arrow(*_chunk(100, 100)[:2])
    ing.discard()


def test_builders_can_run_at_a_lower_cpu_priority(tmp_path: Path) -> None:
    builders = SstBuilders(1, nice=3)
    try:
        keys, values, _ = _chunk(10)
        (path,) = builders.build(tmp_path, "x", b"\x01", b"", keys, values)
        assert path.stat().st_size > 0
        (pid,) = builders.pids()
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + 3
        )
    finally:
        builders.close()


def test_bulk_sst_files_use_the_databases_compression(tmp_path: Path) -> None:
    """Found by review: they were built with rocksdict's default (Snappy) whatever
    ``[rocksdb] compression`` said. Compressible values make the difference show."""
    keys = pa.array([b"k%06d" % i for i in range(3000)], pa.binary())
    values = pa.array([b"x" * 400] * 3000, pa.binary())
    sizes = {}
    for compression in ("none", "zstd"):
        builders = SstBuilders(1, compression=compression)
        try:
            workdir = tmp_path / compression
            workdir.mkdir()
            (path,) = builders.build(workdir, "c", b"\x01", b"\x00" * 5, keys, values)
            sizes[compression] = path.stat().st_size
        finally:
            builders.close()
        in_thread = tmp_path / f"{compression}-thread.sst"
        write_sst(str(in_thread), b"\x01", b"\x00" * 5, keys, values, compression)
        assert in_thread.stat().st_size == sizes[compression]
    assert sizes["none"] > 1_200_000 > 10 * sizes["zstd"]
