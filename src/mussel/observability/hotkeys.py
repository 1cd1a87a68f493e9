"""Hot keys: per table, the pks read and written most in the last seconds.

Each process counts the pks of the requests it serves, per table, in windows of
``window_s`` seconds aligned on wall-clock time (so every process rolls over at the
same moment and their counts add up). A window keeps at most ``max_keys`` pks per
table: past that, it keeps the busiest quarter, so a flood of distinct keys costs
bounded memory and the hot ones stay. A key's rate is its count in the last complete
window plus the current one, over the time they cover.

Counting is a dict increment per pk: cheap enough for every request.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["HotKeys"]

_Counts = dict[tuple[str, str], dict[bytes, int]]


class HotKeys:
    def __init__(self, window_s: float = 10.0, max_keys: int = 4096) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._window = self._index(time.time())
        self._cur: _Counts = {}
        self._prev: _Counts = {}
        self._span = (0.0, 0.0)
        """[start, end) of the current window in ``time.time()`` seconds: a hit inside
        it needs no division to know its window."""
        self._set_span()

    def _index(self, now: float) -> int:
        return int(now // self.window_s)

    def _set_span(self) -> None:
        self._span = (self._window * self.window_s, (self._window + 1) * self.window_s)

    def _roll(self, now: float) -> None:
        start, end = self._span
        if start <= now < end:
            return
        index = self._index(now)
        if index != self._window:
            self._prev = self._cur if index == self._window + 1 else {}
            self._cur = {}
            self._window = index
        self._set_span()

    def hit(self, namespace: str, table: str, pks: Iterable[bytes]) -> None:
        with self._lock:
            self._roll(time.time())
            counts = self._cur.get((namespace, table))
            if counts is None:
                counts = self._cur[(namespace, table)] = {}
            for pk in pks:
                counts[pk] = counts.get(pk, 0) + 1
            if len(counts) > self.max_keys:
                self._trim(namespace, table, counts)

    def hit_one(self, namespace: str, table: str, pk: bytes) -> None:
        """``hit(namespace, table, [pk])``, the point read's: no sequence to build."""
        now = time.time()
        with self._lock:
            start, end = self._span
            if not start <= now < end:
                self._roll(now)
            counts = self._cur.get((namespace, table))
            if counts is None:
                counts = self._cur[(namespace, table)] = {}
            counts[pk] = counts.get(pk, 0) + 1
            if len(counts) > self.max_keys:
                self._trim(namespace, table, counts)

    def _trim(self, namespace: str, table: str, counts: dict[bytes, int]) -> None:
        # = heapq.nlargest(n, items, key=count) (its documented equivalent), ~5x
        # faster here: a flood of fresh keys (writes) trims every few requests
        keep = sorted(counts, key=counts.__getitem__, reverse=True)[: self.max_keys // 4]
        self._cur[(namespace, table)] = {pk: counts[pk] for pk in keep}

    def snapshot(self, limit: int = 256) -> dict[str, Any]:
        """This process's busiest pks per table, as plain data (for another process)."""
        with self._lock:
            self._roll(time.time())

            def top(counts: _Counts) -> list[list[Any]]:
                return [
                    [ns, table, [[pk, n] for pk, n in heapq.nlargest(limit, c.items(), key=_n)]]
                    for (ns, table), c in counts.items()
                ]

            return {"window": self._window, "cur": top(self._cur), "prev": top(self._prev)}

    def top(
        self,
        namespace: str,
        table: str,
        limit: int,
        peers: Sequence[Mapping[str, Any]] = (),
    ) -> list[tuple[bytes, float]]:
        """The ``limit`` busiest pks of a table, with requests per second, counting
        this process and the ``peers``' snapshots."""
        now = time.time()
        mine = self.snapshot(limit=max(limit, 256))
        window = self._index(now)
        totals: dict[bytes, int] = {}
        for snap in (mine, *peers):
            shift = window - int(snap.get("window", window))
            for part, age in (("cur", 0), ("prev", 1)):
                if shift + age > 1:
                    continue  # older than the last complete window
                for ns, tbl, items in snap.get(part, ()):
                    if ns == namespace and tbl == table:
                        for pk, n in items:
                            totals[bytes(pk)] = totals.get(bytes(pk), 0) + int(n)
        covered = self.window_s + (now - window * self.window_s)
        best = heapq.nlargest(limit, totals.items(), key=_n)
        return [(pk, n / covered) for pk, n in best]


def _n(item: tuple[Any, int]) -> int:
    return item[1]
