"""The server's metrics (Prometheus, ``GET /metrics``)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from mussel.engine import Store
from mussel.observability.metrics import Registry

__all__ = ["ServerMetrics"]


class ServerMetrics:
    """Request counts and latencies per namespace, table and operation; log and replay lag."""

    def __init__(self, store: Store) -> None:
        self.store = store
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
        if status == 404:  # unknown names must not create series
            ns = table = ""
        self.requests.inc((ns, table, op, str(status)))
        self.latency.observe(time.perf_counter() - started, (ns, table, op))

    def render(self) -> bytes:
        return self.registry.render()
