"""The dashboard's recent history: fixed-size time series kept in memory.

Pure bookkeeping, no clock and no I/O: the caller samples (every few seconds, in the
process that owns the data) and passes the time in. Three pieces:

* ``History``: aligned series in a ring buffer (the last ``capacity`` samples, e.g.
  an hour at one sample per 5 s); a series that appears later is ``None`` before.
* ``CounterRates``: per-second rates from monotonically increasing totals (a total
  that goes down, e.g. a restarted peer, starts over instead of giving a negative).
* ``HistogramWindow``: quantiles over the last few samples of cumulative histogram
  bucket counts (what ``Histogram`` keeps), estimated as Prometheus'
  ``histogram_quantile`` does: linear interpolation inside the bucket.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CounterRates", "History", "HistogramWindow", "quantile"]


def quantile(bounds: Sequence[float], counts: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0 < q < 1) of observations counted per bucket.

    ``bounds`` are the buckets' upper bounds in increasing order; ``counts`` has one
    (non-cumulative) count per bound plus one for the +Inf bucket. None when nothing
    was observed. A quantile in the +Inf bucket is reported as the highest bound (the
    histogram cannot tell more); inside a bucket it is interpolated linearly from the
    previous bound (0 for the first bucket).
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be between 0 and 1, not {q}")
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(counts)} counts for {len(bounds)} bounds (+Inf)")
    total = float(sum(counts))
    if total <= 0:
        return None
    rank = q * total
    running = 0.0
    for i, n in enumerate(counts):
        if n > 0 and running + n >= rank:
            if i == len(bounds):
                return float(bounds[-1]) if bounds else None
            lower = 0.0 if i == 0 else float(bounds[i - 1])
            upper = float(bounds[i])
            return lower + (upper - lower) * (rank - running) / n
        running += n
    return float(bounds[-1]) if bounds else None  # pragma: no cover (rounding)


class History:
    """The last ``capacity`` samples of named series, aligned on sample times."""

    def __init__(self, capacity: int = 720) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._times: deque[float] = deque(maxlen=capacity)
        self._series: dict[str, deque[float | None]] = {}

    def __len__(self) -> int:
        return len(self._times)

    def add(self, t: float, values: Mapping[str, float | None]) -> None:
        """Append a sample taken at ``t`` (seconds; not before the previous one).

        A series missing from ``values`` gets None at ``t``; a new one gets None for
        the samples before. A series that is None in every kept sample is dropped.
        """
        if self._times and t < self._times[-1]:
            raise ValueError(f"sample time {t} is before the previous one ({self._times[-1]})")
        self._times.append(t)
        n = len(self._times)
        for name in values.keys() - self._series.keys():
            self._series[name] = deque([None] * (n - 1), maxlen=self.capacity)
        for name, series in list(self._series.items()):
            value = values.get(name)
            series.append(None if value is None or math.isnan(value) else float(value))
            if value is None and all(v is None for v in series):
                del self._series[name]

    def to_json(self, since: float | None = None) -> dict[str, Any]:
        """``{"t": [times], "series": {name: [values or None]}}``, samples at or after
        ``since`` (all when None)."""
        times = list(self._times)
        start = 0
        if since is not None:
            while start < len(times) and times[start] < since:
                start += 1
        return {
            "t": times[start:],
            "series": {name: list(s)[start:] for name, s in sorted(self._series.items())},
        }


class CounterRates:
    """Per-second rates of counters between consecutive ``update`` calls."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._last_t: float | None = None

    def update(self, t: float, totals: Mapping[str, float]) -> dict[str, float]:
        """The rate of each total since the previous update (empty on the first call,
        or when no time passed). A counter seen for the first time counts from 0 only
        if it is new since the last update (its whole total happened in between)."""
        out: dict[str, float] = {}
        if self._last_t is not None and t > self._last_t:
            dt = t - self._last_t
            for name, total in totals.items():
                before = self._last.get(name, 0.0)
                delta = total - before if total >= before else total  # a reset
                out[name] = delta / dt
        self._last = dict(totals)
        self._last_t = t
        return out


class HistogramWindow:
    """Quantiles of the observations made over the last ``keep`` samples.

    Each ``add`` gives, per series, the cumulative bucket counts since start (one per
    bound plus +Inf, as ``Histogram`` keeps them, not the running Prometheus sums).
    """

    def __init__(self, bounds: Sequence[float], keep: int = 12) -> None:
        if keep < 2:
            raise ValueError("keep must be at least 2 (a window is between two samples)")
        self.bounds = tuple(bounds)
        self._samples: deque[dict[str, list[float]]] = deque(maxlen=keep)

    def add(self, counts: Mapping[str, Sequence[float]]) -> None:
        width = len(self.bounds) + 1
        for name, c in counts.items():
            if len(c) != width:
                raise ValueError(f"{name}: {len(c)} bucket counts, expected {width}")
        self._samples.append({name: list(c) for name, c in counts.items()})

    def _window(self, first: Mapping[str, list[float]], last: Mapping[str, list[float]]) -> Any:
        out: dict[str, list[float]] = {}
        for name, now in last.items():
            before = first.get(name)
            if before is None or any(b > a for a, b in zip(now, before, strict=True)):
                diff = list(now)  # new series, or a reset: all of it is in the window
            else:
                diff = [a - b for a, b in zip(now, before, strict=True)]
            out[name] = diff
        return out

    def quantiles(self, qs: Sequence[float], last_only: bool = False) -> dict[str, Any]:
        """Per series: ``{"count": n, "q<q>": seconds or None, ...}`` over the window
        (from the oldest kept sample to the newest; just the last interval with
        ``last_only``). Empty until two samples were added."""
        if len(self._samples) < 2:
            return {}
        first = self._samples[-2] if last_only else self._samples[0]
        window = self._window(first, self._samples[-1])
        out: dict[str, Any] = {}
        for name, counts in window.items():
            entry: dict[str, Any] = {"count": int(sum(counts))}
            for q in qs:
                entry[f"q{q:g}"] = quantile(self.bounds, counts, q)
            out[name] = entry
        return out
