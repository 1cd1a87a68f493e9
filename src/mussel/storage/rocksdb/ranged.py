"""``RangeDeletes``: which key spans a sweep deleted as ranges that are not compacted yet.

RocksDB's tailing iterators (the point-read path, ``RocksBackend._point_iter``) do
not apply range deletions: a version a sweep deleted as part of a range stays
visible to them, in the memtable and in files alike, until a compaction has
removed it from the files. Such a version is dead by the time it is deleted, but
it could come back to a read (a TTL raised after the sweep), so point reads of a
table with pending spans check what they find with a point get, which applies
range deletions.

A span is pending from just before its delete is written until a compaction that
began after the write covered it (``compacted``). Pending tables survive a
restart as one metadata marker each (``meta_key("ranged", "<table_id>")``,
written in the range delete's batch and removed once no span is pending); a
restarted process knows only the table, so the whole table is pending again until
compactions covered it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from mussel.codec.keys import meta_key, prefix_end, table_prefix

__all__ = ["MARKER_PREFIX", "RangeDeletes", "marker_key"]

MARKER_PREFIX = meta_key("ranged", "")


def marker_key(table_id: int) -> bytes:
    return meta_key("ranged", f"{table_id:010d}")


def _whole(table_id: int) -> tuple[bytes, bytes]:
    tp = table_prefix(table_id)
    end = prefix_end(tp)
    assert end is not None
    return tp, end


class RangeDeletes:
    """Thread-safe; ``tables`` is read without the lock (a dict lookup on the hot path)."""

    def __init__(self, pending_tables: Iterable[int] = ()) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._spans: dict[int, list[tuple[int, bytes, bytes]]] = {
            t: [(0, *_whole(t))] for t in pending_tables
        }
        self.tables: dict[int, bool] = dict.fromkeys(self._spans, True)
        """The tables with pending spans (their point reads check what they find)."""

    def add(self, table_id: int, start: bytes, end: bytes) -> None:
        """Call before the delete of ``[start, end)`` is written."""
        with self._lock:
            self._seq += 1
            self._spans.setdefault(table_id, []).append((self._seq, start, end))
            self.tables[table_id] = True

    def seq(self) -> int:
        """Take before a compaction begins; pass to ``compacted`` after it ended."""
        with self._lock:
            return self._seq

    def compacted(self, table_id: int, lo: bytes, hi: bytes, seq: int) -> bool:
        """A compaction that began at ``seq`` covered ``[lo, hi)``: the spans added
        before it no longer hide anything there. True if the table has none left."""
        with self._lock:
            spans = self._spans.get(table_id)
            if spans is None:
                return False
            left: list[tuple[int, bytes, bytes]] = []
            for s, a, b in spans:
                if s > seq:
                    left.append((s, a, b))
                    continue
                if a < lo:
                    left.append((s, a, min(b, lo)))
                if hi < b:
                    left.append((s, max(a, hi), b))
            if left:
                self._spans[table_id] = left
                return False
            del self._spans[table_id]
            self.tables.pop(table_id, None)
            return True
