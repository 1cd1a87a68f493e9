"""The server's metrics (Prometheus, ``GET /metrics``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mussel.engine import Store
from mussel.observability.metrics import Registry

__all__ = ["RATE_WINDOW_S", "ServerMetrics"]

RATE_WINDOW_S = 10
"""Namespace read and write rates are averages over the last this many seconds."""

_READS = frozenset({"read_row", "get", "scan"})
_WRITES = frozenset({"write"})


class _Rates:
    """Requests per second of one kind, per namespace, over a sliding window of seconds."""

    def __init__(self) -> None:
        # namespace -> [second of each slot, count of each slot]
        self._slots: dict[str, tuple[list[int], list[int]]] = {}

    def hit(self, ns: str, now: float) -> None:
        second = int(now)
        slots = self._slots.get(ns)
        if slots is None:
            slots = self._slots[ns] = ([0] * RATE_WINDOW_S, [0] * RATE_WINDOW_S)
        i = second % RATE_WINDOW_S
        if slots[0][i] != second:
            slots[0][i] = second
            slots[1][i] = 0
        slots[1][i] += 1

    def rate(self, ns: str, now: float, others: Sequence[Mapping[str, Any]] = ()) -> float:
        """This process's rate plus those in ``others`` (other processes' snapshots)."""
        oldest = int(now) - RATE_WINDOW_S
        total = 0
        for slots in (self._slots.get(ns), *(o.get(ns) for o in others)):
            if slots is not None:
                total += sum(n for sec, n in zip(*slots, strict=True) if sec > oldest)
        return total / RATE_WINDOW_S

    def snapshot(self) -> dict[str, list[list[int]]]:
        return {ns: [list(secs), list(counts)] for ns, (secs, counts) in self._slots.items()}


class ServerMetrics:
    """Request counts and latencies per namespace, table and operation; log and replay lag."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.peers: list[dict[str, Any]] = []
        """Other server processes' latest ``snapshot()``s, merged into ``render`` and
        ``rates`` (the owner refreshes them)."""
        self._reads = _Rates()
        self._writes = _Rates()
        self.registry = r = Registry()
        self.requests = r.counter(
            "mussel_requests_total",
            "HTTP requests by namespace, table, operation and status code.",
            ("namespace", "table", "operation", "code"),
        )
        self.latency = r.histogram(
            "mussel_request_duration_seconds",
            "HTTP request latency by namespace, table and operation.",
            ("namespace", "table", "operation"),
        )
        r.gauge(
            "mussel_replay_lag_records",
            "Acknowledged log records not yet applied, per partition.",
            ("partition",),
            source=self._lag,
        )
        r.gauge(
            "mussel_replay_staleness_seconds",
            "Upper estimate of how far eventual reads may lag acknowledged writes.",
            source=lambda: [((), self.store.staleness_ms() / 1000.0)],
        )
        r.gauge(
            "mussel_replay_applied_records",
            "Log records applied by this process's replayer since it started.",
            source=lambda: [((), float(self.store.replayer.applied_records))],
        )
        r.gauge(
            "mussel_table_stored_versions",
            "Approximate versions stored per table (not yet swept ones included).",
            ("namespace", "table"),
            source=self._table_stats(0),
        )
        r.gauge(
            "mussel_table_stored_bytes",
            "Approximate bytes stored per table.",
            ("namespace", "table"),
            source=self._table_stats(1),
        )

    def _lag(self) -> Iterable[tuple[tuple[str, ...], float]]:
        ends = self.store.log.end_offsets()
        applied = self.store.replayer.watermark.applied()
        return [((str(p),), float(max(0, end - applied.get(p, 0)))) for p, end in ends.items()]

    def _table_stats(self, which: int):  # type: ignore[no-untyped-def]
        def source() -> Iterable[tuple[tuple[str, ...], float]]:
            out = []
            for t in self.store.catalog.all_tables():
                st = self.store.backend.table_stats(t.id)
                out.append(
                    ((t.namespace, t.name), float((st.approx_cells, st.approx_bytes)[which]))
                )
            return out

        return source

    def observe(self, op: str, ns: str, table: str, status: int, started: float) -> None:
        self.requests.inc((ns, table, op, str(status)))
        self.latency.observe(time.perf_counter() - started, (ns, table, op))
        if ns:
            if op in _READS:
                self._reads.hit(ns, time.monotonic())
            elif op in _WRITES:
                self._writes.hit(ns, time.monotonic())

    def rates(self, ns: str) -> tuple[float, float]:
        """(reads/s, writes/s) of a namespace's requests over the last ``RATE_WINDOW_S``,
        in every server process."""
        now = time.monotonic()
        peers = self.peers
        return (
            self._reads.rate(ns, now, [p.get("reads", {}) for p in peers]),
            self._writes.rate(ns, now, [p.get("writes", {}) for p in peers]),
        )

    def snapshot(self) -> dict[str, Any]:
        """This process's request counters, latencies and rates, as plain data."""
        return {
            "registry": self.registry.snapshot(),
            "reads": self._reads.snapshot(),
            "writes": self._writes.snapshot(),
        }

    def render(self) -> bytes:
        """Prometheus text: this process's metrics plus the peers' counters and
        histograms (their gauges are left out: the owner's are the server's)."""
        return self.registry.render([p.get("registry", {}) for p in self.peers])
