"""What the client returns for namespaces and tables (SPEC §4 resource shapes).

Cells, rows and scans come back as the model's own ``Cell``, ``RowPage``,
``ScanCell`` and ``ScanPage``; only the catalog resources, which the server answers
with usage and stats attached, need types of their own. Fields the server adds later
are ignored, so an older client keeps working against a newer server.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from mussel.model import Consistency, Partitioning, Quotas

__all__ = [
    "BackupDescription",
    "JobDescription",
    "JobErrorDetail",
    "JobProgress",
    "NamespaceDescription",
    "NamespaceUsage",
    "TableDescription",
    "TableStats",
]


class NamespaceUsage(msgspec.Struct, frozen=True):
    """What a namespace uses now: bytes stored (approximate), tables, request rates,
    and requests refused since the server started (``throttled``: over a rate quota;
    ``shed``: to protect the server)."""

    bytes: int = 0
    tables: int = 0
    read_qps: float = 0.0
    write_qps: float = 0.0
    throttled: int = 0
    shed: int = 0


class NamespaceDescription(msgspec.Struct, frozen=True):
    """A namespace as the server describes it (``GET /v1/namespaces/{ns}``)."""

    name: str
    consistency: Consistency = "strong"
    quotas: Quotas = msgspec.field(default_factory=Quotas)
    usage: NamespaceUsage = msgspec.field(default_factory=NamespaceUsage)


class TableStats(msgspec.Struct, frozen=True):
    """Approximate size of a table."""

    approx_cells: int = 0
    approx_bytes: int = 0


class ExpirationRun(msgspec.Struct, frozen=True):
    """One expiration run of a table (times: microseconds since the epoch)."""

    started_us: int
    ended_us: int | None = None
    state: str = "running"  # running | done | failed
    reason: str = "scheduled"  # scheduled | on_demand | resumed
    subtasks: int = 0
    examined: int = 0
    removed: int = 0
    removed_bytes: int = 0
    """Logical bytes removed (keys and values of the versions deleted)."""
    range_deletes: int = 0
    """Runs of dead versions deleted with one range delete each."""
    disk_bytes_before: int | None = None
    """Bytes the table took on the file system at the start (None: not measured)."""
    disk_bytes_after: int | None = None
    """... and after the run's compaction."""
    disk_reclaimed: int | None = None
    """Bytes returned to the file system by the run (before - after, at least 0)."""
    throttled_steps: int = 0
    error: str | None = None


class Expiration(msgspec.Struct, frozen=True):
    """A table's expiration service state: ``idle``, ``queued`` or ``running``."""

    state: str = "idle"
    running: ExpirationRun | None = None
    last_run: ExpirationRun | None = None
    next_run_us: int | None = None


class ExpireReply(msgspec.Struct):
    expiration: Expiration


class HotKey(msgspec.Struct, frozen=True):
    """A busy pk of a table and its requests per second (reads and writes)."""

    pk: bytes
    per_s: float


class HotKeysReply(msgspec.Struct):
    window_s: float
    keys: list[HotKey]


class TokenDescription(msgspec.Struct, frozen=True):
    """A bearer token as ``GET /v1/tokens`` lists it (never its secret)."""

    id: str
    name: str = ""
    scopes: tuple[str, ...] = ()
    created_us: int = 0


class CreatedToken(msgspec.Struct, frozen=True):
    """A new token; ``token`` is its secret, shown this once."""

    id: str
    token: str
    name: str = ""
    scopes: tuple[str, ...] = ()


class TokensReply(msgspec.Struct):
    tokens: list[TokenDescription]


class BackupDescription(msgspec.Struct, frozen=True):
    """A backup the server wrote (``POST /v1/admin/backup``): its directory on the
    server's file system, when it was taken, per log partition the applied offset its
    data holds and the end of its log copy, and its files and bytes."""

    path: str
    created_us: int
    partitions: int
    applied: list[int]
    log_end: list[int]
    files: int
    bytes: int


class BackupReply(msgspec.Struct):
    backup: BackupDescription


class TableDescription(msgspec.Struct, frozen=True):
    """A table with its options and stats (``GET .../tables/{t}``).

    ``consistency`` is None when the table follows its namespace's default.
    """

    namespace: str
    name: str
    ttl_seconds: int | None = None
    max_versions: int = 1
    consistency: Consistency | None = None
    partitioning: Partitioning = msgspec.field(default_factory=Partitioning)
    stats: TableStats = msgspec.field(default_factory=TableStats)
    expiration: Expiration = msgspec.field(default_factory=Expiration)
    expire_interval_s: int | None = None
    """Seconds between scheduled expiration runs; None: the server's interval."""


class JobProgress(msgspec.Struct, frozen=True):
    """How far a bulk load is (``fraction`` from 0 to 1; ``eta_s`` may be None)."""

    phase: str = ""
    rows: int = 0
    bytes: int = 0
    fraction: float = 0.0
    total_rows: int = 0
    total_bytes: int = 0
    cells: int = 0
    duplicates_dropped: int = 0
    skipped_existing: int = 0
    rate_rows_s: float = 0.0
    eta_s: float | None = None


class JobErrorDetail(msgspec.Struct, frozen=True):
    code: str = "internal"
    message: str = ""


class JobDescription(msgspec.Struct, frozen=True):
    """A job as the server describes it (``GET /v1/jobs/{id}``)."""

    id: str
    state: Literal["pending", "running", "committed", "failed", "cancelled"]
    kind: str = "bulkload"
    namespace: str = ""
    table: str = ""
    source: str = ""
    mode: str = "merge"
    layout: str = "cells"
    ts: int = 0
    progress: JobProgress = msgspec.field(default_factory=JobProgress)
    duplicates_dropped: int = 0
    error: JobErrorDetail | None = None
    created_us: int = 0
    started_us: int | None = None
    finished_us: int | None = None

    @property
    def done(self) -> bool:
        return self.state in ("committed", "failed", "cancelled")


# -- answers as they arrive (private) ---------------------------------------


class NamespaceReply(msgspec.Struct):
    namespace: NamespaceDescription


class NamespacesReply(msgspec.Struct):
    namespaces: list[NamespaceDescription]


class PartitioningOut(msgspec.Struct):
    """Split points arrive like keys: ``bin`` in msgpack, base64 in JSON."""

    kind: Literal["hash", "range"] = "hash"
    shards: int | None = None
    split_points: list[bytes] | None = None


class TableOut(msgspec.Struct):
    namespace: str
    name: str
    ttl_seconds: int | None = None
    max_versions: int = 1
    consistency: Consistency | None = None
    partitioning: PartitioningOut = msgspec.field(default_factory=PartitioningOut)
    stats: TableStats = msgspec.field(default_factory=TableStats)
    expiration: Expiration = msgspec.field(default_factory=Expiration)
    expire_interval_s: int | None = None

    def public(self) -> TableDescription:
        p = self.partitioning
        if p.kind == "range":
            points = list(p.split_points or [])
            partitioning = Partitioning(kind="range", shards=None, split_points=points)
        else:
            partitioning = Partitioning(kind="hash", shards=p.shards)
        return TableDescription(
            namespace=self.namespace,
            name=self.name,
            ttl_seconds=self.ttl_seconds,
            max_versions=self.max_versions,
            consistency=self.consistency,
            partitioning=partitioning,
            stats=self.stats,
            expiration=self.expiration,
            expire_interval_s=self.expire_interval_s,
        )


class TableReply(msgspec.Struct):
    table: TableOut


class TablesReply(msgspec.Struct):
    tables: list[TableOut]


class Written(msgspec.Struct):
    written: int


class ErrorDetail(msgspec.Struct):
    code: str = "internal"
    message: str = ""


class ErrorReply(msgspec.Struct):
    error: ErrorDetail


class JobReply(msgspec.Struct):
    job: JobDescription


class JobsReply(msgspec.Struct):
    jobs: list[JobDescription]
