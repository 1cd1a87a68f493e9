"""The expiration service over a real Store (RocksDB) and an injectable clock."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mussel.catalog.catalog import DROPPED_PREFIX
from mussel.clock import ManualClock
from mussel.engine import Store, StoreConfig
from mussel.expire import ExpirationService, ExpireConfig, LatencyGuard
from mussel.expire.service import RunStats
from mussel.model import Delete, Put
from mussel.storage.base import SweepDeleted
from mussel.storage.rocksdb import RocksConfig

SMALL = StoreConfig(partitions=2, rocks=RocksConfig(block_cache_bytes=8 << 20))
FAST = ExpireConfig(
    interval_s=None, workers=2, subtask_bytes=16 << 10, step_versions=37, range_min=2
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    s = Store.open(tmp_path / "data", SMALL, clock=clock)
    s.put_namespace("ns")
    yield s
    s.close()


def everything(store: Store, table: str) -> list[tuple[bytes, bytes, int, bytes]]:
    """Every visible version of every cell (what any read can see)."""
    cells = store.scan_all("ns", table, versions=1000, limit=5000)
    return [(c.pk, c.sk, c.ts, c.value) for c in cells]


def stored(store: Store, table: str) -> int:
    return store.table_stats("ns", table).approx_cells


def test_random_histories_read_the_same_before_and_after_every_sweep(
    store: Store, clock: ManualClock
) -> None:
    rng = random.Random(11)
    store.put_table("ns", "t", {"max_versions": 3, "ttl_seconds": 50})
    svc = ExpirationService(store, FAST)
    ranges = removed = 0
    try:
        for step in range(60):
            records: list[Put | Delete] = []
            for _ in range(rng.randint(1, 30)):
                pk, sk = f"p{rng.randint(0, 15)}", f"s{rng.randint(0, 2)}"
                ts = clock.now_us() - rng.randint(0, 80) * 1_000_000
                if rng.random() < 0.15:
                    records.append(Delete(pk, sk, ts=ts))
                else:
                    records.append(Put(pk, sk, f"v{step}-{rng.random():.3f}", ts=ts))
            store.write("ns", "t", records, ack="applied")
            if rng.random() < 0.1:
                store.put_table(
                    "ns",
                    "t",
                    {"max_versions": rng.randint(1, 4), "ttl_seconds": rng.choice([None, 20, 60])},
                )
            clock.advance(rng.randint(0, 10))
            if rng.random() < 0.3:
                before = everything(store, "t")
                stats = svc.run("ns", "t")
                assert stats.state == "done"
                assert everything(store, "t") == before
                ranges += stats.range_deletes
                removed += stats.removed
        stats = svc.run("ns", "t")
        assert stats.examined > 0 and stats.subtasks >= 1
        # both ways of deleting were exercised: runs as range deletes, and single keys
        assert ranges > 0 and removed > 2 * ranges
    finally:
        svc.stop()


def test_expired_and_surplus_versions_leave_and_stats_follow(
    store: Store, clock: ManualClock
) -> None:
    store.put_table("ns", "t", {"max_versions": 2, "ttl_seconds": 100})
    now = clock.now_us()
    records = [
        Put(f"k{i:04d}", "s", "x" * 50, ts=now - age * 1_000_000)
        for i in range(500)
        for age in (1, 2, 3, 200)  # 4 versions: 1 surplus, 1 expired
    ]
    store.write("ns", "t", records, ack="applied")
    store.backend.sync()
    before = everything(store, "t")
    assert stored(store, "t") == 2000
    svc = ExpirationService(store, FAST)
    try:
        stats = svc.run("ns", "t")
    finally:
        svc.stop()
    assert (stats.examined, stats.removed) == (2000, 1000)
    assert stats.removed_bytes > 50_000
    assert stored(store, "t") == 1000
    assert everything(store, "t") == before
    last = svc.last_run(store.table_info("ns", "t").id)
    assert last is not None and last.state == "done" and last.ended_us is not None


def test_tombstones_go_after_their_grace_period(store: Store, clock: ManualClock) -> None:
    store.put_table("ns", "t", {"max_versions": 5})
    store.write("ns", "t", [Put("a", "s", "v", ts=clock.now_us() - 10)], ack="applied")
    store.write("ns", "t", [Delete("a", "s")], ack="applied")
    cfg = ExpireConfig(interval_s=None, tombstone_grace_s=60)
    svc = ExpirationService(store, cfg)
    try:
        assert svc.run("ns", "t").removed == 0  # a write at its ts could replace it
        assert stored(store, "t") == 2
        clock.advance(61)
        assert svc.run("ns", "t").removed == 2  # the tombstone and what it hid
        assert stored(store, "t") == 0
    finally:
        svc.stop()


def test_the_scheduler_runs_tables_and_reclaims_dropped_ones(
    store: Store, clock: ManualClock
) -> None:
    store.put_table("ns", "t", {"ttl_seconds": 10})
    store.put_table("ns", "gone")
    store.write("ns", "t", [Put("a", "s", "old", ts=clock.now_us() - 60_000_000)], ack="applied")
    noise = [Put(f"k{i}", "s", random.randbytes(500)) for i in range(4000)]
    store.write("ns", "gone", noise, ack="applied")
    store.backend.sync()
    db = store.backend.db  # type: ignore[attr-defined]
    on_disk = sum(f["size"] for f in db.live_files())
    assert on_disk > 1_500_000
    store.drop_table("ns", "gone")
    clock.advance(31)  # the first run is due interval_s after the table was created
    svc = ExpirationService(store, ExpireConfig(interval_s=30, poll_s=0.02))
    svc.start()
    try:
        t_id = store.table_info("ns", "t").id
        deadline = time.monotonic() + 20
        while svc.last_run(t_id) is None or store.backend.meta_scan(DROPPED_PREFIX):
            assert time.monotonic() < deadline, "the scheduler did not run"
            time.sleep(0.02)
        last = svc.last_run(t_id)
        assert last is not None and last.removed == 1 and last.reason == "scheduled"
        assert last.ended_us is not None
        assert svc.next_run_us(t_id) == last.ended_us + 30_000_000
        assert sum(f["size"] for f in db.live_files()) < on_disk / 10  # space returned
    finally:
        svc.stop()


def test_an_interrupted_run_resumes_where_it_stopped(store: Store, clock: ManualClock) -> None:
    store.put_table("ns", "t", {"max_versions": 1})
    now = clock.now_us()
    store.write(
        "ns",
        "t",
        [Put(f"k{i:04d}", "s", "v", ts=now - age) for i in range(300) for age in (1, 2)],
        ack="applied",
    )
    svc = ExpirationService(
        store, ExpireConfig(interval_s=None, workers=1, step_versions=50, checkpoint_s=0)
    )
    # stop the service from inside the run after a few steps, as a crash would
    calls = {"n": 0}
    real = store.backend.sweep_delete

    def stopping(table_id: int, candidates: list, runs: list) -> SweepDeleted:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 3:
            svc._stop.set()
        return real(table_id, candidates, runs)

    store.backend.sweep_delete = stopping  # type: ignore[method-assign]
    first = svc.run("ns", "t")
    svc._pool.shutdown()
    store.backend.sweep_delete = real  # type: ignore[method-assign]
    assert first.state == "running" and 0 < first.removed < 300
    again = ExpirationService(store, ExpireConfig(interval_s=None, workers=1, step_versions=50))
    try:
        resumed = again.run("ns", "t")
    finally:
        again.stop()
    assert resumed.reason == "resumed" and resumed.state == "done"
    assert resumed.removed == 300  # the run's total, across the interruption
    assert stored(store, "t") == 300


def test_latency_guard_slows_down_and_recovers() -> None:
    p99 = [0.010]
    guard = LatencyGuard(lambda: p99[0], 0.005, max_pause_s=0.1)
    pauses = [guard.pause() for _ in range(8)]
    assert pauses == sorted(pauses) and pauses[-1] == 0.1
    p99[0] = 0.001
    for _ in range(20):
        last = guard.pause()
    assert last == 0.0 and guard.throttled == 8


def test_the_delete_budget_holds_deletes_to_its_rate() -> None:
    from mussel.expire import DeleteBudget

    budget = DeleteBudget(2000.0, burst_s=0.1)  # 200 at once, then 2000/s
    started = time.monotonic()
    for _ in range(12):
        budget.take(100)
    elapsed = time.monotonic() - started
    assert elapsed >= (1200 - 200) / 2000 * 0.9  # the burst, then the rate
    unlimited = DeleteBudget(None)
    started = time.monotonic()
    unlimited.take(10**9)
    assert time.monotonic() - started < 0.5


def test_each_table_runs_on_its_own_interval(store: Store, clock: ManualClock) -> None:
    store.put_table("ns", "fast", {"ttl_seconds": 10, "expire_interval_s": 20})
    store.put_table("ns", "slow", {"ttl_seconds": 10})  # the server's interval: 300 s
    store.put_table("ns", "manual", {"ttl_seconds": 10})
    fast, slow = store.table_info("ns", "fast"), store.table_info("ns", "slow")
    created = fast.created_us
    svc = ExpirationService(store, ExpireConfig(interval_s=300, poll_s=0.02))
    assert svc.next_run_us(fast.id) == created + 20_000_000
    assert svc.next_run_us(slow.id) == slow.created_us + 300_000_000

    def write_old(table: str) -> None:
        old = clock.now_us() - 60_000_000
        store.write("ns", table, [Put("a", "s", "old", ts=old)], ack="applied")

    def wait_for(table_id: int) -> RunStats:
        """The table's next run, started at the current (manual) time."""
        since = clock.now_us()
        deadline = time.monotonic() + 20
        while True:
            last = svc.last_run(table_id)
            if last is not None and last.started_us >= since:
                return last
            assert time.monotonic() < deadline, "the scheduler did not run"
            time.sleep(0.02)

    write_old("fast")
    write_old("slow")
    svc.start()
    try:
        time.sleep(0.2)  # several polls: nothing is due yet
        assert svc.last_run(fast.id) is None and svc.last_run(slow.id) is None
        clock.advance(21)
        first = wait_for(fast.id)
        assert first.reason == "scheduled" and first.removed == 1 and first.ended_us
        assert svc.next_run_us(fast.id) == first.ended_us + 20_000_000
        assert svc.last_run(slow.id) is None  # its 300 s are not over
        write_old("fast")
        clock.advance(21)
        second = wait_for(fast.id)
        assert second.removed == 1 and second.started_us == first.started_us + 21_000_000
        assert svc.last_run(slow.id) is None
        # a table's own interval changed: the next run follows it at once
        store.put_table("ns", "slow", {"expire_interval_s": 30})
        assert svc.next_run_us(slow.id) == slow.created_us + 30_000_000
        assert wait_for(slow.id).removed == 1  # 42 s after its creation: overdue
    finally:
        svc.stop()
    # on demand only on the server: a table with its own interval is still scheduled
    svc = ExpirationService(store, ExpireConfig(interval_s=None))
    manual = store.table_info("ns", "manual")
    assert svc.next_run_us(manual.id) is None
    last_fast = svc.last_run(fast.id)
    assert last_fast is not None and last_fast.ended_us is not None
    assert svc.next_run_us(fast.id) == last_fast.ended_us + 20_000_000
    svc.stop()


def test_a_run_measures_the_bytes_returned_to_the_file_system(
    store: Store, clock: ManualClock
) -> None:
    store.put_table("ns", "t", {"ttl_seconds": 100})
    now = clock.now_us()
    rng = random.Random(5)
    records = [
        Put(f"k{i:05d}", "s", rng.randbytes(400), ts=now - (200 if i % 2 else 1) * 1_000_000)
        for i in range(6000)
    ]  # every other pk expired: no runs, single deletes
    records += [
        Put(f"z{i:05d}", "s", rng.randbytes(400), ts=now - 500_000_000) for i in range(3000)
    ]  # a dead block: range deletes
    store.write("ns", "t", records, ack="applied")
    svc = ExpirationService(store, ExpireConfig(interval_s=None))
    try:
        stats = svc.run("ns", "t")
    finally:
        svc.stop()
    assert stats.removed == 6000 and stats.range_deletes >= 1
    assert stats.disk_bytes_before is not None and stats.disk_bytes_after is not None
    assert stats.disk_reclaimed == stats.disk_bytes_before - stats.disk_bytes_after
    # incompressible values: what left the disk is close to what was removed
    assert stats.disk_reclaimed >= 0.8 * stats.removed_bytes
    assert stats.disk_bytes_after < 0.6 * stats.disk_bytes_before
