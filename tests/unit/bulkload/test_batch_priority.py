"""Bulk loads are batch work (SPEC §7): a load pauses between steps while online reads
are slow (``LatencyGuard``), and runs at full speed while they are fast."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mussel.bulkload import JobManager
from mussel.bulkload.layouts import parse_layout
from mussel.bulkload.loader import Cancelled, LoadPlan, LoadStats, run_load
from mussel.bulkload.source import open_source
from mussel.engine import Store
from mussel.observability.pacing import LatencyGuard
from tests.unit.bulkload.conftest import T0, content, load, write_cells

ROWS, BATCH = 3000, 500  # six source batches, then the sorted chunks: several steps


def _load(store: Store, tmp_path: Path, guard: LatencyGuard | None,
          cancelled: threading.Event | None = None) -> tuple[LoadStats, float]:  # fmt: skip
    src = write_cells(tmp_path / "in.parquet", [(f"k{i:04d}", "", "v") for i in range(ROWS)])
    info, epoch = store.catalog.reserve_epoch("ns", "t")
    plan = LoadPlan(
        "ns", "t", info.id, epoch, T0, "merge", parse_layout("cells", {}),
        open_source(str(src)), tmp_path / "w", batch_rows=BATCH, sst_cells=700,
    )  # fmt: skip
    stats = LoadStats()
    started = time.monotonic()
    run_load(store, plan, stats, cancelled or threading.Event(), lambda _s: {}, guard)
    return stats, time.monotonic() - started


def _p99(value: float) -> Callable[[], float | None]:
    return lambda: value


def test_a_load_pauses_at_every_step_while_online_reads_are_slow(
    store: Store, tmp_path: Path
) -> None:
    guard = LatencyGuard(_p99(0.2), target_s=0.005, max_pause_s=0.08)
    stats, elapsed = _load(store, tmp_path, guard)
    steps = ROWS // BATCH + 1  # at least one sorted chunk after the batches
    assert stats.throttled_steps >= steps and guard.throttled == stats.throttled_steps
    # pauses 5, 10, 20, 40, 80, 80, 80 ms ...: at least that long
    assert elapsed >= 0.005 + 0.01 + 0.02 + 0.04 + 0.08 * (steps - 4)
    assert len(content(store)) == ROWS  # and it still loads everything


def test_a_load_does_not_pause_while_online_reads_are_fast_or_unknown(
    store: Store, tmp_path: Path
) -> None:
    for p99 in (_p99(0.001), lambda: None):
        guard = LatencyGuard(p99, target_s=0.005, max_pause_s=0.08)
        stats, _ = _load(store, tmp_path, guard)
        assert stats.throttled_steps == 0 and guard.pause_s == 0.0


def test_a_cancel_ends_a_pause_at_once(store: Store, tmp_path: Path) -> None:
    cancelled = threading.Event()
    guard = LatencyGuard(_p99(0.2), target_s=0.005, min_pause_s=30.0, max_pause_s=30.0)
    threading.Timer(0.2, cancelled.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        _load(store, tmp_path, guard, cancelled)
    assert time.monotonic() - started < 10


def test_job_manager_loads_yield_to_a_read_p99_that_rises_during_the_load(
    store: Store, tmp_path: Path
) -> None:
    """The target is set at the start of a load (``LatencyGuard.for_run``): a p99 that
    rises past 1.15x its value then holds the load back; one that stays put does not."""
    calls: list[float] = []

    def rising() -> float:
        calls.append(time.monotonic())
        return 0.001 if len(calls) == 1 else 0.05  # the baseline, then slow reads

    src = write_cells(tmp_path / "in.parquet", [(f"k{i:04d}", "", "v") for i in range(ROWS)])
    timings = {}
    for name, source in (("steady", _p99(0.05)), ("rising", rising)):
        m = JobManager(store, tmp_path / f"bulk-{name}", batch_rows=BATCH, sst_cells=700,
                       read_p99_s=source)  # fmt: skip
        try:
            started = time.monotonic()
            assert load(m, src).state == "committed"
            timings[name] = time.monotonic() - started
        finally:
            m.close()
    assert len(calls) > ROWS // BATCH  # asked before every step
    assert timings["rising"] >= 0.005 + 0.01 + 0.02 + 0.04 + 0.08 + 0.16


def test_the_target_of_a_run_is_its_starting_p99_times_the_rise_or_the_target() -> None:
    steady = LatencyGuard.for_run(_p99(0.05), 0.005, 1.15)
    assert steady.target_s == pytest.approx(0.0575)
    assert [steady.pause() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert LatencyGuard.for_run(lambda: None, 0.005, 1.15).target_s == 0.005
    assert LatencyGuard.for_run(_p99(0.001), 0.005, 1.15).target_s == 0.005
    p99 = [0.05]
    rising = LatencyGuard.for_run(lambda: p99[0], 0.005, 1.15)
    p99[0] = 0.07  # past 1.15 x 0.05
    assert [rising.pause() for _ in range(3)] == [0.005, 0.01, 0.02]
