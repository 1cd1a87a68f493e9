"""The existing ``Replayer`` over a ``KafkaLog``: positions are message offsets + 1."""

from __future__ import annotations

from mussel.catalog import Catalog
from mussel.clock import ManualClock, SystemClock
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
