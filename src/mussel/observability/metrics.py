"""A small Prometheus registry: counters, gauges and histograms with labels.

Why not prometheus_client: it costs microseconds per observation with labels,
and the read path's budget is a few microseconds. Here an observation is a lock,
a dict lookup and two adds. Exposition follows the Prometheus text format 0.0.4.
Every update takes the metric's lock, so metrics may be updated from any thread.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["Counter", "Gauge", "Histogram", "Registry"]

LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self.lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self, extra: Sequence[Sequence[Any]] = ()) -> list[str]:
        """The metric's lines; ``extra`` holds other processes' ``snapshot()`` items,
        added in (counters and histograms; a gauge is this process's alone)."""
        raise NotImplementedError

    def snapshot(self) -> list[list[Any]]:
        """The values as plain data (``[labels, value]`` items) for ``render(extra=)``
        in another process; empty for gauges."""
        return []


_M = TypeVar("_M", bound=_Metric)


class Counter(_Metric):
    """A counter, increased with ``inc`` or read at scrape time from ``source`` (a
    total the process keeps elsewhere, which must never decrease while it runs; a
    source's values are this process's alone, as a gauge's)."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        source: Callable[[], Iterable[tuple[tuple[str, ...], float]]] | None = None,
    ) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"a counter's name ends with _total (Prometheus): {name}")
        super().__init__(name, help_text, labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._source = source

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        with self.lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, labels: tuple[str, ...] = ()) -> float:
        return self._values.get(labels, 0.0)

    def snapshot(self) -> list[list[Any]]:
        with self.lock:
            return [[list(k), v] for k, v in self._values.items()]

    def snapshot_items(self) -> list[tuple[tuple[str, ...], float]]:
        with self.lock:
            return list(self._values.items())

    def render(self, extra: Sequence[Sequence[Any]] = ()) -> list[str]:
        lines = self.header()
        values = dict(self._values)
        if self._source is not None:
            for k, v in self._source():
                values[k] = values.get(k, 0.0) + v
        for key, v in extra:
            k = tuple(key)
            values[k] = values.get(k, 0.0) + float(v)
        for k, v in sorted(values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, k)} {_num(v)}")
        return lines


class Gauge(_Metric):
    """A gauge whose value is read from a callback at scrape time (or set)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        source: Callable[[], Iterable[tuple[tuple[str, ...], float]]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labels)
        self._source = source
        self._values: dict[tuple[str, ...], float] = {}

    def set(self, value: float, labels: tuple[str, ...] = ()) -> None:
        self._values[labels] = value

    def render(self, extra: Sequence[Sequence[Any]] = ()) -> list[str]:
        lines = self.header()
        items = list(self._source()) if self._source is not None else []
        items += list(self._values.items())
        for key, v in sorted(items):
            lines.append(f"{self.name}{_labels(self.label_names, key)} {_num(v)}")
        return lines


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(buckets)
        # per label set: [count per bucket..., +Inf count, sum]
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        with self.lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [0.0] * (len(self.buckets) + 2)
            series[bisect.bisect_left(self.buckets, value)] += 1
            series[-1] += value

    def count(self, labels: tuple[str, ...] = ()) -> int:
        series = self._series.get(labels)
        return 0 if series is None else int(sum(series[:-1]))

    def buckets_by(self, label: str, extra: Sequence[Sequence[Any]] = ()) -> dict[str, list[float]]:
        """Bucket counts (one per bound, then +Inf; not cumulative) summed over every
        series with the same value of ``label``, this process's plus ``extra`` (other
        processes' ``snapshot()`` items)."""
        i = self.label_names.index(label)
        width = len(self.buckets) + 1
        out: dict[str, list[float]] = {}
        with self.lock:
            items = [(k, list(v)) for k, v in self._series.items()]
        items += [(tuple(k), list(v)) for k, v in extra]
        for key, series in items:
            if len(series) != width + 1:
                continue  # a peer with other buckets (another version): left out
            acc = out.setdefault(key[i], [0.0] * width)
            for j in range(width):
                acc[j] += series[j]
        return out

    def snapshot(self) -> list[list[Any]]:
        with self.lock:
            return [[list(k), list(v)] for k, v in self._series.items()]

    def render(self, extra: Sequence[Sequence[Any]] = ()) -> list[str]:
        lines = self.header()
        merged = {k: list(v) for k, v in self._series.items()}
        for key, other in extra:
            k = tuple(key)
            series = merged.setdefault(k, [0.0] * (len(self.buckets) + 2))
            if len(other) == len(series):
                for i, n in enumerate(other):
                    series[i] += n
        for key, series in sorted(merged.items()):
            running = 0.0
            for bound, n in zip((*self.buckets, math.inf), series[:-1], strict=True):
                running += n
                le = 'le="' + _num(bound) + '"'
                lines.append(
                    f"{self.name}_bucket{_labels(self.label_names, key, le)} {_num(running)}"
                )
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(series[-1])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {_num(running)}")
        return lines


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _M) -> _M:
        """Register ``metric`` (exported in registration order) and return it."""
        self._metrics.append(metric)
        return metric

    def counter(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        source: Callable[[], Iterable[tuple[tuple[str, ...], float]]] | None = None,
    ) -> Counter:
        return self.add(Counter(name, help_text, labels, source))

    def gauge(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        source: Callable[[], Iterable[tuple[tuple[str, ...], float]]] | None = None,
    ) -> Gauge:
        return self.add(Gauge(name, help_text, labels, source))

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> Histogram:
        return self.add(Histogram(name, help_text, labels, buckets))

    def names(self) -> list[str]:
        return [m.name for m in self._metrics]

    def snapshot(self) -> dict[str, list[list[Any]]]:
        """Counters and histograms as plain data (msgpack-able), for ``render``."""
        return {m.name: snap for m in self._metrics if (snap := m.snapshot())}

    def render(self, others: Sequence[Mapping[str, Sequence[Sequence[Any]]]] = ()) -> bytes:
        """The text exposition; ``others`` are other processes' ``snapshot()``s,
        summed into this process's counters and histograms."""
        lines: list[str] = []
        for m in self._metrics:
            extra = [item for other in others for item in other.get(m.name, ())]
            lines += m.render(extra)
        return ("\n".join(lines) + "\n").encode()
