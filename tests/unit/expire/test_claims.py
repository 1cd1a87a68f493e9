"""Several workers over one shared database (distributed mode): a table is swept by
one worker at a time, a dead worker's claim is taken over once its lease ran out,
and a run two workers both queued happens once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mussel.clock import ManualClock
from mussel.engine import Store, StoreConfig
from mussel.expire import ExpirationService, ExpireConfig
from mussel.expire.service import CLAIM_LEASE_S
from mussel.log.memory import MemoryLog
from mussel.model import Put
from mussel.storage.memory import MemoryBackend

CONFIG = ExpireConfig(interval_s=None, workers=1, poll_s=0.05, checkpoint_s=0.01)


@pytest.fixture
def shared() -> Iterator[tuple[Store, list[Store], ManualClock]]:
    """A store that writes and applies, and two worker stores on the same backend
    (shared catalog), as distributed workers are."""
    clock = ManualClock()
    backend, wlog = MemoryBackend(), MemoryLog(2)
    writer = Store(backend, wlog, clock=clock, config=StoreConfig(partitions=2))
    workers = [
        Store(backend, wlog, clock=clock, config=StoreConfig(partitions=2), role="dispatcher")
        for _ in range(2)
    ]
    yield writer, workers, clock
    for s in workers:
        s.replayer.stop()
    writer.close()


def test_one_worker_at_a_time_and_a_lapsed_claim_is_taken_over(shared) -> None:  # type: ignore[no-untyped-def]
    writer, (wa, wb), clock = shared
    writer.put_namespace("ns")
    writer.put_table("ns", "t", {"max_versions": 1})
    tid = writer.table_info("ns", "t").id
    a, b = ExpirationService(wa, CONFIG), ExpirationService(wb, CONFIG)
    assert a._claims and b._claims
    assert a._claim(tid)
    assert not b._claim(tid)  # a holds it
    assert a._claim(tid, renew=True)
    clock.advance(CLAIM_LEASE_S + 1)  # a stopped renewing (died)
    assert b._claim(tid)  # taken over
    assert not a._claim(tid, renew=True)  # and a knows it lost it
    b._release(tid)
    assert a._claim(tid)


def test_a_run_queued_by_both_workers_runs_once(shared) -> None:  # type: ignore[no-untyped-def]
    writer, (wa, wb), clock = shared
    writer.put_namespace("ns")
    writer.put_table("ns", "t", {"max_versions": 1})
    for i in range(3):
        writer.write("ns", "t", [Put(b"k%d" % j, b"", b"v%d" % i, i + 1) for j in range(50)])
    writer.write("ns", "t", [Put(b"x", b"", b"v", 10)], ack="applied")
    tid = writer.table_info("ns", "t").id
    services = [ExpirationService(w, CONFIG) for w in (wa, wb)]
    runs: list[int] = []
    for svc in services:
        original = svc._run

        def counted(info, reason, original=original):  # type: ignore[no-untyped-def]
            runs.append(info.id)
            time.sleep(0.2)  # long enough for the other worker to try meanwhile
            return original(info, reason)

        svc._run = counted  # type: ignore[method-assign]
        svc._queued[tid] = "on_demand"
        svc._queued_us[tid] = clock.now_us()
    clock.advance(1)
    for svc in services:
        svc.start()
    deadline = time.monotonic() + 10
    while services[0].last_run(tid) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the other worker's turn comes and goes
    for svc in services:
        svc.stop()
    last = services[0].last_run(tid)
    assert last is not None and last.state == "done" and last.removed == 100
    assert runs == [tid]
