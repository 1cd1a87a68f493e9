from __future__ import annotations

import threading
import time

from mussel.catalog import Catalog
from mussel.clock import ManualClock, SystemClock
from mussel.errors import UnavailableError
from mussel.log.memory import MemoryLog
from mussel.model import OP_PUT, Mutation
from mussel.replay import Replayer, Watermark
from mussel.storage.memory import MemoryBackend
from mussel.storage.versions import ReadFilter, Visibility


def setup() -> tuple[MemoryLog, MemoryBackend, Catalog, int]:
    backend = MemoryBackend()
    catalog = Catalog(backend, ManualClock())
    catalog.put_namespace("ns")
    tid = catalog.put_table("ns", "t", {}).id
    return MemoryLog(4), backend, catalog, tid


def test_applies_in_order_and_stores_positions_with_the_data() -> None:
    wlog, backend, catalog, tid = setup()
    placed = wlog.append([Mutation(tid, OP_PUT, b"k", b"", 1, b"v%d" % i) for i in range(5)])
    r = Replayer(wlog, backend, catalog, SystemClock())
    r.start()
    part, last = placed[-1]
    assert r.watermark.wait({part: last + 1}, 5.0)
    r.stop()
    cells = backend.get_cell(tid, Visibility(), b"k", b"", ReadFilter())
    assert cells[0].value == b"v4"  # equal ts: the later write wins
    assert backend.applied_positions()[part] == last + 1


def test_restart_resumes_from_the_stored_positions_without_reapplying() -> None:
    wlog, backend, catalog, tid = setup()
    wlog.append([Mutation(tid, OP_PUT, b"k", b"", 1, b"first")])
    r = Replayer(wlog, backend, catalog, SystemClock())
    r.start()
    r.stop()
    applied = []
    original = backend.apply

    def spy(muts, epochs, positions):  # type: ignore[no-untyped-def]
        applied.extend(muts)
        original(muts, epochs, positions)

    backend.apply = spy  # type: ignore[method-assign]
    wlog.append([Mutation(tid, OP_PUT, b"k2", b"", 1, b"second")])
    r = Replayer(wlog, backend, catalog, SystemClock())
    r.start()
    r.stop()
    assert [m.value for m in applied] == [b"second"]


def test_records_of_dropped_tables_are_skipped() -> None:
    wlog, backend, catalog, tid = setup()
    catalog.drop_table("ns", "t")
    wlog.append([Mutation(tid, OP_PUT, b"k", b"", 1, b"v")])
    r = Replayer(wlog, backend, catalog, SystemClock())
    r.start()
    r.stop()
    assert backend.table_stats(tid).approx_cells == 0


def test_apply_is_retried_while_the_backend_is_unavailable() -> None:
    wlog, backend, catalog, tid = setup()
    failures = [2]
    original = backend.apply

    def flaky(muts, epochs, positions):  # type: ignore[no-untyped-def]
        if failures[0]:
            failures[0] -= 1
            raise UnavailableError("backend down")
        original(muts, epochs, positions)

    backend.apply = flaky  # type: ignore[method-assign]
    placed = wlog.append([Mutation(tid, OP_PUT, b"k", b"", 1, b"v")])
    r = Replayer(wlog, backend, catalog, SystemClock())
    r.start()
    part, off = placed[0]
    assert r.watermark.wait({part: off + 1}, 5.0)
    r.stop()
    assert failures == [0]


def test_watermark_wait_times_out_and_wakes_up() -> None:
    wm = Watermark({}, SystemClock())
    assert wm.wait({0: 0}, 0.0)
    assert not wm.wait({0: 1}, 0.01)
    threading.Timer(0.05, lambda: wm.advance({0: 1}, True)).start()
    t0 = time.monotonic()
    assert wm.wait({0: 1}, 5.0)
    assert time.monotonic() - t0 < 4.0


def test_a_shared_catalog_is_read_again_for_every_newly_created_table() -> None:
    """Tables created one after another in another process: each one's records are
    applied (never skipped as a dropped table's), however close together they come;
    records of a dropped table are skipped."""
    wlog, backend, writer_catalog, _ = setup()
    replayer_catalog = Catalog(backend, ManualClock(), shared=True)
    r = Replayer(wlog, backend, replayer_catalog, SystemClock())
    r.start()
    try:
        for i in range(20):
            tid = writer_catalog.put_table("ns", f"new{i}", {}).id
            placed = wlog.append([Mutation(tid, OP_PUT, b"k", b"", 1, b"v%d" % i)])
            part, off = placed[0]
            assert r.watermark.wait({part: off + 1}, 5.0)
            got = backend.get_cell(tid, Visibility(), b"k", b"", ReadFilter())
            assert [c.value for c in got] == [b"v%d" % i], i
        gone = writer_catalog.put_table("ns", "gone", {}).id
        writer_catalog.drop_table("ns", "gone")
        placed = wlog.append([Mutation(gone, OP_PUT, b"k", b"", 1, b"x")])
        part, off = placed[0]
        assert r.watermark.wait({part: off + 1}, 5.0)
        assert backend.table_stats(gone).approx_cells == 0
    finally:
        r.stop()
