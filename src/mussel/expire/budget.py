"""Pacing of expiration sweeps: a deletes-per-second budget and batch priority.

``DeleteBudget`` is a token bucket shared by every sweep worker: a worker takes as
many tokens as it is about to delete and sleeps until they are there. ``None`` as
the rate means no limit.

``LatencyGuard`` (``mussel.observability.pacing``, shared with bulk loads) is batch
priority: before each step a sweep asks it how long to pause; sweeps so slow down when
online reads suffer, and go back to full speed when they recover.
"""

from __future__ import annotations

import threading
import time

from mussel.observability.pacing import LatencyGuard

__all__ = ["DeleteBudget", "LatencyGuard"]


class DeleteBudget:
    def __init__(self, per_second: float | None, burst_s: float = 1.0) -> None:
        self.per_second = per_second
        self._capacity = (per_second or 0.0) * burst_s
        self._tokens = self._capacity
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int, stop: threading.Event | None = None) -> None:
        """Wait until ``n`` deletes fit in the budget (returns early if ``stop`` is set)."""
        if self.per_second is None or n <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(
                    max(self._capacity, float(n)),
                    self._tokens + (now - self._at) * self.per_second,
                )
                self._at = now
                if self._tokens >= n:
                    self._tokens -= n
                    return
                wait = (n - self._tokens) / self.per_second
            if stop is not None:
                if stop.wait(min(wait, 0.5)):
                    return
            else:
                time.sleep(min(wait, 0.5))
