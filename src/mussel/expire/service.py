"""``ExpirationService``: sweeps tables so that invisible versions leave the disk.

A *run* of one table:

1. **plan**: split the table's pk space into subtasks of about
   ``subtask_bytes`` each, from the backend's storage estimates
   (``Backend.split_points``: RocksDB's live files), so subtasks take similar time;
2. **sweep**: ``workers`` threads take subtasks; each scans its range in steps of
   ``step_versions`` stored versions (``Backend.sweep_scan``, read-only, from a
   snapshot; in a follower process when there are any, see ``remote.py``), then
   deletes what ``storage.versions.removable_versions`` allows
   (``Backend.sweep_delete``, holding the catalog's ``apply_lock`` so no apply
   interleaves; a version replaced since the scan stays). Before each step a worker
   takes its deletes from the shared ``DeleteBudget`` and pauses as the
   ``LatencyGuard`` says (batch priority: online reads first);
3. **checkpoint**: the run's state (each subtask's next cell) is written to the
   backend's metadata every ``checkpoint_s``, so after a crash the run resumes
   where it stopped (``start()`` resumes unfinished runs);
4. **compact** each swept range, so the space returns to the file system, and
   record the run's figures (``last_run``): the logical bytes removed, and the bytes
   returned to the file system, measured (``Backend.disk_bytes`` before the run and
   after its compaction).

Runs of dead versions that were consecutive stored keys (a whole dead pk, the tail of
a cell under an expired version) go as one range delete each (``SweepPage.runs``,
``ExpireConfig.range_min``); ``sweep_delete`` checks that such a run's keys are still
exactly the scanned ones first, so a version written meanwhile is never removed.

Runs come from ``run_now`` (on demand: ``POST .../expire``, ``mussel expire``) and
from the scheduler thread, which starts a run of each table its interval after its
previous one: the table's ``expire_interval_s`` option, else
``ExpireConfig.interval_s``. Dropped tables' ranges are compacted (their data was
removed at drop) and forgotten. Nothing visible is ever removed: see ``removable_versions``.
The clock is the store's (injectable), so TTL is judged as reads judge it.

Several workers over one shared database (distributed mode) each run the scheduler;
a worker *claims* a table before it runs it (``meta_key("expire-claim", id)``: the
worker's id and a lease, set by compare-and-set, renewed at every checkpoint), so a
table is swept by one worker at a time and tables are spread over the workers. A
claim whose lease ran out (its worker died) is taken over, and the run resumes from
its checkpoint. A run asked for (or scheduled) before another worker finished one of
that table is not run again.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import msgspec

from mussel.catalog.catalog import DROPPED_PREFIX
from mussel.codec.keys import meta_key
from mussel.engine import Store
from mussel.errors import ConflictError, MusselError, TableNotFoundError
from mussel.expire.budget import DeleteBudget, LatencyGuard
from mussel.model import TableInfo
from mussel.storage.base import RANGE_DELETE_MIN, SweepPage
from mussel.storage.versions import Visibility

__all__ = ["ExpireConfig", "ExpirationService", "RunStats"]

log = logging.getLogger("mussel.expire")


@dataclass(frozen=True)
class ExpireConfig:
    interval_s: float | None = 3600.0
    """Time from the end of a table's run (or its creation) to its next scheduled run
    (None: on demand only), for tables without their own ``expire_interval_s``
    option (which wins)."""
    workers: int = 2
    """Subtasks of one run swept at once (threads)."""
    subtask_bytes: int = 64 << 20
    """A run splits each table into range subtasks of about this many stored bytes."""
    step_versions: int = 200
    """Stored versions per step (small steps keep each GIL hold short for reads)."""
    range_min: int = RANGE_DELETE_MIN
    """Runs of at least this many consecutive dead versions go as one range delete."""
    deletes_per_s: float | None = None
    """The global budget of deletes per second (None: no limit)."""
    tombstone_grace_s: float = 86400.0
    """A tombstone that hides nothing any more goes once it is this old."""
    latency_target_s: float = 0.005
    """Sweeps slow down while the online read p99 is above this, or above
    ``latency_rise`` times the p99 when the run started, whichever is higher."""
    latency_rise: float = 1.15
    """See ``latency_target_s``."""
    checkpoint_s: float = 1.0
    """How often a run stores its progress (a restarted server resumes from there)."""
    poll_s: float = 1.0
    """How often the scheduler looks for due runs and requested ones."""


class Subtask(msgspec.Struct):
    pk_start: bytes | None
    pk_end: bytes | None
    next_cell: tuple[bytes, bytes] | None = None
    done: bool = False


class RunStats(msgspec.Struct):
    """One run of one table. Times are microseconds since the epoch."""

    table_id: int
    namespace: str
    table: str
    started_us: int
    ended_us: int | None = None
    state: str = "running"  # running | done | failed
    reason: str = "scheduled"  # scheduled | on_demand | resumed
    subtasks: int = 0
    examined: int = 0
    removed: int = 0
    removed_bytes: int = 0
    """Logical bytes removed: keys and values of the versions deleted."""
    range_deletes: int = 0
    """Runs of dead versions deleted with one range delete each."""
    disk_bytes_before: int | None = None
    """Bytes the table took on the file system when the run started
    (``Backend.disk_bytes``; None: not measured by this backend)."""
    disk_bytes_after: int | None = None
    """... and after the run's compaction."""
    disk_reclaimed: int | None = None
    """Bytes returned to the file system: before - after (0 if it grew: writes
    during the run count against it)."""
    throttled_steps: int = 0
    error: str | None = None


class _RunState(msgspec.Struct):
    stats: RunStats
    subtasks: list[Subtask]


def _run_key(table_id: int) -> bytes:
    return meta_key("expire-run", f"{table_id:010d}")


def _last_key(table_id: int) -> bytes:
    return meta_key("expire-last", f"{table_id:010d}")


def _request_key(table_id: int) -> bytes:
    return meta_key("expire-request", f"{table_id:010d}")


def _claim_key(table_id: int) -> bytes:
    return meta_key("expire-claim", f"{table_id:010d}")


class _Claim(msgspec.Struct):
    """A worker's hold on a table's runs (shared database, several workers)."""

    owner: str
    expires_us: int


CLAIM_LEASE_S = 30.0
"""A claim not renewed for this long is another worker's to take."""

_CLAIM = msgspec.json.Decoder(_Claim)
_RUN_PREFIX = meta_key("expire-run", "")
_REQUEST_PREFIX = meta_key("expire-request", "")
_LAST = msgspec.json.Decoder(RunStats)
_RUN = msgspec.json.Decoder(_RunState)


class ExpirationService:
    """Owns the sweeps of one ``Store`` (the process that owns its data)."""

    def __init__(
        self,
        store: Store,
        config: ExpireConfig | None = None,
        *,
        read_p99_s: Callable[[], float | None] | None = None,
        scan: Callable[..., SweepPage] | None = None,
        remote: bool = False,
    ) -> None:
        """``scan`` runs each step's scan (``Backend.sweep_scan``'s signature; default:
        the store's backend, in this process; ``RemoteScanner``: in followers).

        ``remote`` (a distributed-mode dispatcher): the sweeps run in worker processes
        over the shared database; this object only asks for runs (``run_now`` stores
        a request the workers take) and reports their state from the database (a
        running run's checkpoint, the last run's figures). ``start`` does nothing."""
        self.store = store
        self.remote = remote
        self._scan = scan or store.backend.sweep_scan
        self.config = cfg = config or ExpireConfig()
        self.budget = DeleteBudget(cfg.deletes_per_s)
        self._guard_source = read_p99_s
        self._lock = threading.Lock()
        self._running: dict[int, RunStats] = {}
        self._queued: dict[int, str] = {}  # table id -> reason
        self._queued_us: dict[int, int] = {}  # table id -> when it was queued
        self._claims = store.catalog.shared  # other workers share the database
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._held: dict[int, bytes] = {}  # table id -> this worker's claim as stored
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max(1, cfg.workers), thread_name_prefix="mussel-expire")

    # -- control --------------------------------------------------------------

    def start(self) -> None:
        """Resume runs a crash interrupted, then schedule runs in a background thread."""
        if self.remote:
            return
        for _, raw in self.store.backend.meta_scan(_RUN_PREFIX):
            state = _RUN.decode(raw)
            self._queued[state.stats.table_id] = "resumed"
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mussel-expire", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the current steps (runs resume at the next ``start``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._pool.shutdown(wait=True)

    def run_now(self, namespace: str, table: str) -> RunStats | None:
        """Queue a run of the table (no-op if one is queued or running); returns the
        running run's figures, if there is one."""
        info = self.store.table_info(namespace, table)
        if self.remote:
            self.store.backend.meta_write({_request_key(info.id): b"on_demand"})
            return None
        with self._lock:
            running = self._running.get(info.id)
            if running is None:
                self._queued.setdefault(info.id, "on_demand")
        self._wake.set()
        return running

    def state(self, namespace: str, table: str) -> dict[str, object]:
        """What ``GET .../tables/{t}`` shows: running, queued, last run, next run."""
        info = self.store.table_info(namespace, table)
        if self.remote:
            raw = self.store.backend.meta_get(_run_key(info.id))
            running = None if raw is None else _RUN.decode(raw).stats
            queued = self.store.backend.meta_get(_request_key(info.id)) is not None
        else:
            with self._lock:
                running = self._running.get(info.id)
                queued = info.id in self._queued
        last = self.last_run(info.id)
        return {
            "state": "running" if running else "queued" if queued else "idle",
            "running": msgspec.to_builtins(running) if running else None,
            "last_run": msgspec.to_builtins(last) if last else None,
            "next_run_us": self.next_run_us(info.id, last),
        }

    def last_run(self, table_id: int) -> RunStats | None:
        raw = self.store.backend.meta_get(_last_key(table_id))
        return None if raw is None else _LAST.decode(raw)

    def interval_s(self, info: TableInfo) -> float | None:
        """The table's schedule: its ``expire_interval_s`` option, else the server's
        ``interval_s`` (None: on demand only)."""
        own = info.options.expire_interval_s
        return float(own) if own is not None else self.config.interval_s

    def next_run_us(self, table_id: int, last: RunStats | None = None) -> int | None:
        """When the scheduler starts the table's next run: its interval after the end
        of its last run (or after its creation); None if it runs on demand only."""
        info = self.store.catalog.table_by_id(table_id)
        interval = None if info is None else self.interval_s(info)
        if info is None or interval is None:
            return None
        last = last if last is not None else self.last_run(table_id)
        interval_us = int(interval * 1_000_000)
        if last is not None and last.ended_us is not None:
            return last.ended_us + interval_us
        return info.created_us + interval_us

    def run(self, namespace: str, table: str, reason: str = "on_demand") -> RunStats:
        """Run a sweep of the table now, in this thread; return its figures."""
        return self._run(self.store.table_info(namespace, table), reason)

    # -- the scheduler --------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reclaim_dropped()
                self._take_requests()
                self._schedule()
                with self._lock:
                    queued, self._queued = self._queued, {}
                    queued_us, self._queued_us = self._queued_us, {}
                for table_id, reason in queued.items():
                    if self._stop.is_set():
                        break
                    info = self._table(table_id)
                    if info is None:  # dropped meanwhile
                        self.store.backend.meta_write({_run_key(table_id): None})
                        continue
                    if not self._claims:
                        self._run(info, reason)
                    elif self._claim(table_id):
                        try:
                            if not self._done_elsewhere(table_id, reason, queued_us):
                                # judge by the options as of now (a dispatcher may have
                                # changed the TTL just before it asked for this run)
                                self.store.catalog.refresh()
                                info = self._table(table_id) or info
                                self._run(info, reason)
                        finally:
                            self._release(table_id)
            except MusselError as exc:
                log.error("expiration: %s", exc)
            self._wake.wait(self.config.poll_s)
            self._wake.clear()

    # -- claims (several workers over one database) --------------------------

    def _claim(self, table_id: int, renew: bool = False) -> bool:
        """Take (or with ``renew`` keep) this worker's claim on the table's runs:
        False if another worker holds a live one."""
        key = _claim_key(table_id)
        backend = self.store.backend
        stored = backend.meta_get(key)
        now = self.store.clock.now_us()
        if stored is not None and stored != self._held.get(table_id):
            held = _CLAIM.decode(stored)
            if held.owner != self._owner and held.expires_us > now:
                return False
            if renew:
                return False  # lost it: the lease ran out and another took it
        mine = msgspec.json.encode(_Claim(self._owner, now + int(CLAIM_LEASE_S * 1e6)))
        try:
            backend.meta_write({key: mine}, expect={key: stored})
        except ConflictError:
            return False
        self._held[table_id] = mine
        return True

    def _release(self, table_id: int) -> None:
        key = _claim_key(table_id)
        mine = self._held.pop(table_id, None)
        if mine is None:
            return
        try:
            self.store.backend.meta_write({key: None}, expect={key: mine})
        except ConflictError:
            pass  # taken over meanwhile: the other worker's now
        except MusselError as exc:
            log.warning("expiration: cannot release the claim on table %d: %s", table_id, exc)

    def _done_elsewhere(self, table_id: int, reason: str, queued_us: dict[int, int]) -> bool:
        """Whether another worker ran the table since this one queued it (or finished
        the interrupted run this one would resume)."""
        if reason == "resumed":
            return self.store.backend.meta_get(_run_key(table_id)) is None
        if self.store.backend.meta_get(_run_key(table_id)) is not None:
            return False  # an interrupted run: resume it
        last = self.last_run(table_id)
        since = queued_us.get(table_id)
        ended = None if last is None else last.ended_us
        return since is not None and ended is not None and ended >= since

    def _table(self, table_id: int) -> TableInfo | None:
        """The table, reading a shared catalog again if it was created since this
        process last read it (a dispatcher asked for a run of a table just made)."""
        catalog = self.store.catalog
        info = catalog.table_by_id(table_id)
        if info is None and catalog.shared and table_id >= catalog.next_table_id:
            catalog.refresh()
            info = catalog.table_by_id(table_id)
        return info

    def _schedule(self) -> None:
        now = self.store.clock.now_us()
        for info in self.store.catalog.all_tables():
            if self.interval_s(info) is None:
                continue
            due = self.next_run_us(info.id)
            if due is not None and due <= now:
                with self._lock:
                    if info.id not in self._running:
                        self._queued.setdefault(info.id, "scheduled")
                        self._queued_us.setdefault(info.id, now)

    def _take_requests(self) -> None:
        """Runs that dispatchers asked for (distributed mode), once each."""
        requests = self.store.backend.meta_scan(_REQUEST_PREFIX)
        if not requests:
            return
        now = self.store.clock.now_us()
        with self._lock:
            for key, raw in requests:
                table_id = int(key.rsplit(b"\x00", 1)[1])
                if table_id not in self._running:
                    self._queued.setdefault(table_id, raw.decode("ascii", "replace"))
                    self._queued_us.setdefault(table_id, now)
        self.store.backend.meta_write(dict.fromkeys((key for key, _ in requests), None))

    def _reclaim_dropped(self) -> None:
        for key, _ in self.store.backend.meta_scan(DROPPED_PREFIX):
            table_id = int(key.rsplit(b"\x00", 1)[1])
            self.store.backend.compact(table_id, None, None)
            self.store.backend.meta_write(
                {key: None, _run_key(table_id): None, _last_key(table_id): None}
            )
            log.info("expiration: reclaimed the space of dropped table %d", table_id)

    # -- one run --------------------------------------------------------------

    def _plan(self, info: TableInfo) -> list[Subtask]:
        points = self.store.backend.split_points(info.id, self.config.subtask_bytes)
        bounds: list[bytes | None] = [None, *points, None]
        return [Subtask(lo, hi) for lo, hi in itertools.pairwise(bounds)]

    def _run(self, info: TableInfo, reason: str) -> RunStats:
        backend = self.store.backend
        raw = backend.meta_get(_run_key(info.id))
        if raw is not None:  # an interrupted run: resume it
            state = _RUN.decode(raw)
            state.stats.reason = "resumed"
        else:
            started_us = self.store.clock.now_us()
            disk_before = backend.disk_bytes(info.id)
            subtasks = self._plan(info)
            stats = RunStats(
                info.id,
                info.namespace,
                info.name,
                started_us,
                reason=reason,
                subtasks=len(subtasks),
                disk_bytes_before=disk_before,
            )
            state = _RunState(stats, subtasks)
        stats = state.stats
        with self._lock:
            if info.id in self._running:  # one run of a table at a time
                return self._running[info.id]
            self._running[info.id] = stats
        guard = LatencyGuard.for_run(
            self._guard_source, self.config.latency_target_s, self.config.latency_rise
        )
        progress = threading.Lock()
        last_checkpoint = [time.monotonic()]

        def checkpoint(force: bool = False) -> None:
            now = time.monotonic()
            if force or now - last_checkpoint[0] >= self.config.checkpoint_s:
                if info.id in self._held and not self._claim(info.id, renew=True):
                    log.error("expiration of %s: the claim was lost", info.qualified)
                backend.meta_write({_run_key(info.id): msgspec.json.encode(state)})
                last_checkpoint[0] = now

        def sweep(sub: Subtask) -> None:
            while not sub.done and not self._stop.is_set():
                pause = guard.pause()
                if pause:
                    self._stop.wait(pause)
                current = self.store.catalog.table_by_id(info.id)
                if current is None:
                    raise TableNotFoundError(f"table {info.qualified} was dropped")
                vis = Visibility.of(current, self.store.clock.now_us())
                grace = self.store.clock.now_us() - int(self.config.tombstone_grace_s * 1e6)
                page = self._scan(
                    info.id,
                    vis,
                    sub.next_cell,
                    sub.pk_end,
                    self.config.step_versions,
                    pending=_pending(current),
                    tombstones_before_us=grace,
                    min_run=self.config.range_min,
                )
                self.budget.take(len(page.candidates), self._stop)
                with self.store.catalog.apply_lock:
                    deleted = backend.sweep_delete(info.id, page.candidates, page.runs)
                with progress:
                    stats.examined += page.examined
                    stats.removed += deleted.versions
                    stats.removed_bytes += deleted.nbytes
                    stats.range_deletes += deleted.ranges
                    sub.next_cell = page.next_cell
                    sub.done = page.next_cell is None
                    checkpoint()

        try:
            for sub in state.subtasks:
                if sub.next_cell is None and sub.pk_start is not None and not sub.done:
                    sub.next_cell = (sub.pk_start, b"")
            checkpoint(force=True)
            futures = [self._pool.submit(sweep, s) for s in state.subtasks if not s.done]
            for f in futures:
                f.result()
            if self._stop.is_set():
                checkpoint(force=True)
                return stats  # resumes at the next start
            for sub in state.subtasks:
                backend.compact(info.id, sub.pk_start, sub.pk_end)
            stats.disk_bytes_after = backend.disk_bytes(info.id)
            if stats.disk_bytes_before is not None and stats.disk_bytes_after is not None:
                stats.disk_reclaimed = max(0, stats.disk_bytes_before - stats.disk_bytes_after)
            stats.state = "done"
        except MusselError as exc:
            stats.state = "failed"
            stats.error = exc.message
            log.error("expiration of %s failed: %s", info.qualified, exc)
        finally:
            stats.throttled_steps += guard.throttled
            if stats.state != "running":
                stats.ended_us = self.store.clock.now_us()
                backend.meta_write(
                    {_run_key(info.id): None, _last_key(info.id): msgspec.json.encode(stats)}
                )
            with self._lock:
                self._running.pop(info.id, None)
        log.info(
            "expiration of %s %s: %d versions examined, %d removed (%d bytes; %d range"
            " deletes); %s bytes returned to the file system",
            info.qualified,
            stats.state,
            stats.examined,
            stats.removed,
            stats.removed_bytes,
            stats.range_deletes,
            "unmeasured" if stats.disk_reclaimed is None else stats.disk_reclaimed,
        )
        return stats


def _pending(info: TableInfo) -> frozenset[int]:
    """Epochs of bulk loads still running on the table (never swept)."""
    return frozenset(info.pending_epochs)
