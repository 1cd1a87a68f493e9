"""Strong point reads while the replayer is held back: the whole-log check
(``Watermark.applied_total`` against ``LocalLog.acked_total``) never lets a read
skip a write acknowledged before it, and a lagging partition does not hold up reads
of the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mussel import Cell, Put, Store, UnavailableError
from mussel.log.base import partition_for
from tests.unit.engine.conftest import CONFIG


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Store, threading.Event]]:
    """A RocksDB store whose replayer applies nothing until the event is set."""
    store = Store.open(tmp_path / "s", replace(CONFIG, strong_read_timeout_s=0.3))
    store.put_namespace("ns")
    store.put_table("ns", "t")
    gate = threading.Event()
    gate.set()
    apply = store.backend.apply

    def gated(*args: Any, **kwargs: Any) -> None:
        gate.wait()
        apply(*args, **kwargs)

    store.backend.apply = gated  # type: ignore[method-assign]
    yield store, gate
    gate.set()
    store.close()


def _pk_in_other_partition(store: Store, pk: bytes) -> bytes:
    tid = store.table_info("ns", "t").id
    n = store.log.partitions
    return next(
        b"o%d" % i
        for i in range(1000)
        if partition_for(tid, b"o%d" % i, n) != partition_for(tid, pk, n)
    )


def test_caught_up_store_uses_the_whole_log_check(held: tuple[Store, threading.Event]) -> None:
    store, _ = held
    store.table("ns", "t").put(b"k", b"s", b"v", ts=1, ack="applied")
    wm, log = store.replayer.watermark, store.log
    assert wm.applied_total == log.acked_total == sum(log.end_offsets().values())  # type: ignore[attr-defined]
    assert store.get("ns", "t", b"k", b"s", consistency="strong") == [Cell(b"s", 1, b"v")]


def test_strong_read_waits_for_an_unapplied_write_of_its_partition(
    held: tuple[Store, threading.Event],
) -> None:
    store, gate = held
    t = store.table("ns", "t")
    t.put(b"k", b"s", b"v1", ts=1, ack="applied")
    gate.clear()
    t.put(b"k", b"s", b"v2", ts=2)  # durable, not applied
    assert store.replayer.watermark.applied_total < store.log.acked_total  # type: ignore[attr-defined]
    assert store.get("ns", "t", b"k", b"s", consistency="eventual") == [Cell(b"s", 1, b"v1")]
    with pytest.raises(UnavailableError, match="strong read could not catch up"):
        store.get("ns", "t", b"k", b"s", consistency="strong")
    # another partition has nothing pending: its strong reads do not wait
    other = _pk_in_other_partition(store, b"k")
    started = time.monotonic()
    assert store.get("ns", "t", other, b"s", consistency="strong") == []
    assert time.monotonic() - started < 0.25
    gate.set()
    assert store.get("ns", "t", b"k", b"s", consistency="strong") == [Cell(b"s", 2, b"v2")]


def test_strong_read_after_reopen_sees_writes_applied_before(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", CONFIG) as store:
        store.put_namespace("ns")
        t = store.put_table("ns", "t")
        t.write([Put(b"k%d" % i, b"", b"v", ts=1) for i in range(50)])
    with Store.open(tmp_path / "s", CONFIG) as store:
        assert store.replayer.watermark.applied_total <= store.log.acked_total  # type: ignore[attr-defined]
        t = store.table("ns", "t")
        t.put(b"k50", b"", b"v", ts=1)
        assert [store.get("ns", "t", b"k%d" % i, consistency="strong") for i in range(51)] == [
            [Cell(b"", 1, b"v")]
        ] * 51
