from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mussel.bulkload import JobInfo, JobManager
from mussel.clock import ManualClock
from mussel.engine import Store
from tests.unit.engine.conftest import CONFIG

T0 = 1_700_000_000_000_000  # ManualClock's start: the default job timestamp T


def write_cells(path: Path, rows: list[tuple[Any, ...]], **kw: Any) -> Path:
    """A cells-layout Parquet file from (pk, sk, value[, ts]) tuples."""
    cols: dict[str, list[Any]] = {"pk": [], "sk": [], "value": []}
    if rows and len(rows[0]) == 4:
        cols["ts"] = []
    for r in rows:
        for name, v in zip(cols, r, strict=True):
            cols[name].append(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path, **kw)
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    if request.param == "memory":
        s = Store.memory(CONFIG, clock=clock)
    else:
        s = Store.open(tmp_path / "store", CONFIG, clock=clock)
    s.put_namespace("ns")
    s.put_table("ns", "t", {"max_versions": 10})
    yield s
    s.close()


@pytest.fixture
def jobs(store: Store, tmp_path: Path) -> Iterator[JobManager]:
    m = JobManager(store, tmp_path / "bulk", sst_cells=1000)
    yield m
    m.close()


def load(jobs: JobManager, source: Path | str, **kw: Any) -> JobInfo:
    job = jobs.submit("ns", "t", str(source), **kw)
    return jobs.wait(job.id, 60)


def content(store: Store, versions: int = 1) -> list[tuple[bytes, bytes, int, bytes]]:
    return [
        (c.pk, c.sk, c.ts, c.value)
        for c in store.scan_all("ns", "t", versions=versions, consistency="eventual")
    ]
