"""``Watermark``: how far the replayer has applied each partition, and waiting on it.

Strong reads and ``ack=applied`` writes wait here until the applied positions
reach the positions they need.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from mussel.clock import Clock

__all__ = ["Watermark"]


class Watermark:
    def __init__(self, positions: Mapping[int, int], clock: Clock) -> None:
        self._applied: dict[int, int] = dict(positions)
        self.applied_total = sum(self._applied.values())
        """The sum of the applied positions (lock-free read): with a log whose
        ``acked_total`` is the sum of its end offsets, equal totals mean every
        partition is applied up to its end (see ``Store.get``)."""
        self._cond = threading.Condition()
        self._clock = clock
        self._caught_up_at = clock.monotonic()
        self.waiters = 0
        """Callers blocked in ``wait`` now (a remote watcher polls faster while > 0)."""
        self.demand = threading.Event()
        """Set by every ``wait`` that has to block: wakes a watcher that polls lazily."""

    def advance(
        self, positions: Mapping[int, int], caught_up: bool, at: float | None = None
    ) -> None:
        """Publish new applied positions; ``caught_up`` when nothing acknowledged by
        (monotonic) time ``at`` (default: now) is still pending."""
        with self._cond:
            self._applied.update(positions)
            self.applied_total = sum(self._applied.values())
            if caught_up:
                self._caught_up_at = self._clock.monotonic() if at is None else at
            self._cond.notify_all()

    def mark_caught_up(self, at: float | None = None) -> None:
        with self._cond:
            self._caught_up_at = self._clock.monotonic() if at is None else at

    def applied(self) -> dict[int, int]:
        with self._cond:
            return dict(self._applied)

    @property
    def live(self) -> dict[int, int]:
        """The applied positions themselves (not a copy), for lock-free reads on hot
        paths. Callers must not modify it."""
        return self._applied

    def position(self, partition: int) -> int:
        """The next offset to apply in ``partition`` (lock-free read)."""
        return self._applied.get(partition, 0)

    def reached(self, positions: Mapping[int, int]) -> bool:
        applied = self._applied
        return all(applied.get(p, 0) >= off for p, off in positions.items())

    def wait(self, positions: Mapping[int, int], timeout_s: float) -> bool:
        """True once every partition in ``positions`` is applied up to (excluding) its
        offset; False if ``timeout_s`` passes first."""
        if self.reached(positions):
            return True
        with self._cond:
            self.waiters += 1
            self.demand.set()
            try:
                return self._cond.wait_for(lambda: self.reached(positions), timeout_s)
            finally:
                self.waiters -= 1

    def staleness_ms(self) -> float:
        """Upper estimate of how far behind acknowledged writes reads may be."""
        return max(0.0, (self._clock.monotonic() - self._caught_up_at) * 1000.0)
