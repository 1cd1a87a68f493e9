"""The external sort against a naive model: many spilled runs, duplicates across them."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from mussel.bulkload import sorter as sorter_module
from mussel.bulkload.layouts import CELL_SCHEMA
from mussel.bulkload.sorter import Sorter
from mussel.codec.keys import cell_key


@pytest.mark.parametrize(
    ("rows", "run_bytes", "batch"), [(5000, 1 << 30, 500), (20_000, 40_000, 700), (3000, 2000, 37)]
)
@pytest.mark.parametrize("small_windows", [False, True])
def test_sorted_unique_last_in_source_order(
    tmp_path: Path,
    rows: int,
    run_bytes: int,
    batch: int,
    small_windows: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if small_windows:  # merge windows smaller than the runs' batches and buffers
        monkeypatch.setattr(sorter_module, "_CHUNK_ROWS", 200)
        monkeypatch.setattr(sorter_module, "_MIN_WINDOW", 3)
        monkeypatch.setattr(sorter_module, "_RUN_BATCH_ROWS", 45)
    rng = random.Random(rows)
    cells = [
        (
            f"p{rng.randrange(rows // 3)}".encode(),
            rng.choice([b"", b"a", b"\x00b"]),
            rng.randrange(3),
            f"v{i}".encode(),
        )
        for i in range(rows)
    ]
    sorter = Sorter(tmp_path / "runs", run_bytes)
    for start in range(0, rows, batch):
        part = cells[start : start + batch]
        sorter.add(
            pa.Table.from_arrays(
                [
                    pa.array([c[0] for c in part], pa.binary()),
                    pa.array([c[1] for c in part], pa.binary()),
                    pa.array([c[2] for c in part], pa.int64()),
                    pa.array([c[3] for c in part], pa.binary()),
                    pa.array(range(start, start + len(part)), pa.int64()),
                    pa.array(range(start, start + len(part)), pa.int64()),
                ],
                schema=CELL_SCHEMA,
            )
        )
    got = []
    for chunk in sorter.sorted_chunks():
        got += list(
            zip(chunk.column("key").to_pylist(), chunk.column("value").to_pylist(), strict=True)
        )
    sorter.discard()
    last: dict[bytes, bytes] = {}
    for pk, sk, ts, value in cells:
        last[cell_key(pk, sk, ts)] = value
    assert got == sorted(last.items())
    assert sorter.duplicates == rows - len(last)
    assert sorter.cells == len(last)
    if run_bytes < 1 << 20:
        assert len(list((tmp_path / "runs").glob("*"))) == 0  # discarded


def _cells_table(cells: list[tuple[bytes, bytes, int, bytes]], start: int) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array([c[0] for c in cells], pa.binary()),
            pa.array([c[1] for c in cells], pa.binary()),
            pa.array([c[2] for c in cells], pa.int64()),
            pa.array([c[3] for c in cells], pa.binary()),
            pa.array(range(start, start + len(cells)), pa.int64()),
            pa.array(range(start, start + len(cells)), pa.int64()),
        ],
        schema=CELL_SCHEMA,
    )


@pytest.mark.parametrize("seed", range(40))
def test_word_sort_is_a_stable_bytewise_sort(seed: int) -> None:
    """``_stable_order`` (64-bit word sort, falling back to a binary sort) equals a
    stable sort of the bytes: keys that are other keys plus zero bytes, keys that differ
    only past the words, duplicates, sliced arrays."""
    rng = random.Random(seed)
    alphabet = rng.choice([b"\x00\x01a", b"\x00\xff", b"ab", bytes(range(256))])
    longest = rng.choice([3, 9, 20, 70, 100])
    n = rng.randrange(2, 400)
    keys = [
        bytes(rng.choice(alphabet) for _ in range(rng.randrange(longest + 1))) for _ in range(n)
    ]
    keys += rng.sample(keys, min(len(keys), 30))  # duplicates
    keys += [k + b"\x00" * rng.randrange(1, 9) for k in rng.sample(keys, 5)]
    rng.shuffle(keys)
    if seed % 3 == 0:
        keys = [b"P" * 66 + k for k in keys]  # the words cannot decide: binary sort
    arr = pa.array([b"x", *keys], pa.binary()).slice(1)
    order = sorter_module._stable_order(arr)
    got = list(range(len(keys))) if order is None else order.to_pylist()
    assert got == sorted(range(len(keys)), key=lambda i: keys[i])


@pytest.mark.parametrize("run_bytes", [1 << 30, 3000])
def test_sorted_input_is_not_sorted_again(
    tmp_path: Path, run_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Input already in key order (with duplicates) gives the model's result without a
    single sort (in memory and with spilled runs)."""

    def no_sort(_key: pa.Array) -> None:
        raise AssertionError("sorted input was sorted again")

    monkeypatch.setattr(sorter_module, "_word_order", no_sort)
    cells = []
    for i in range(3000):
        pk = f"p{i // 3:05d}".encode()
        cells.append((pk, b"s", 10 - i % 3, f"v{i}".encode()))
        if i % 7 == 0:  # a duplicate of the same (pk, sk, ts), later in source order
            cells.append((pk, b"s", 10 - i % 3, f"w{i}".encode()))
    sorter = Sorter(tmp_path / "runs", run_bytes)
    for start in range(0, len(cells), 250):
        sorter.add(_cells_table(cells[start : start + 250], start))
    got = []
    for chunk in sorter.sorted_chunks():
        got += list(
            zip(chunk.column("key").to_pylist(), chunk.column("value").to_pylist(), strict=True)
        )
    sorter.discard()
    last: dict[bytes, bytes] = {}
    for pk, sk, ts, value in cells:
        last[cell_key(pk, sk, ts)] = value
    assert got == sorted(last.items())
    assert sorter.duplicates == len(cells) - len(last)


@pytest.mark.parametrize("seed", range(30))
def test_sort_keys_are_the_codec_cell_keys(seed: int) -> None:
    """The vectorised keys equal ``codec.keys.cell_key`` byte for byte: 0x00 bytes in
    pk/sk (escaped) or not (used as they are), extreme timestamps, sliced tables."""
    rng = random.Random(seed)
    alphabet = rng.choice([b"ab", b"\x00a\xff", bytes(range(256))])

    def raw(least: int) -> bytes:
        return bytes(rng.choice(alphabet) for _ in range(rng.randrange(least, 10)))

    edges = [0, 1, -1, 2**63 - 1, -(2**63)]
    rows = [
        (raw(1), raw(0), rng.choice([*edges, rng.randrange(-(2**40), 2**40)]))
        for _ in range(rng.randrange(3, 60))
    ]
    table = _cells_table([(pk, sk, ts, b"v") for pk, sk, ts in rows], 0).slice(1)
    got = sorter_module.sort_keys(table).to_pylist()
    assert got == [cell_key(pk, sk, ts) for pk, sk, ts in rows[1:]]


def test_word_sort_gives_way_when_padded_keys_would_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys whose zero-padded copy would pass 32-bit binary offsets are sorted by Arrow's
    binary sort instead (the limit lowered here to trigger it)."""
    monkeypatch.setattr(sorter_module, "_MAX_PADDED", 50)  # 6 keys: 24 + 48 bytes
    keys = [b"k%03d" % i for i in (5, 3, 9, 1, 7, 3)]
    arr = pa.array(keys, pa.binary())
    assert sorter_module._word_order(arr) is None
    order = sorter_module._stable_order(arr)
    assert order is not None
    assert order.to_pylist() == sorted(range(len(keys)), key=lambda i: keys[i])


def test_merged_chunks_are_gathered_to_the_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge step gives a few rows per run; the chunks handed out hold at least
    ``_CHUNK_ROWS`` rows each (but the last), so the loader can prefetch a whole SST
    build ahead."""
    monkeypatch.setattr(sorter_module, "_CHUNK_ROWS", 1000)
    monkeypatch.setattr(sorter_module, "_RUN_BATCH_ROWS", 50)
    rng = random.Random(5)
    cells = [(f"p{rng.randrange(10**6):07d}".encode(), b"s", 1, b"v") for _ in range(5000)]
    sorter = Sorter(tmp_path / "runs", 20_000)
    for start in range(0, len(cells), 500):
        sorter.add(_cells_table(cells[start : start + 500], start))
    sizes = [chunk.num_rows for chunk in sorter.sorted_chunks()]
    sorter.discard()
    assert len(sizes) > 1 and all(n >= 1000 for n in sizes[:-1])
    assert sum(sizes) == len({c[0] for c in cells})
