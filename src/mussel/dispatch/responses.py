"""Shapes of the answers (SPEC §4), for the OpenAPI document.

The handlers build these as plain dicts for speed; ``tests/contract`` checks real
answers against the schemas generated from these types.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "DashboardReply",
    "BackupOut",
    "BackupReply",
    "Deleted",
    "ErrorBody",
    "JobOut",
    "JobReply",
    "JobsReply",
    "MultiGetResult",
    "NamespaceOut",
    "NamespaceReply",
    "NamespacesReply",
    "RowReply",
    "ScanReply",
    "TableOut",
    "TableReply",
    "TablesReply",
    "Written",
]


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class QuotasOut(msgspec.Struct):
    storage_bytes: int | None
    read_qps: int | None
    write_qps: int | None
    tables: int | None


class UsageOut(msgspec.Struct):
    bytes: int
    tables: int
    read_qps: float
    write_qps: float
    throttled: int  # 429 answers since the server started
    shed: int  # 503 answers given to protect the server


class NamespaceOut(msgspec.Struct):
    name: str
    consistency: Literal["strong", "eventual"]
    quotas: QuotasOut
    usage: UsageOut


class NamespaceReply(msgspec.Struct):
    namespace: NamespaceOut


class NamespacesReply(msgspec.Struct):
    namespaces: list[NamespaceOut]


class PartitioningOut(msgspec.Struct, omit_defaults=True):
    kind: Literal["hash", "range"]
    shards: int | None = None
    split_points: list[str] | None = None


class StatsOut(msgspec.Struct):
    approx_cells: int
    approx_bytes: int


class ExpireRunOut(msgspec.Struct):
    """One expiration run of a table (times: microseconds since the epoch)."""

    table_id: int
    namespace: str
    table: str
    started_us: int
    ended_us: int | None
    state: Literal["running", "done", "failed"]
    reason: Literal["scheduled", "on_demand", "resumed"]
    subtasks: int
    examined: int
    removed: int
    removed_bytes: int
    range_deletes: int
    disk_bytes_before: int | None
    disk_bytes_after: int | None
    disk_reclaimed: int | None
    throttled_steps: int
    error: str | None


class ExpirationOut(msgspec.Struct):
    """A table's expiration: what runs now, the last run, when the next is due."""

    state: Literal["idle", "queued", "running"]
    running: ExpireRunOut | None
    last_run: ExpireRunOut | None
    next_run_us: int | None


class ExpireReply(msgspec.Struct):
    expiration: ExpirationOut


class TableOut(msgspec.Struct):
    namespace: str
    name: str
    ttl_seconds: int | None
    max_versions: int
    consistency: Literal["strong", "eventual"] | None
    partitioning: PartitioningOut
    expire_interval_s: int | None
    stats: StatsOut
    expiration: ExpirationOut


class TableReply(msgspec.Struct):
    table: TableOut


class TablesReply(msgspec.Struct):
    tables: list[TableOut]


class CellOut(msgspec.Struct):
    sk: str
    ts: int
    value: str


class RowReply(msgspec.Struct):
    pk: str
    cells: list[CellOut]
    cursor: str | None


class MultiGetResult(msgspec.Struct):
    pk: str
    cells: list[CellOut]


class MultiGetReply(msgspec.Struct):
    results: list[MultiGetResult]


class ScanCellOut(msgspec.Struct):
    pk: str
    sk: str
    ts: int
    value: str


class ScanReply(msgspec.Struct):
    cells: list[ScanCellOut]
    cursor: str | None


class Written(msgspec.Struct):
    written: int


class Deleted(msgspec.Struct):
    deleted: str


class Health(msgspec.Struct):
    status: str


class JobProgressOut(msgspec.Struct):
    phase: str
    rows: int
    bytes: int
    fraction: float
    total_rows: int
    total_bytes: int
    cells: int
    duplicates_dropped: int
    skipped_existing: int
    rate_rows_s: float
    eta_s: float | None


class JobOut(msgspec.Struct):
    id: str
    kind: str
    state: Literal["pending", "running", "committed", "failed", "cancelled"]
    namespace: str
    table: str
    source: str
    mode: Literal["merge", "replace", "insert_ignore"]
    layout: Literal["cells", "wide"]
    ts: int
    progress: JobProgressOut
    duplicates_dropped: int
    error: ErrorDetail | None
    created_us: int
    started_us: int | None
    finished_us: int | None


class JobReply(msgspec.Struct):
    job: JobOut


class JobsReply(msgspec.Struct):
    jobs: list[JobOut]


class TokenOut(msgspec.Struct):
    id: str
    name: str
    scopes: list[str]
    created_us: int


class TokensReply(msgspec.Struct):
    tokens: list[TokenOut]


class TokenCreated(msgspec.Struct):
    """The one answer that shows a token's secret."""

    id: str
    name: str
    scopes: list[str]
    token: str


class Revoked(msgspec.Struct):
    revoked: str


class HotKeyOut(msgspec.Struct):
    pk: str
    per_s: float


class HotKeysReply(msgspec.Struct):
    """A table's busiest pks (reads and writes per second) in the last window."""

    window_s: float
    keys: list[HotKeyOut]


class PartitionLagOut(msgspec.Struct):
    partition: str
    lag_records: int


class ReplayOut(msgspec.Struct):
    """The write log against the replayer: records acknowledged but not applied yet."""

    lag_records: int
    partitions: list[PartitionLagOut]
    staleness_s: float
    applied_records: int


class LatencyOut(msgspec.Struct):
    """An operation's latency quantiles over the last minute (seconds)."""

    operation: str
    count: int
    p50_s: float | None
    p99_s: float | None


class DashboardHotKeyOut(msgspec.Struct):
    namespace: str
    table: str
    pk: str  # UTF-8 text; bytes that are not are shown as \\x escapes
    per_s: float


class HistoryOut(msgspec.Struct):
    """Samples of the last hour: times (Unix seconds) and one value per time per series
    (null where the series had no value)."""

    t: list[float]
    series: dict[str, list[float | None]]


class DashboardReply(msgspec.Struct):
    """``GET /dashboard/data.json``: everything the dashboard shows."""

    now_us: int
    sample_interval_s: float
    namespaces: list[NamespaceOut]
    tables: list[TableOut]
    jobs: list[JobOut]
    replay: ReplayOut
    latency: list[LatencyOut]
    hot_keys: list[DashboardHotKeyOut]
    history: HistoryOut


class BackupOut(msgspec.Struct):
    path: str
    """The backup's directory on the server's file system."""
    created_us: int
    partitions: int
    applied: list[int]
    """Per log partition: the next offset to apply, as stored in the backup's data."""
    log_end: list[int]
    """Per log partition: the end of the backup's copy of the write log."""
    files: int
    bytes: int


class BackupReply(msgspec.Struct):
    backup: BackupOut
