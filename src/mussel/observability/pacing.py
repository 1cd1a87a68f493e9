"""Batch priority (SPEC §7): background work slows down while online reads are slow.

``LatencyGuard`` is asked, before each step of a batch job (an expiration sweep, a bulk
load), how long to pause. While the online read latency (a callable giving the recent
p99 in seconds, or None when there were too few reads to tell) is above its target,
the pause doubles, up to ``max_pause_s``; once latency is back under the target it
halves again. Batch work so slows down when online reads suffer, and goes back to full
speed when they recover. ``LatencyGuard.for_run`` sets the target for one run: the
configured target, or ``rise`` times the p99 when the run starts, whichever is higher
(so that a machine whose reads are always slower than the target is not held back for
ever by work that is not the cause).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LatencyGuard"]


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

    @classmethod
    def for_run(
        cls, p99_s: Callable[[], float | None] | None, target_s: float, rise: float
    ) -> LatencyGuard:
        """A guard for one run of batch work: target ``max(target_s, rise x p99 now)``."""
        baseline = p99_s() if p99_s is not None else None
        if baseline is not None:
            target_s = max(target_s, baseline * rise)
        return cls(p99_s, target_s)

    def pause(self) -> float:
        """How long to pause before the next step (and adapt)."""
        latency = self._p99() if self._p99 is not None else None
        if latency is not None and latency > self.target_s:
            self.pause_s = min(self._max, max(0.005, self.pause_s * 2))
            self.throttled += 1
        else:
            self.pause_s = max(self._min, self.pause_s / 2 if self.pause_s > 0.005 else 0.0)
        return self.pause_s
