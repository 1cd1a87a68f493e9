"""The server's metrics (Prometheus, ``GET /metrics``)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mussel.bulkload.jobs import JobService
from mussel.engine import Store
from mussel.expire import ExpirationService
from mussel.model import NamespaceInfo, TableInfo
from mussel.observability.hotkeys import HotKeys
from mussel.observability.metrics import Registry
from mussel.storage.base import TableStats

__all__ = ["JOB_STATES", "RATE_WINDOW_S", "ServerMetrics"]

_Snapshot = tuple[list[NamespaceInfo], list[tuple[TableInfo, TableStats]]]
"""What one ``render`` reads once: the namespaces, and every table with its stats."""

JOB_STATES = ("pending", "running", "committed", "failed", "cancelled")
"""Every state of a bulk-load job (SPEC §2), each exported even at 0."""

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
        self.hot = HotKeys()
        self.remote_hotkeys: Callable[[], list[Mapping[str, Any]]] | None = None
        """Distributed mode: the other dispatchers' hot-key snapshots."""
        self._reads = _Rates()
        self._recent: deque[tuple[float, float]] = deque(maxlen=4096)
        self._p99: float | None = None
        self._p99_at = 0.0
        self._writes = _Rates()
        self._stats: _Snapshot | None = None
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
        self.shed_requests = r.counter(
            "mussel_shed_requests_total",
            "Requests refused with 503 to protect the server: batch ones while online reads "
            "are slow, any past the in-flight limit (namespace empty when the path names "
            "none that exists).",
            ("namespace", "priority"),
        )
        self.throttled_requests = r.counter(
            "mussel_throttled_requests_total",
            "Requests refused with 429 because the namespace's read_qps or write_qps quota "
            "was used up, by kind (read or write).",
            ("namespace", "kind"),
        )
        r.gauge(
            "mussel_replay_lag_records",
            "Acknowledged log records not yet applied, per partition.",
            ("partition",),
            source=self.replay_lag,
        )
        r.gauge(
            "mussel_replay_staleness_seconds",
            "Upper estimate of how far eventual reads may lag acknowledged writes.",
            source=lambda: [((), self.store.staleness_ms() / 1000.0)],
        )
        r.counter(
            "mussel_replay_applied_records_total",
            "Log records applied by this process's replayer since it started.",
            source=lambda: [((), float(self.store.replayer.applied_records))],
        )
        r.gauge(
            "mussel_replay_assigned_partitions",
            "Log partitions this process's replayer applies now: all of them in embedded "
            "mode; a consumer-group member's share in distributed mode (0 during a "
            "rebalance). Absent in processes that apply no log themselves.",
            source=self._assigned,
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
        self.add_quotas()

    def _assigned(self) -> Iterable[tuple[tuple[str, ...], float]]:
        assigned = getattr(self.store.replayer, "assigned_partitions", None)
        parts = None if assigned is None else assigned()
        return [] if parts is None else [((), float(len(parts)))]

    def add_quotas(self) -> None:
        """Per-namespace storage against the quotas (only set quotas are exported)."""
        r = self.registry

        def quota(field: str):  # type: ignore[no-untyped-def]
            def source() -> Iterable[tuple[tuple[str, ...], float]]:
                out = []
                for ns in self._snapshot()[0]:
                    value = getattr(ns.quotas, field)
                    if value is not None:
                        out.append(((ns.name,), float(value)))
                return out

            return source

        r.gauge(
            "mussel_namespace_stored_bytes",
            "Approximate bytes stored by the namespace's tables (what storage_bytes limits).",
            ("namespace",),
            source=self._namespace_bytes,
        )
        r.gauge(
            "mussel_namespace_quota_storage_bytes",
            "The namespace's storage_bytes quota (namespaces without one are not listed).",
            ("namespace",),
            source=quota("storage_bytes"),
        )
        r.gauge(
            "mussel_namespace_quota_reads_per_second",
            "The namespace's read_qps quota (namespaces without one are not listed).",
            ("namespace",),
            source=quota("read_qps"),
        )
        r.gauge(
            "mussel_namespace_quota_writes_per_second",
            "The namespace's write_qps quota (namespaces without one are not listed).",
            ("namespace",),
            source=quota("write_qps"),
        )

    def add_jobs(self, jobs: JobService) -> None:
        """Bulk-load jobs by state, and the rows and bytes they read."""
        r = self.registry

        def by_state() -> Iterable[tuple[tuple[str, ...], float]]:
            counts = dict.fromkeys(JOB_STATES, 0.0)
            for job in jobs.list():
                counts[job.state] = counts.get(job.state, 0.0) + 1
            return [((state,), n) for state, n in counts.items()]

        def total(field: str):  # type: ignore[no-untyped-def]
            def source() -> Iterable[tuple[tuple[str, ...], float]]:
                return [((), float(sum(getattr(j.progress, field) for j in jobs.list())))]

            return source

        r.gauge(
            "mussel_bulkload_jobs",
            "Bulk-load jobs this server knows, by state.",
            ("state",),
            source=by_state,
        )
        r.counter(
            "mussel_bulkload_rows_total",
            "Source rows read by bulk-load jobs (every job this server knows, running ones "
            "included).",
            source=total("rows"),
        )
        r.counter(
            "mussel_bulkload_read_bytes_total",
            "Source bytes read by bulk-load jobs (every job this server knows, running ones "
            "included).",
            source=total("bytes"),
        )

    def labels(self, ns: str, table: str) -> tuple[str, str]:
        """(ns, table) as metric labels: empty unless this process knows them (no I/O),
        so that names a client makes up never create series."""
        if ns and self.store.catalog.known(ns, table):
            return ns, table
        return "", ""

    def latency_by_operation(self) -> dict[str, list[float]]:
        """Request latency bucket counts per operation since start, in every process
        (see ``Histogram.buckets_by``)."""
        extra = [
            item
            for p in self.peers
            for item in p.get("registry", {}).get("mussel_request_duration_seconds", [])
        ]
        return self.latency.buckets_by("operation", extra)

    def throttled_total(self) -> float:
        """429 answers to rate quotas since start, every namespace, every process."""
        total = sum(v for _, v in self.throttled_requests.snapshot_items())
        for peer in self.peers:
            for _, v in peer.get("registry", {}).get("mussel_throttled_requests_total", []):
                total += v
        return float(total)

    def replay_lag(self) -> list[tuple[tuple[str, ...], float]]:
        """Acknowledged log records not yet applied, as ``((partition,), count)``."""
        ends = self.store.log.end_offsets()
        applied = self.store.replayer.watermark.applied()
        return [((str(p),), float(max(0, end - applied.get(p, 0)))) for p, end in ends.items()]

    def _snapshot(self) -> _Snapshot:
        """Every namespace, and every table with its stats, read once per ``render``:
        the per-table and per-namespace gauges share them (with a database backend the
        listing is a catalog read and each table's stats a query)."""
        if self._stats is None:
            namespaces = self.store.namespaces()  # (a shared catalog is read again here)
            tables = self.store.catalog.all_tables()
            stats = [(t, self.store.backend.table_stats(t.id)) for t in tables]
            self._stats = (namespaces, stats)
        return self._stats

    def _table_stats(self, which: int):  # type: ignore[no-untyped-def]
        def source() -> Iterable[tuple[tuple[str, ...], float]]:
            return [
                ((t.namespace, t.name), float((st.approx_cells, st.approx_bytes)[which]))
                for t, st in self._snapshot()[1]
            ]

        return source

    def _namespace_bytes(self) -> Iterable[tuple[tuple[str, ...], float]]:
        namespaces, stats = self._snapshot()
        stored = {ns.name: 0.0 for ns in namespaces}
        for t, st in stats:
            if t.namespace in stored:
                stored[t.namespace] += st.approx_bytes
        return [((name,), n) for name, n in stored.items()]

    def observe(self, op: str, ns: str, table: str, status: int, started: float) -> None:
        now = time.perf_counter()
        self.requests.inc((ns, table, op, str(status)))
        self.latency.observe(now - started, (ns, table, op))
        if ns:
            if op in _READS:
                self._recent.append((now, now - started))
                self._reads.hit(ns, time.monotonic())
            elif op in _WRITES:
                self._writes.hit(ns, time.monotonic())

    def refused(self, ns: str) -> tuple[int, int]:
        """(throttled: 429 answers, shed: 503 answers to protect the server) of the
        namespace's requests since the server started, in every process."""
        throttled = shed = 0.0
        items = [(list(k), v) for k, v in self.requests.snapshot_items()]
        sheds = [(list(k), v) for k, v in self.shed_requests.snapshot_items()]
        for peer in self.peers:
            reg = peer.get("registry", {})
            items += reg.get("mussel_requests_total", [])
            sheds += reg.get("mussel_shed_requests_total", [])
        for key, value in items:
            if key[0] == ns and key[3] == "429":
                throttled += value
        for key, value in sheds:
            if key[0] == ns:
                shed += value
        return int(throttled), int(shed)

    def shed(self, ns: str, priority: str) -> None:
        ns, _ = self.labels(ns, "")
        self.shed_requests.inc((ns, priority if priority in ("online", "batch") else "online"))

    def throttled(self, ns: str, kind: str) -> None:
        self.throttled_requests.inc((ns, kind))

    def online_p99(self) -> float | None:
        """``recent_read_p99()``, computed at most every 100 ms (cheap per request)."""
        now = time.perf_counter()
        if now - self._p99_at > 0.1:
            self._p99 = self.recent_read_p99()
            self._p99_at = now
        return self._p99

    def recent_read_p99(self, window_s: float = 5.0) -> float | None:
        """The p99 latency (seconds) of this process's reads in the last ``window_s``;
        None with fewer than 50 reads (batch work then needs no holding back)."""
        oldest = time.perf_counter() - window_s
        samples = sorted(lat for at, lat in list(self._recent) if at >= oldest)
        if len(samples) < 50:
            return None
        return samples[int(len(samples) * 0.99) - 1]

    def add_expiration(self, service: ExpirationService) -> None:
        """Per-table gauges of the expiration service's last runs."""

        def last(field: str, scale: float = 1.0):  # type: ignore[no-untyped-def]
            def source() -> Iterable[tuple[tuple[str, ...], float]]:
                out = []
                for t in self.store.catalog.all_tables():
                    run = service.last_run(t.id)
                    value = None if run is None else getattr(run, field)
                    if value is not None:
                        out.append(((t.namespace, t.name), float(value) * scale))
                return out

            return source

        r = self.registry
        labels = ("namespace", "table")
        r.gauge(
            "mussel_expire_last_run_examined_versions",
            "Stored versions the table's last expiration run examined.",
            labels,
            source=last("examined"),
        )
        r.gauge(
            "mussel_expire_last_run_removed_versions",
            "Versions the table's last expiration run removed.",
            labels,
            source=last("removed"),
        )
        r.gauge(
            "mussel_expire_last_run_removed_bytes",
            "Logical bytes (keys and values) of the versions the table's last expiration"
            " run removed.",
            labels,
            source=last("removed_bytes"),
        )
        r.gauge(
            "mussel_expire_last_run_reclaimed_disk_bytes",
            "Bytes the table's last expiration run returned to the file system, measured"
            " (storage files before the run minus after its compaction; absent where the"
            " backend does not measure it).",
            labels,
            source=last("disk_reclaimed"),
        )
        r.gauge(
            "mussel_expire_last_run_range_deletes",
            "Runs of dead versions the table's last expiration run removed with one range"
            " delete each.",
            labels,
            source=last("range_deletes"),
        )
        r.gauge(
            "mussel_expire_last_run_start_timestamp_seconds",
            "When the table's last expiration run started (Unix time).",
            labels,
            source=last("started_us", 1e-6),
        )
        r.gauge(
            "mussel_expire_last_run_end_timestamp_seconds",
            "When the table's last expiration run ended (Unix time).",
            labels,
            source=last("ended_us", 1e-6),
        )

        def next_runs() -> Iterable[tuple[tuple[str, ...], float]]:
            out = []
            for t in self.store.catalog.all_tables():
                due = service.next_run_us(t.id)
                if due is not None:
                    out.append(((t.namespace, t.name), due / 1e6))
            return out

        r.gauge(
            "mussel_expire_next_run_timestamp_seconds",
            "When the table's next scheduled expiration run is due (Unix time).",
            labels,
            source=next_runs,
        )

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
            "hotkeys": self.hot.snapshot(),
        }

    def hot_keys(self, ns: str, table: str, limit: int) -> list[tuple[bytes, float]]:
        """The table's busiest pks (requests/s) in every process (and every dispatcher
        that publishes its counts, see ``remote_hotkeys``)."""
        peers = [p["hotkeys"] for p in self.peers if "hotkeys" in p]
        if self.remote_hotkeys is not None:
            peers += self.remote_hotkeys()
        return self.hot.top(ns, table, limit, peers)

    def render(self) -> bytes:
        """Prometheus text: this process's metrics plus the peers' counters and
        histograms (their gauges are left out: the owner's are the server's). Table
        stats are read once per render, for every gauge that needs them."""
        self._stats = None
        try:
            return self.registry.render([p.get("registry", {}) for p in self.peers])
        finally:
            self._stats = None
