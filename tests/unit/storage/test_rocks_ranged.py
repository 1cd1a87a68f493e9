"""``RangeDeletes``: spans stay pending until a compaction that began after them covers them."""

from __future__ import annotations

from mussel.codec.keys import table_prefix
from mussel.storage.rocksdb.ranged import RangeDeletes


def test_a_span_is_pending_until_compactions_cover_all_of_it() -> None:
    r = RangeDeletes()
    r.add(1, b"c", b"g")
    assert 1 in r.tables
    assert not r.compacted(1, b"a", b"d", r.seq())  # [d, g) left
    assert not r.compacted(1, b"e", b"f", r.seq())  # [d, e) and [f, g) left
    assert not r.compacted(2, b"a", b"z", r.seq())  # another table
    assert r.compacted(1, b"d", b"z", r.seq())
    assert 1 not in r.tables


def test_a_span_added_during_a_compaction_stays_pending() -> None:
    r = RangeDeletes()
    r.add(1, b"c", b"d")
    seq = r.seq()  # the compaction begins
    r.add(1, b"e", b"f")  # written meanwhile: maybe not in the compaction's input
    assert not r.compacted(1, b"a", b"z", seq)
    assert r.compacted(1, b"a", b"z", r.seq())


def test_a_table_known_from_its_marker_is_pending_whole() -> None:
    r = RangeDeletes([7])
    tp = table_prefix(7)
    assert 7 in r.tables
    assert not r.compacted(7, tp, tp + b"m", r.seq())
    assert r.compacted(7, tp + b"m", table_prefix(8), r.seq())
