"""``HotKeys``: bounded counting per table (the busiest quarter survives a flood)."""

from __future__ import annotations

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
