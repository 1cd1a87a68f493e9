"""``HotKeys``: bounded counting per table (the busiest quarter survives a flood)."""

from __future__ import annotations

import pytest

from mussel.observability import hotkeys
from mussel.observability.hotkeys import HotKeys


def test_a_flood_of_fresh_keys_keeps_the_busiest_and_bounded_memory() -> None:
    hot = HotKeys(window_s=1e9, max_keys=16)  # one window for the whole test
    for _ in range(50):
        hot.hit("ns", "t", [b"hot1", b"hot2"])
    hot.hit("ns", "t", [b"warm"] * 10)
    for i in range(200):  # fresh keys, one hit each: trims many times
        hot.hit("ns", "t", [b"fresh-%d" % i])
    counts = hot._cur[("ns", "t")]
    assert len(counts) <= 16
    assert counts[b"hot1"] == counts[b"hot2"] == 50
    assert counts[b"warm"] == 10
    top = hot.top("ns", "t", 3)
    assert [pk for pk, _ in top][:2] in ([b"hot1", b"hot2"], [b"hot2", b"hot1"])
    assert top[2][0] == b"warm"
    assert hot.top("ns", "other", 3) == []


def test_hit_one_counts_as_hit_does_and_windows_roll_on_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(hotkeys.time, "time", lambda: now[0])
    hot = HotKeys(window_s=10.0)
    hot.hit_one("ns", "t", b"a")
    hot.hit("ns", "t", [b"a", b"b"])
    assert hot._cur[("ns", "t")] == {b"a": 2, b"b": 1}
    now[0] = 1009.999  # same window: no roll
    hot.hit_one("ns", "t", b"a")
    assert hot._cur[("ns", "t")][b"a"] == 3 and hot._prev == {}
    now[0] = 1010.0  # the next window: the counts move to the previous one
    hot.hit_one("ns", "t", b"c")
    assert hot._cur[("ns", "t")] == {b"c": 1}
    assert hot._prev[("ns", "t")] == {b"a": 3, b"b": 1}
    now[0] = 1035.0  # two windows later: nothing is recent any more
    hot.hit_one("ns", "t", b"d")
    assert hot._cur[("ns", "t")] == {b"d": 1} and hot._prev == {}
    now[0] = 1005.0  # the clock stepped back: counting goes on in that window
    hot.hit_one("ns", "t", b"e")
    assert hot._cur[("ns", "t")] == {b"e": 1}


def test_hit_one_trims_a_flood_like_hit() -> None:
    hot = HotKeys(window_s=1e9, max_keys=16)
    for _ in range(5):
        hot.hit_one("ns", "t", b"hot")
    for i in range(100):
        hot.hit_one("ns", "t", b"fresh-%d" % i)
    counts = hot._cur[("ns", "t")]
    assert len(counts) <= 16 and counts[b"hot"] == 5
