"""The injectable clock. Nothing in Mussel reads the wall clock except through this.

``now_us()`` is wall time in microseconds since the epoch (cell timestamps, TTL);
``monotonic()`` is seconds for timeouts and rates. Tests use :class:`ManualClock`
to jump time (TTL expiry) without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now_us(self) -> int:
        """Wall-clock microseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, now_us: int = 1_700_000_000_000_000) -> None:
        self._now_us = now_us
        self._mono = 0.0
        self._lock = threading.Lock()

    def now_us(self) -> int:
        with self._lock:
            return self._now_us

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        with self._lock:
            self._now_us += int(seconds * 1_000_000)
            self._mono += seconds

    def set_us(self, now_us: int) -> None:
        """Set wall time (monotonic time moves forward by the difference, never back)."""
        with self._lock:
            delta = now_us - self._now_us
            self._now_us = now_us
            if delta > 0:
                self._mono += delta / 1_000_000
