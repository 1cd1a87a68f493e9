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
