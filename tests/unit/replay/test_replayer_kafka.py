"""The existing ``Replayer`` over a ``KafkaLog``: positions are message offsets + 1."""

from __future__ import annotations

import time

from mussel.catalog import Catalog
from mussel.clock import ManualClock, SystemClock
from mussel.errors import UnavailableError
from mussel.log.kafka import KafkaLog
from mussel.model import OP_PUT, Mutation
from mussel.replay import Replayer
from mussel.storage.memory import MemoryBackend
from mussel.storage.versions import ReadFilter, Visibility


def test_replayer_applies_a_kafka_log_and_resumes_without_reapplying(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    backend = MemoryBackend()
    catalog = Catalog(backend, ManualClock())
    catalog.put_namespace("ns")
    tid = catalog.put_table("ns", "t", {}).id
    with KafkaLog(kafka_bootstrap, kafka_topic, partitions=4) as wlog:
        placed = wlog.append([Mutation(tid, OP_PUT, b"k", b"", 1, b"v%d" % i) for i in range(5)])
        part, offset = placed[-1]
        assert {o for _, o in placed} == {offset}  # one message: one offset for all five
        r = Replayer(wlog, backend, catalog, SystemClock())
        r.start()
        assert r.watermark.wait(wlog.end_offsets(), 10.0)
        r.stop()
        cells = backend.get_cell(tid, Visibility(), b"k", b"", ReadFilter())
        assert cells[0].value == b"v4"  # equal ts: the later write of the call wins
        assert backend.applied_positions()[part] == offset + 1

        applied: list[Mutation] = []
        original = backend.apply

        def spy(muts, epochs, positions):  # type: ignore[no-untyped-def]
            applied.extend(muts)
            original(muts, epochs, positions)

        backend.apply = spy  # type: ignore[method-assign]
        wlog.append([Mutation(tid, OP_PUT, b"k2", b"", 1, b"second")])
        r = Replayer(wlog, backend, catalog, SystemClock())
        r.start()
        assert r.watermark.wait(wlog.end_offsets(), 10.0)
        r.stop()
        assert [m.value for m in applied] == [b"second"]


class _Outage(MemoryBackend):
    """A MemoryBackend whose every call fails with ``UnavailableError`` while ``down``."""

    down = False

    def apply(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.down:
            raise UnavailableError("database down (test)")
        return super().apply(*args, **kwargs)

    def applied_positions(self):  # type: ignore[no-untyped-def]
        if self.down:
            raise UnavailableError("database down (test)")
        return super().applied_positions()


def test_a_group_replayer_outlives_a_backend_outage_longer_than_max_poll_interval(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    """The apply is retried for 5 s with max.poll.interval 2 s: the member keeps its
    partitions (no rebalance), and everything is applied exactly once afterwards."""
    backend = _Outage()
    catalog = Catalog(backend, ManualClock())
    catalog.put_namespace("ns")
    tid = catalog.put_table("ns", "t", {}).id
    with KafkaLog(kafka_bootstrap, kafka_topic, partitions=2) as wlog:
        r = Replayer(
            wlog,
            backend,
            catalog,
            SystemClock(),
            group="g",
            group_options={"session_timeout_s": 2.0, "max_poll_interval_s": 2.0},
        )
        r.start()
        wlog.append([Mutation(tid, OP_PUT, b"a", b"", 1, b"before")])
        assert r.watermark.wait(wlog.end_offsets(), 30.0)  # the group formed
        revoked = r.revoked
        backend.down = True
        for i in range(20):
            wlog.append([Mutation(tid, OP_PUT, b"k%d" % i, b"", 1, b"v")])
        time.sleep(5.0)
        backend.down = False
        assert r.watermark.wait(wlog.end_offsets(), 30.0)
        assert r.error is None
        assert r.revoked == revoked  # never dropped from the group
        r.stop()
    for i in range(20):
        got = backend.get_cell(tid, Visibility(), b"k%d" % i, b"", ReadFilter())
        assert [c.value for c in got] == [b"v"]


def test_a_group_replayer_waits_when_the_backend_is_down_at_assignment(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    """The positions of newly assigned partitions cannot be read: the replayer keeps
    asking (it does not stop), and applies once the backend is back."""
    backend = _Outage()
    catalog = Catalog(backend, ManualClock())
    catalog.put_namespace("ns")
    tid = catalog.put_table("ns", "t", {}).id
    with KafkaLog(kafka_bootstrap, kafka_topic, partitions=2) as wlog:
        wlog.append([Mutation(tid, OP_PUT, b"k", b"", 1, b"v")])
        r = Replayer(wlog, backend, catalog, SystemClock(), group="g")
        backend.down = True
        r.start()
        time.sleep(3.0)
        assert r.watermark.applied() == {}
        backend.down = False
        assert r.watermark.wait(wlog.end_offsets(), 30.0)
        assert r.error is None
        r.stop()
    assert [c.value for c in backend.get_cell(tid, Visibility(), b"k", b"", ReadFilter())] == [b"v"]
