"""Pacing of expiration sweeps: a deletes-per-second budget and batch priority.

``DeleteBudget`` is a token bucket shared by every sweep worker: a worker takes as
many tokens as it is about to delete and sleeps until they are there. ``None`` as
the rate means no limit.

``LatencyGuard`` is batch priority: before each step a sweep asks it how long to
pause. While the online read latency (a callable giving the recent p99 in seconds)
is above its target, the pause doubles, up to ``max_pause_s``; once latency is back
under the target it halves again. Sweeps so slow down when online reads suffer,
and go back to full speed when they recover.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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


class LatencyGuard:
    def __init__(
        self,
        p99_s: Callable[[], float | None] | None,
        target_s: float,
        *,
        min_pause_s: float = 0.0,
        max_pause_s: float = 1.0,
    ) -> None:
        self._p99 = p99_s
        self.target_s = target_s
        self._min = min_pause_s
        self._max = max_pause_s
        self.pause_s = min_pause_s
        self.throttled = 0  # steps that paused because online latency was high

    def pause(self) -> float:
        """How long to pause before the next step (and adapt)."""
        latency = self._p99() if self._p99 is not None else None
        if latency is not None and latency > self.target_s:
            self.pause_s = min(self._max, max(0.005, self.pause_s * 2))
            self.throttled += 1
        else:
            self.pause_s = max(self._min, self.pause_s / 2 if self.pause_s > 0.005 else 0.0)
        return self.pause_s
