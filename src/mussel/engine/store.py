"""``Store``: the embedded engine — catalog, write log, replayer and backend in one object.

Use it as a library in your own process (as Venice's Da Vinci client is used), or
behind the HTTP dispatcher, which is a thin layer over it::

    store = Store.open("./data")                 # RocksDB + local durable log
    store.put_namespace("shop")
    users = store.put_table("shop", "users", {"max_versions": 3})
    users.put("u1", "email", "a@example.com")    # durable when it returns
    users.get("u1", "email")                     # -> [Cell(sk=b'email', ts=..., value=...)]
    store.close()

Writes: validate the whole batch → append to the log (fsync, group commit) → ack.
The replayer applies the log to the backend in order. ``ack="applied"`` also waits
for that. Reads: ``strong`` waits until the replayer has applied every write
acknowledged before the read began (in the partitions the read touches);
``eventual`` reads at once (``staleness_ms()`` bounds what it may miss).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol
from zlib import crc32

from mussel.catalog import UNSET, Catalog
from mussel.clock import Clock, SystemClock
from mussel.codec.cursor import decode_cursor, encode_cursor
from mussel.engine.writes import to_mutations
from mussel.errors import (
    InvalidRequestError,
    QuotaExceededError,
    TableNotFoundError,
    UnavailableError,
)
from mussel.limits import DEFAULT_LIMITS, Limits, check_ts
from mussel.log.base import WriteLog, partition_for
from mussel.log.local import LocalLog
from mussel.log.memory import MemoryLog
from mussel.log.published import PublishedLog
from mussel.log.shared import SharedState
from mussel.model import (
    Cell,
    Consistency,
    Delete,
    Mutation,
    NamespaceInfo,
    Put,
    RowPage,
    ScanCell,
    ScanPage,
    TableInfo,
    check_consistency,
)
from mussel.replay import Replayer
from mussel.replay.follower import Follower
from mussel.replay.remote import RemoteProgress
from mussel.storage.base import Backend, RowQuery, ScanQuery, SkRange, TableStats
from mussel.storage.memory import MemoryBackend
from mussel.storage.rocksdb import RocksBackend, RocksConfig
from mussel.storage.versions import ReadFilter, Visibility

__all__ = ["Ack", "Role", "Store", "StoreConfig", "Table"]

Ack = Literal["durable", "applied"]
Role = Literal["embedded", "dispatcher", "replayer"]
"""``embedded``: this process applies its own log. ``dispatcher``: the log is applied by
replayer processes (distributed mode). ``replayer``: a consumer-group member applying
its share of a shared log."""
Key = bytes | str


@dataclass(frozen=True)
class StoreConfig:
    partitions: int = 8
    """Partitions of the write log (embedded mode; a Kafka topic has its own count).
    Fixed once data exists."""
    limits: Limits = DEFAULT_LIMITS
    strong_read_timeout_s: float = 5.0
    """A strong read waits at most this long for the writes acknowledged before it to
    be applied, then answers 503."""
    applied_ack_timeout_s: float = 30.0
    """A write with ``ack=applied`` waits at most this long to be applied, then
    answers 503 (it is durable and will be applied)."""
    segment_bytes: int = 64 << 20
    rocks: RocksConfig = field(default_factory=RocksConfig)
    follower_interval_s: float = 0.005
    """On a follower: the shortest time between two catch-ups with the owner."""


@dataclass(frozen=True, slots=True)
class _ReadCtx:
    """What reads of one table derive from the catalog, cached per catalog generation."""

    generation: int
    info: TableInfo
    strong: bool
    vis: Visibility | None  # None when it depends on the clock (TTL)
    table_id: int  # info.id
    plain: bool  # info.plain (the point-read fast path applies)
    ttl_us: int | None  # info.options.ttl_seconds in microseconds


def _b(value: Key | None, what: str) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    raise InvalidRequestError(f"{what} must be bytes or a string")


class _AckedTotal(Protocol):
    acked_total: int


class _NeverCaughtUp:
    """An ``acked_total`` no applied total equals: the per-partition check decides."""

    acked_total = -1


_NEVER_CAUGHT_UP = _NeverCaughtUp()


class Store:
    """The engine. Thread-safe. Close it (or use ``with``) to stop the replayer cleanly."""

    def __init__(
        self,
        backend: Backend,
        wlog: WriteLog,
        *,
        clock: Clock | None = None,
        config: StoreConfig | None = None,
        follow: tuple[SharedState, int] | None = None,
        role: Role = "embedded",
        group: str = "mussel-replayers",
    ) -> None:
        self.config = config or StoreConfig()
        self.clock = clock or SystemClock()
        self.backend = backend
        self.log = wlog
        self.limits = self.config.limits
        self.role = role
        self.catalog = Catalog(backend, self.clock, shared=role != "embedded")
        self.follower: Follower | None = None
        self.replayer: Replayer | Follower | RemoteProgress
        self._shared: SharedState | None = None
        if role == "dispatcher":
            self.replayer = RemoteProgress(backend, self.catalog, wlog, self.clock)
        elif role == "replayer":
            self.replayer = Replayer(wlog, backend, self.catalog, self.clock, group=group)
        elif follow is None:
            self.replayer = Replayer(wlog, backend, self.catalog, self.clock)
        else:
            assert isinstance(backend, RocksBackend)
            state, slot = follow
            self.replayer = self.follower = Follower(
                backend,
                self.catalog,
                state,
                slot,
                self.clock,
                interval_s=self.config.follower_interval_s,
            )
        self._partitions = wlog.partitions
        self._ctx: dict[tuple[str, str], _ReadCtx] = {}
        self._usage: dict[str, tuple[float, int]] = {}  # namespace -> (when, bytes)
        self._applied = self.replayer.watermark.live
        self._end_offset = wlog.end_offset
        self._watermark = self.replayer.watermark
        self._acks: _AckedTotal = _NEVER_CAUGHT_UP
        if (
            isinstance(wlog, LocalLog)
            and isinstance(self.replayer, Replayer)
            and role == "embedded"
            and all(self._applied.get(p, 0) <= e for p, e in wlog.end_offsets().items())
        ):
            # This process's replayer applies every partition of this log, and nothing
            # past its ends: equal totals mean caught up (see ``get``).
            self._acks = wlog
        self._latest = backend.get_latest
        self._latest_many: Callable[..., list[Cell | None]] | None = getattr(
            backend, "get_latest_many", None
        )
        """The backend's ``get_latest`` over many keys in one call, if it has one."""
        self._closed = False
        self.replayer.start()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        config: StoreConfig | None = None,
        clock: Clock | None = None,
    ) -> Store:
        """Open (or create) a store in directory ``path``: ``db/`` (RocksDB) and ``log/``."""
        config = config or StoreConfig()
        root = Path(path)
        backend = RocksBackend(root / "db", config.rocks)
        try:
            wlog = LocalLog(root / "log", config.partitions, segment_bytes=config.segment_bytes)
        except BaseException:
            backend.close()
            raise
        return cls(backend, wlog, clock=clock, config=config)

    @classmethod
    def open_distributed(
        cls,
        log_url: str,
        backend_url: str,
        role: Role,
        config: StoreConfig | None = None,
        clock: Clock | None = None,
        group: str | None = None,
    ) -> Store:
        """A process of a distributed deployment (SPEC §9): the write log is Kafka
        (``kafka://host:port/topic``), the backend a PostgreSQL-compatible database.

        ``role="dispatcher"``: writes go to the log; reads to the database, strong ones
        after waiting until the replayers applied every write acknowledged before them
        (by any dispatcher). ``role="replayer"``: a member of the consumer group
        ``group`` (default ``mussel-replayers.<topic>``: clusters sharing a broker
        never share a group) that applies its share of the log's partitions. The
        catalog is the database's, shared by every process.
        """
        from mussel.log.kafka import KafkaLog  # noqa: PLC0415 (optional at import time)
        from mussel.storage.sql import SqlBackend  # noqa: PLC0415

        config = config or StoreConfig()
        backend = SqlBackend(backend_url)
        try:
            wlog = KafkaLog.from_url(log_url)
        except BaseException:
            backend.close()
            raise
        try:
            if wlog.partitions != config.partitions:
                config = replace(config, partitions=wlog.partitions)
            group = group or f"mussel-replayers.{wlog.topic}"
            return cls(backend, wlog, clock=clock, config=config, role=role, group=group)
        except BaseException:
            wlog.close()
            backend.close()
            raise

    @classmethod
    def open_follower(
        cls,
        path: str | os.PathLike[str],
        state: SharedState,
        slot: int,
        config: StoreConfig | None = None,
        clock: Clock | None = None,
    ) -> Store:
        """A read-only view of the store at ``path`` that another process owns.

        It reads from a RocksDB secondary kept close behind the owner by a
        ``Follower``; strong reads wait for every write the owner acknowledged
        before they began (published in ``state``). Writes and catalog changes
        raise: they are the owner's.
        """
        config = config or StoreConfig()
        root = Path(path)
        secondary = str(root / "run" / f"secondary-{slot}")
        backend = RocksBackend(root / "db", replace(config.rocks, secondary_path=secondary))
        try:
            log = PublishedLog(state)
            return cls(backend, log, clock=clock, config=config, follow=(state, slot))
        except BaseException:
            backend.close()
            raise

    def publish_to(self, state: SharedState) -> None:
        """Publish this (owner) store's progress in ``state`` for follower processes:
        log ends before each acknowledgement, applied positions, catalog changes.
        Thereafter ``ack="applied"`` also waits for every live follower."""
        if not isinstance(self.log, LocalLog) or not isinstance(self.replayer, Replayer):
            raise InvalidRequestError("only a store that owns a local log can publish")
        state.publish_applied(self.replayer.watermark.applied())
        self.log.on_durable = state.publish_ends
        state.publish_ends([self.log.end_offset(p) for p in range(self._partitions)])
        self.replayer.on_applied = state.publish_applied
        catalog = self.catalog
        state.publish_catalog(catalog.version)
        self.catalog.listeners.append(lambda: state.publish_catalog(catalog.version))
        self._shared = state

    def followers_reached(self, target: Mapping[int, int]) -> bool:
        """Whether every live follower process can read what ``target`` covers."""
        return self._shared is None or self._shared.followers_reached(target)

    @classmethod
    def memory(cls, config: StoreConfig | None = None, clock: Clock | None = None) -> Store:
        """A store that lives in memory only (tests, experiments)."""
        config = config or StoreConfig()
        return cls(MemoryBackend(), MemoryLog(config.partitions), clock=clock, config=config)

    def close(self) -> None:
        """Apply what is in the log, then close the replayer, the log and the backend."""
        if self._closed:
            return
        self._closed = True
        try:
            self.replayer.stop()
        finally:
            try:
                self.log.close()
            finally:
                self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catalog --------------------------------------------------------------

    def put_namespace(
        self, name: str, *, consistency: Any = UNSET, quotas: Any = UNSET
    ) -> NamespaceInfo:
        return self.catalog.put_namespace(name, consistency=consistency, quotas=quotas)

    def namespace(self, name: str) -> NamespaceInfo:
        return self.catalog.get_namespace(name)

    def namespaces(self) -> list[NamespaceInfo]:
        return self.catalog.list_namespaces()

    def drop_namespace(self, name: str) -> None:
        self.catalog.delete_namespace(name)

    def put_table(
        self, namespace: str, name: str, options: Mapping[str, Any] | None = None
    ) -> Table:
        """Create a table or update the options given (see SPEC §1); returns its handle."""
        self.catalog.put_table(namespace, name, options or {})
        return Table(self, namespace, name)

    def table(self, namespace: str, name: str) -> Table:
        """A handle on an existing table (``TableNotFoundError`` otherwise)."""
        self.catalog.get_table(namespace, name)
        return Table(self, namespace, name)

    def table_info(self, namespace: str, name: str) -> TableInfo:
        return self.catalog.get_table(namespace, name)

    def tables(self, namespace: str) -> list[TableInfo]:
        return self.catalog.list_tables(namespace)

    def table_stats(self, namespace: str, name: str) -> TableStats:
        return self.backend.table_stats(self.catalog.get_table(namespace, name).id)

    def drop_table(self, namespace: str, name: str) -> None:
        self.catalog.drop_table(namespace, name)

    # -- writes ---------------------------------------------------------------

    def write(
        self,
        namespace: str,
        table: str,
        records: Sequence[Put | Delete],
        *,
        ack: Ack = "durable",
    ) -> int:
        """Write a batch: all of it or nothing. Returns the number of records written.

        Returns once the batch is durable in the log (``ack="durable"``) or also
        applied and visible to every read (``ack="applied"``).
        """
        mutations = self._mutations(namespace, table, records, ack)
        placed = self.log.append(mutations)
        if ack == "applied":
            self.wait_applied(placed)
        return len(mutations)

    def _mutations(
        self, namespace: str, table: str, records: Sequence[Put | Delete], ack: str
    ) -> list[Mutation]:
        if ack not in ("durable", "applied"):
            raise InvalidRequestError("ack must be 'durable' or 'applied'")
        info = self.catalog.get_table(namespace, table)
        mutations = to_mutations(info.id, records, self.clock.now_us(), self.limits)
        self.check_storage_quota(namespace)
        return mutations

    def namespace_bytes(self, namespace: str) -> int:
        """Approximate bytes stored by the namespace's tables (the storage quota's
        measure; what ``GET /v1/namespaces/{ns}`` shows as usage)."""
        return sum(self.backend.table_stats(t.id).approx_bytes for t in self.tables(namespace))

    def check_storage_quota(self, namespace: str) -> None:
        """``QuotaExceededError`` (507) once the namespace stores its ``storage_bytes``
        quota or more: writes and bulk loads stop, reads go on. The check is before
        a write, so the batch that crosses the quota is the last one accepted."""
        limit = self.catalog.get_namespace(namespace).quotas.storage_bytes
        if limit is None:
            return
        now = time.monotonic()
        cached = self._usage.get(namespace)
        if cached is None or now - cached[0] > 0.5:
            cached = self._usage[namespace] = (now, self.namespace_bytes(namespace))
        if cached[1] >= limit:
            raise QuotaExceededError(
                f"namespace {namespace!r} stores {cached[1]} bytes, at or over its storage "
                f"quota of {limit}: writes and bulk loads are refused until data is "
                "dropped or expires, or the quota is raised (reads go on)"
            )

    def prepare_write(
        self, namespace: str, table: str, records: Sequence[Put | Delete], *, ack: Ack = "durable"
    ) -> tuple[int, list[Mutation]]:
        """Validate a batch into log records without writing it: (table id, records).

        For a process that does not own the log (a follower): it validates and resolves
        timestamps, and the owner appends with ``submit_mutations``.
        """
        mutations = self._mutations(namespace, table, records, ack)
        return mutations[0].table_id, mutations

    def submit_mutations(
        self, namespace: str, table: str, table_id: int, mutations: Sequence[Mutation]
    ) -> Future[list[tuple[int, int]]]:
        """Append records that ``prepare_write`` validated (maybe in another process).

        ``TableNotFoundError`` unless ``namespace/table`` still is table ``table_id``
        (it may have been dropped, or dropped and created again, meanwhile);
        ``InvalidRequestError`` if a record names another table.
        """
        info = self.catalog.get_table(namespace, table)
        if info.id != table_id:
            raise TableNotFoundError(f"table {namespace}/{table} was dropped meanwhile")
        self.check_storage_quota(namespace)
        if any(m.table_id != table_id for m in mutations):
            raise InvalidRequestError("every record must belong to the table written")
        return self.log.append_async(mutations)

    def submit_write(
        self,
        namespace: str,
        table: str,
        records: Sequence[Put | Delete],
        *,
        ack: Ack = "durable",
    ) -> tuple[int, Future[list[tuple[int, int]]]]:
        """Validate a batch and hand it to the log without waiting.

        Raises at once for invalid input (nothing is written). The future completes
        when the batch is durable; with ``ack="applied"`` the caller then waits with
        ``wait_applied``.
        """
        mutations = self._mutations(namespace, table, records, ack)
        return len(mutations), self.log.append_async(mutations)

    def wait_all_applied(self) -> None:
        """Block until every write acknowledged before the call, by any process, is
        applied (a strong scan's barrier over every partition; ``UnavailableError``
        after ``strong_read_timeout_s``)."""
        self._barrier(self.log.end_offsets())

    def applied_target(self, placed: Sequence[tuple[int, int]]) -> dict[int, int]:
        """The positions a replayer must reach for these placements to be applied."""
        needed: dict[int, int] = {}
        for partition, offset in placed:
            if offset >= needed.get(partition, 0):
                needed[partition] = offset + 1
        return needed

    def wait_applied(self, placed: Sequence[tuple[int, int]]) -> None:
        """Block until the placed records are applied and readable in every process
        (``UnavailableError`` on timeout)."""
        timeout = self.config.applied_ack_timeout_s
        deadline = time.monotonic() + timeout
        target = self.applied_target(placed)
        if self.replayer.watermark.wait(target, timeout):
            while not self.followers_reached(target):
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.001)
            else:
                return
        raise UnavailableError(
            f"the write is durable but was not applied within {timeout:g}s; it will be applied"
        )

    def is_strong(self, namespace: str, table: str, consistency: str | None) -> bool:
        """Whether a read with this ``consistency`` argument is strong (SPEC §3 defaults)."""
        if consistency is not None:
            return check_consistency(consistency) == "strong"
        return self._read_ctx(namespace, table).strong

    def strong_target(
        self, namespace: str, table: str, pks: Sequence[bytes] | None, consistency: str | None
    ) -> dict[int, int] | None:
        """What a read must wait for: None when it needs no wait (eventual, or caught up).

        ``pks=None`` means the read may touch every partition (a scan).
        """
        ctx = self._read_ctx(namespace, table)
        strong = ctx.strong if consistency is None else check_consistency(consistency) == "strong"
        if not strong:
            return None
        wm = self.replayer.watermark
        if pks is not None and len(pks) == 1:  # a row or a cell: one partition
            p = crc32(pks[0], ctx.info.id) % self._partitions  # partition_for, inlined
            end = self.log.end_offset(p)
            return None if wm.position(p) >= end else {p: end}
        ends = self.log.end_offsets()
        if pks is not None:
            parts = {partition_for(ctx.info.id, pk, self._partitions) for pk in pks}
            ends = {p: ends.get(p, 0) for p in parts}
        return None if wm.reached(ends) else ends

    # -- reads ----------------------------------------------------------------

    def _read_ctx(self, namespace: str, table: str) -> _ReadCtx:
        ctx = self._ctx.get((namespace, table))
        generation = self.catalog.generation
        if ctx is None or ctx.generation != generation:
            info = self.catalog.get_table(namespace, table)
            ttl = info.options.ttl_seconds
            static = ttl is None
            ctx = _ReadCtx(
                generation,
                info,
                self.catalog.consistency_of(info) == "strong",
                Visibility.of(info, 0) if static else None,
                info.id,
                info.plain,
                None if ttl is None else ttl * 1_000_000,
            )
            self._ctx[(namespace, table)] = ctx
        return ctx

    def _prepare(
        self, namespace: str, table: str, consistency: str | None
    ) -> tuple[TableInfo, Visibility, bool]:
        ctx = self._read_ctx(namespace, table)
        strong = ctx.strong if consistency is None else check_consistency(consistency) == "strong"
        vis = ctx.vis or Visibility.of(ctx.info, self.clock.now_us())
        return ctx.info, vis, strong

    def _barrier(self, positions: Mapping[int, int]) -> None:
        """Wait until ``positions`` are applied (a strong read's guarantee)."""
        if not self.replayer.watermark.wait(positions, self.config.strong_read_timeout_s):
            raise UnavailableError(
                "a strong read could not catch up with recent writes in "
                f"{self.config.strong_read_timeout_s:g}s; retry, or read with "
                "consistency=eventual",
                retry_after_s=1.0,
            )

    def _barrier_for(self, table_id: int, pks: Sequence[bytes] | None) -> None:
        ends = self.log.end_offsets()
        if pks is None:
            self._barrier(ends)
        else:
            parts = {partition_for(table_id, pk, self._partitions) for pk in pks}
            self._barrier({p: ends.get(p, 0) for p in parts})

    def staleness_ms(self, namespace: str = "", table: str = "", pk: bytes | None = None) -> float:
        """Upper estimate of how much an eventual read may lag acknowledged writes:
        0 when every acknowledged write (of ``pk``'s partition, when given) is applied,
        else the time since the replayer was last caught up."""
        wm = self.replayer.watermark
        if self.role == "dispatcher":  # the log's ends are a network call away: the
            return wm.staleness_ms()  # watcher's last check bounds it (every 100 ms)
        if pk is not None:
            p = crc32(pk, self._read_ctx(namespace, table).info.id) % self._partitions
            if wm.position(p) >= self.log.end_offset(p):
                return 0.0
        elif wm.reached(self.log.end_offsets()):
            return 0.0
        return wm.staleness_ms()

    def _read_filter(self, min_ts: int | None, max_ts: int | None, versions: int) -> ReadFilter:
        if min_ts is not None:
            check_ts(min_ts, "min_ts")
        if max_ts is not None:
            check_ts(max_ts, "max_ts")
        if isinstance(versions, bool) or not isinstance(versions, int):
            raise InvalidRequestError("versions must be an integer")
        if not 1 <= versions <= self.limits.max_versions_per_read:
            raise InvalidRequestError(
                f"versions must be from 1 to {self.limits.max_versions_per_read}"
            )
        return ReadFilter(min_ts, max_ts, versions)

    def _limit(self, limit: int) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRequestError("limit must be a positive integer")
        if limit > self.limits.max_read_limit:
            raise InvalidRequestError(f"limit must be at most {self.limits.max_read_limit}")
        return limit

    def get(
        self,
        namespace: str,
        table: str,
        pk: Key,
        sk: Key = b"",
        *,
        versions: int = 1,
        min_ts: int | None = None,
        max_ts: int | None = None,
        consistency: Consistency | None = None,
    ) -> list[Cell]:
        """The visible versions of one cell, newest first (empty if there is none)."""
        # The hottest path of the engine: kept flat on purpose.
        if type(pk) is not bytes:
            pk = _b(pk, "pk") or b""
        if type(sk) is not bytes:
            sk = _b(sk, "sk") or b""
        ctx = self._ctx.get((namespace, table))
        if ctx is None or ctx.generation != self.catalog.generation:
            ctx = self._read_ctx(namespace, table)
        tid = ctx.table_id
        if consistency is None:
            strong = ctx.strong
        elif consistency == "eventual":
            strong = False
        elif consistency == "strong":
            strong = True
        else:
            strong = check_consistency(consistency) == "strong"
        # Strong: first the whole log at once. The applied total is read first: it
        # equals the log's later total only if every partition was applied up to
        # its end as of the later read (positions never pass the ends), so every write
        # acknowledged before this read arrived is applied.
        if strong and self._watermark.applied_total != self._acks.acked_total:
            p = crc32(pk, tid) % self._partitions  # log.base.partition_for, inlined
            end = self._end_offset(p)
            if self._applied.get(p, 0) < end:
                self._barrier({p: end})
        if versions == 1 and min_ts is None and max_ts is None and ctx.plain:
            ttl_us = ctx.ttl_us
            expired_before = None if ttl_us is None else self.clock.now_us() - ttl_us
            cell = self._latest(tid, pk, sk, expired_before)
            return [] if cell is None else [cell]
        vis = ctx.vis or Visibility.of(ctx.info, self.clock.now_us())
        rf = self._read_filter(min_ts, max_ts, versions)
        return self.backend.get_cell(tid, vis, pk, sk, rf)

    def get_nowait(
        self, namespace: str, table: str, pk: bytes, sk: bytes, consistency: str | None
    ) -> tuple[Cell | None, float | None] | None:
        """The newest visible version of one cell, if the read needs no wait.

        None when the read is strong and an acknowledged write of ``pk``'s partition
        is not applied yet (the caller waits, off the event loop, and reads again).
        Otherwise ``(cell or None, staleness_ms)``: staleness is None for a strong read,
        else ``staleness_ms(namespace, table, pk)``. ``TableNotFoundError`` for an
        unknown table, ``InvalidRequestError`` for a bad ``consistency``. One catalog
        lookup and one partition hash: the hot path of the HTTP point read.
        """
        ctx = self._ctx.get((namespace, table))
        if ctx is None or ctx.generation != self.catalog.generation:
            ctx = self._read_ctx(namespace, table)
        info = ctx.info
        tid = info.id
        strong = ctx.strong if consistency is None else check_consistency(consistency) == "strong"
        if strong and self._watermark.applied_total != self._acks.acked_total:  # as in get
            p = crc32(pk, tid) % self._partitions  # log.base.partition_for, inlined
            if self._applied.get(p, 0) < self._end_offset(p):
                return None
        cell: Cell | None
        if info.plain:
            ttl = info.options.ttl_seconds
            expired_before = None if ttl is None else self.clock.now_us() - ttl * 1_000_000
            cell = self._latest(tid, pk, sk, expired_before)
        else:
            vis = ctx.vis or Visibility.of(info, self.clock.now_us())
            cells = self.backend.get_cell(tid, vis, pk, sk, ReadFilter(None, None, 1))
            cell = cells[0] if cells else None
        if strong:
            return cell, None
        # ``staleness_ms(namespace, table, pk)``, inlined; after the read, so that it
        # bounds how far behind what was read may be
        wm = self.replayer.watermark
        if self.role != "dispatcher":
            p = crc32(pk, tid) % self._partitions
            if self._applied.get(p, 0) >= self._end_offset(p):
                return cell, 0.0
        return cell, wm.staleness_ms()

    def multi_get_nowait(
        self,
        namespace: str,
        table: str,
        keys: Sequence[tuple[bytes, bytes]],
        consistency: str | None,
    ) -> tuple[list[Cell | None], float | None] | None:
        """The newest visible version of each (pk, sk) cell, if the read needs no wait.

        What ``multi_get(keys, versions=1)`` returns, one cell or None per key, without
        blocking: None when the read is strong and an acknowledged write of one of
        the keys' partitions is not applied yet (the caller waits off the event loop
        and reads again). Otherwise ``(cells, staleness_ms)``: staleness is None for a
        strong read, else ``staleness_ms()``. Same errors as ``multi_get``.
        """
        ctx = self._ctx.get((namespace, table))
        if ctx is None or ctx.generation != self.catalog.generation:
            ctx = self._read_ctx(namespace, table)
        strong = ctx.strong if consistency is None else check_consistency(consistency) == "strong"
        if len(keys) > self.limits.max_multi_get_keys:
            raise InvalidRequestError(
                f"a multi-get takes at most {self.limits.max_multi_get_keys} keys"
            )
        check_pk = self.limits.check_pk
        for pk, _ in keys:
            check_pk(pk)
        info = ctx.info
        tid = info.id
        staleness: float | None = None
        if strong and keys:
            ends = self.log.end_offsets()
            applied, n = self._applied, self._partitions
            for pk, _ in keys:
                p = crc32(pk, tid) % n  # log.base.partition_for, inlined
                if applied.get(p, 0) < ends.get(p, 0):
                    return None
        cells: list[Cell | None]
        if info.plain:
            ttl = info.options.ttl_seconds
            expired_before = None if ttl is None else self.clock.now_us() - ttl * 1_000_000
            if self._latest_many is not None:
                cells = self._latest_many(tid, keys, expired_before)
            else:
                latest = self._latest
                cells = [latest(tid, pk, sk, expired_before) for pk, sk in keys]
        else:
            vis = ctx.vis or Visibility.of(info, self.clock.now_us())
            rf = ReadFilter(None, None, 1)
            found = [self.backend.get_cell(tid, vis, pk, sk, rf) for pk, sk in keys]
            cells = [versions[0] if versions else None for versions in found]
        if not strong:  # after the read, so that it bounds how far behind the read may be
            staleness = self.staleness_ms()
        return cells, staleness

    def read_row(
        self,
        namespace: str,
        table: str,
        pk: Key,
        *,
        sk: Key | None = None,
        sk_prefix: Key | None = None,
        sk_start: Key | None = None,
        sk_end: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int = 1,
        limit: int = 1000,
        cursor: str | None = None,
        consistency: Consistency | None = None,
    ) -> RowPage:
        """A page of a row's visible cells (sk ascending, then newest first)."""
        pk_b = _b(pk, "pk")
        assert pk_b is not None
        self.limits.check_pk(pk_b)
        info, vis, strong = self._prepare(namespace, table, consistency)
        sks = SkRange(
            sk=_b(sk, "sk"),
            prefix=_b(sk_prefix, "sk_prefix"),
            start=_b(sk_start, "sk_start"),
            end=_b(sk_end, "sk_end"),
        )
        after = None
        if cursor is not None:
            c_pk, c_sk, c_ts = decode_cursor(cursor, "row", (bytes, bytes, int))
            if c_pk != pk_b:
                raise InvalidRequestError("cursor belongs to another row")
            assert isinstance(c_sk, bytes) and isinstance(c_ts, int)
            after = (c_sk, c_ts)
        q = RowQuery(sks, self._read_filter(min_ts, max_ts, versions), self._limit(limit), after)
        if strong:
            self._barrier_for(info.id, (pk_b,))
        cells, more = self.backend.read_row(info.id, vis, pk_b, q)
        next_cursor = None
        if more and cells:
            last = cells[-1]
            next_cursor = encode_cursor("row", pk_b, last.sk, last.ts)
        return RowPage(pk_b, cells, next_cursor)

    def multi_get(
        self,
        namespace: str,
        table: str,
        keys: Sequence[tuple[Key, Key | None]],
        *,
        versions: int = 1,
        consistency: Consistency | None = None,
    ) -> list[RowPage]:
        """For each (pk, sk) its cell's versions; for (pk, None) the row (first page)."""
        if len(keys) > self.limits.max_multi_get_keys:
            raise InvalidRequestError(
                f"a multi-get takes at most {self.limits.max_multi_get_keys} keys"
            )
        pairs: list[tuple[bytes, bytes | None]] = []
        for i, (pk, sk) in enumerate(keys):
            pk_b = _b(pk, f"keys[{i}].pk")
            assert pk_b is not None
            self.limits.check_pk(pk_b)
            pairs.append((pk_b, _b(sk, f"keys[{i}].sk")))
        info, vis, strong = self._prepare(namespace, table, consistency)
        rf = self._read_filter(None, None, versions)
        if strong and pairs:
            self._barrier_for(info.id, [pk for pk, _ in pairs])
        found = self.backend.multi_get(info.id, vis, pairs, rf, self.limits.max_read_limit)
        return [RowPage(pk, cells) for (pk, _), cells in zip(pairs, found, strict=True)]

    def scan(
        self,
        namespace: str,
        table: str,
        *,
        pk_start: Key | None = None,
        pk_end: Key | None = None,
        pk_prefix: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int = 1,
        limit: int = 1000,
        cursor: str | None = None,
        consistency: Consistency | None = None,
    ) -> ScanPage:
        """A page of the table's visible cells in (pk, sk) order."""
        info, vis, strong = self._prepare(namespace, table, consistency)
        after = None
        if cursor is not None:
            c_pk, c_sk, c_ts = decode_cursor(cursor, "scan", (bytes, bytes, int))
            assert isinstance(c_pk, bytes) and isinstance(c_sk, bytes) and isinstance(c_ts, int)
            after = (c_pk, c_sk, c_ts)
        q = ScanQuery(
            pk_start=_b(pk_start, "pk_start"),
            pk_end=_b(pk_end, "pk_end"),
            pk_prefix=_b(pk_prefix, "pk_prefix"),
            rf=self._read_filter(min_ts, max_ts, versions),
            limit=self._limit(limit),
            after=after,
        )
        if strong:
            self._barrier_for(info.id, None)
        cells, more = self.backend.scan(info.id, vis, q)
        next_cursor = None
        if more and cells:
            last = cells[-1]
            next_cursor = encode_cursor("scan", last.pk, last.sk, last.ts)
        return ScanPage(cells, next_cursor)

    def scan_all(self, namespace: str, table: str, **kwargs: Any) -> Iterator[ScanCell]:
        """Every cell a scan with these arguments covers, following cursors."""
        cursor = None
        while True:
            page = self.scan(namespace, table, cursor=cursor, **kwargs)
            yield from page.cells
            if page.cursor is None:
                return
            cursor = page.cursor


class Table:
    """A handle on one table of a ``Store``; every call re-reads the table's options."""

    def __init__(self, store: Store, namespace: str, name: str) -> None:
        self.store = store
        self.namespace = namespace
        self.name = name

    def __repr__(self) -> str:
        return f"Table({self.namespace}/{self.name})"

    @property
    def info(self) -> TableInfo:
        return self.store.table_info(self.namespace, self.name)

    def put(
        self,
        pk: Key,
        sk: Key = b"",
        value: Key = b"",
        *,
        ts: int | None = None,
        ack: Ack = "durable",
    ) -> None:
        self.store.write(self.namespace, self.name, [Put(pk, sk, value, ts)], ack=ack)

    def delete(
        self, pk: Key, sk: Key = b"", *, ts: int | None = None, ack: Ack = "durable"
    ) -> None:
        self.store.write(self.namespace, self.name, [Delete(pk, sk, ts)], ack=ack)

    def write(self, records: Sequence[Put | Delete], *, ack: Ack = "durable") -> int:
        return self.store.write(self.namespace, self.name, records, ack=ack)

    def get(self, pk: Key, sk: Key = b"", **kwargs: Any) -> list[Cell]:
        return self.store.get(self.namespace, self.name, pk, sk, **kwargs)

    def row(self, pk: Key, **kwargs: Any) -> RowPage:
        return self.store.read_row(self.namespace, self.name, pk, **kwargs)

    def multi_get(self, keys: Sequence[tuple[Key, Key | None]], **kwargs: Any) -> list[RowPage]:
        return self.store.multi_get(self.namespace, self.name, keys, **kwargs)

    def scan(self, **kwargs: Any) -> ScanPage:
        return self.store.scan(self.namespace, self.name, **kwargs)

    def scan_all(self, **kwargs: Any) -> Iterator[ScanCell]:
        return self.store.scan_all(self.namespace, self.name, **kwargs)
