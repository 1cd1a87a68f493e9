"""The dispatchers' read latency, published in the metadata for the workers' batch work."""

from __future__ import annotations

import time

import msgspec

from mussel.codec.keys import meta_key
from mussel.dispatch.shared_latency import SharedReadLatency
from mussel.storage.memory import MemoryBackend


def test_a_worker_reads_the_slowest_dispatchers_fresh_p99() -> None:
    backend = MemoryBackend()
    fast = SharedReadLatency(backend, lambda: 0.002)
    slow = SharedReadLatency(backend, lambda: 0.040)
    idle = SharedReadLatency(backend, lambda: None)  # too few reads to tell
    worker = SharedReadLatency(backend, period_s=0.0)
    assert worker.cluster_p99() is None  # nobody published
    for d in (fast, idle):
        d.publish()
    assert worker.cluster_p99() == 0.002
    slow.publish()
    assert worker.cluster_p99() == 0.040


def test_old_items_do_not_count_and_very_old_or_damaged_ones_are_removed() -> None:
    backend = MemoryBackend()
    worker = SharedReadLatency(backend, period_s=0.0, fresh_s=5.0, forget_s=60.0)
    item = {"at": time.time() - 10, "p99_s": 0.5}  # a dispatcher that stopped publishing
    gone = {"at": time.time() - 120, "p99_s": 0.5}
    backend.meta_write(
        {
            meta_key("latency", "old"): msgspec.msgpack.encode(item),
            meta_key("latency", "gone"): msgspec.msgpack.encode(gone),
            meta_key("latency", "bad"): b"\xc1",
        }
    )
    assert worker.cluster_p99() is None
    assert [k for k, _ in backend.meta_scan(meta_key("latency", ""))] == [
        meta_key("latency", "old")
    ]


def test_the_worker_reads_the_database_at_most_once_per_period() -> None:
    backend = MemoryBackend()
    dispatcher = SharedReadLatency(backend, lambda: 0.01)
    worker = SharedReadLatency(backend, period_s=60.0)
    assert worker.cluster_p99() is None
    dispatcher.publish()
    assert worker.cluster_p99() is None  # the cached answer, for up to a minute


def test_a_publisher_publishes_until_stopped_then_removes_its_item() -> None:
    backend = MemoryBackend()
    dispatcher = SharedReadLatency(backend, lambda: 0.01, period_s=0.01)
    worker = SharedReadLatency(backend, period_s=0.0)
    dispatcher.start()
    deadline = time.monotonic() + 5
    while worker.cluster_p99() is None:
        assert time.monotonic() < deadline, "never published"
        time.sleep(0.01)
    dispatcher.stop()
    assert worker.cluster_p99() is None
