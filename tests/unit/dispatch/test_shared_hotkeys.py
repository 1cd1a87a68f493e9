"""Hot keys across dispatchers: each publishes its counts in the metadata, any one
adds the others' to its own."""

from __future__ import annotations

import time

import msgspec
import pytest

from mussel.codec.keys import meta_key
from mussel.dispatch.shared_hotkeys import SharedHotKeys
from mussel.observability.hotkeys import HotKeys
from mussel.storage.memory import MemoryBackend


def test_a_dispatcher_sees_the_counts_another_published() -> None:
    backend = MemoryBackend()
    hot_a, hot_b = HotKeys(), HotKeys()
    a, b = SharedHotKeys(hot_a, backend), SharedHotKeys(hot_b, backend)
    hot_a.hit("ns", "t", [b"k"] * 5)
    hot_b.hit("ns", "t", [b"k", b"other"])
    assert b.peers() == []  # nothing published yet
    a.publish()
    top = hot_b.top("ns", "t", 2, b.peers())
    assert [pk for pk, _ in top] == [b"k", b"other"]
    assert top[0][1] == pytest.approx(6 * top[1][1])  # 5 counted by a, 1 by b
    assert a.peers() == []  # its own snapshot is not a peer's
    a.stop()  # removes its snapshot
    assert b.peers() == []


def test_snapshots_older_than_forget_s_are_removed_and_damaged_ones_skipped() -> None:
    backend = MemoryBackend()
    reader = SharedHotKeys(HotKeys(), backend, forget_s=60.0)
    old = msgspec.msgpack.encode({"at": time.time() - 120, "snapshot": {"window": 0}})
    backend.meta_write({meta_key("hotkeys", "gone"): old, meta_key("hotkeys", "bad"): b"\xc1"})
    assert reader.peers() == []
    assert backend.meta_scan(meta_key("hotkeys", "")) == []
