"""Bulk-load jobs: submission, states, progress, cancel, recovery after a crash.

States (SPEC §2)::

    pending -> running -> committed | failed | cancelled

A job record is a metadata item ``meta_key("job", id)`` (JSON ``JobInfo``), written at
every change of state. The commit writes the record, state ``committed``, in the same
atomic step as the catalog change that makes the data visible, so a job is committed
exactly when its data is.

``JobManager`` runs each job in a thread, as batch work (it pauses between steps while
online reads are slow, see ``JobManager``); jobs of one table run one at a time (a
replace's floor may commit only when no other load of its table is pending), jobs of
different tables in parallel. Submission checks what can be known at once (table,
mode, layout, columns; the source's files exist, are Parquet and have the columns):
``InvalidRequestError`` then, nothing is created. Submitting again with the same
client-chosen ``job_id`` and the same request returns the existing job; with another
request it is ``ConflictError``.

At start-up (a new ``JobManager``), a job still ``pending`` or ``running`` was cut
short by a crash or a stop: it becomes ``failed`` and every pending epoch is aborted,
so the table is exactly as before the job.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from mussel.bulkload.layouts import parse_layout
from mussel.bulkload.loader import Cancelled, LoadPlan, LoadStats, run_load
from mussel.bulkload.modes import check_mode
from mussel.bulkload.source import open_source
from mussel.codec.keys import meta_key
from mussel.engine import Store
from mussel.errors import (
    ConflictError,
    InvalidRequestError,
    JobNotFoundError,
    MusselError,
)
from mussel.limits import check_ts
from mussel.observability.pacing import LatencyGuard

__all__ = [
    "FINAL",
    "JobError",
    "JobInfo",
    "JobManager",
    "JobProgress",
    "JobService",
    "JobSpec",
    "JobState",
    "check_job_id",
]

JobState = Literal["pending", "running", "committed", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"committed", "failed", "cancelled"})
_JOB_PREFIX = meta_key("job", "")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


class JobSpec(msgspec.Struct, frozen=True):
    """What was asked: the part of a job that decides idempotent resubmission."""

    namespace: str
    table: str
    source: str
    mode: str = "merge"
    layout: str = "cells"
    columns: dict[str, str] = msgspec.field(default_factory=dict)
    ts: int | None = None


class JobProgress(msgspec.Struct):
    phase: str = "pending"
    rows: int = 0
    bytes: int = 0
    total_rows: int = 0
    total_bytes: int = 0
    fraction: float = 0.0
    cells: int = 0
    duplicates_dropped: int = 0
    skipped_existing: int = 0
    rate_rows_s: float = 0.0
    eta_s: float | None = None


class JobError(msgspec.Struct, frozen=True):
    code: str
    message: str


class JobInfo(msgspec.Struct):
    id: str
    spec: JobSpec
    state: str = "pending"
    kind: str = "bulkload"
    table_id: int = 0
    epoch: int | None = None
    ts_us: int = 0
    created_us: int = 0
    started_us: int | None = None
    finished_us: int | None = None
    progress: JobProgress = msgspec.field(default_factory=JobProgress)
    error: JobError | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["duplicates_dropped"] = self.progress.duplicates_dropped
        return out


def check_job_id(job_id: object) -> str:
    """A client-chosen job id, checked (``InvalidRequestError``)."""
    if not isinstance(job_id, str) or _ID_RE.fullmatch(job_id) is None:
        raise InvalidRequestError(
            "job id must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':', '-'"
        )
    return job_id


class JobService(Protocol):
    """What the HTTP API needs of bulk-load jobs: ``JobManager`` (embedded mode, one
    process runs the loads) and ``ClusterJobs`` (distributed mode, jobs in the
    database, run by workers) give the same states, progress and errors."""

    def submit(
        self,
        namespace: str,
        table: str,
        source: str,
        *,
        mode: str = "merge",
        layout: str = "cells",
        columns: Mapping[str, str] | None = None,
        ts: int | None = None,
        job_id: str | None = None,
    ) -> JobInfo: ...

    def get(self, job_id: str) -> JobInfo: ...

    def list(self, namespace: str | None = None) -> list[JobInfo]: ...

    def cancel(self, job_id: str) -> JobInfo: ...

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobInfo: ...

    def close(self) -> None: ...


_MARKER = ".mussel-bulk-workdir"


def _claim_workdir(path: Path) -> None:
    """Make ``path`` this manager's scratch directory, emptied of a crashed run's files.

    A directory that holds anything but what a JobManager put there is refused
    (``InvalidRequestError``): nothing else is ever deleted."""
    path.mkdir(parents=True, exist_ok=True)
    marker = path / _MARKER
    entries = [p for p in path.iterdir() if p.name != _MARKER]
    if entries and not marker.exists():
        raise InvalidRequestError(
            f"{path} is not empty and is not a bulk-load scratch directory; "
            "give an empty or new directory"
        )
    for p in entries:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    marker.touch()


def _key(job_id: str) -> bytes:
    return meta_key("job", job_id)


class _TableQueue:
    """The jobs of one table, run one at a time in submission order (FIFO)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._order: list[str] = []

    def enter(self, job_id: str) -> None:
        with self._cond:
            self._order.append(job_id)

    @contextlib.contextmanager
    def turn(self, job_id: str, cancelled: threading.Event) -> Iterator[None]:
        """Wait until ``job_id`` is first in line (or cancelled), then hold the turn."""
        try:
            with self._cond:
                while self._order[0] != job_id and not cancelled.is_set():
                    self._cond.wait(0.1)
            yield
        finally:
            with self._cond:
                self._order.remove(job_id)
                self._cond.notify_all()


class _Running:
    def __init__(self, info: JobInfo) -> None:
        self.info = info
        self.stats = LoadStats()
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        self.started_mono = 0.0


class JobManager:
    """Runs bulk loads of one ``Store`` in background threads (see module docstring)."""

    def __init__(
        self,
        store: Store,
        workdir: str | Path | None = None,
        *,
        batch_rows: int = 65_536,
        run_bytes: int = 128 << 20,
        sst_cells: int = 500_000,
        read_p99_s: Callable[[], float | None] | None = None,
        latency_target_s: float = 0.005,
        latency_rise: float = 1.15,
    ) -> None:
        """``read_p99_s`` (the online reads' recent p99 in seconds, None when unknown)
        makes loads batch work (SPEC §7): each pauses between steps while it is above
        ``latency_target_s`` or ``latency_rise`` x its value at the load's start,
        whichever is higher (``LatencyGuard.for_run``, as expiration sweeps do)."""
        self.store = store
        self._guard = (read_p99_s, latency_target_s, latency_rise)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mussel-bulk-"))
        _claim_workdir(self.workdir)
        self._tuning = {"batch_rows": batch_rows, "run_bytes": run_bytes, "sst_cells": sst_cells}
        self._lock = threading.Lock()
        self._live: dict[str, _Running] = {}
        self._queues: dict[int, _TableQueue] = {}
        self._ids = itertools.count()
        self._closed = False
        self._recover()

    # -- persistence ------------------------------------------------------------

    def _write(self, info: JobInfo) -> None:
        self.store.backend.meta_write({_key(info.id): msgspec.json.encode(info)})

    def _load(self, job_id: str) -> JobInfo | None:
        raw = self.store.backend.meta_get(_key(job_id))
        return None if raw is None else msgspec.json.decode(raw, type=JobInfo)

    def _recover(self) -> None:
        now = self.store.clock.now_us()
        for _, raw in self.store.backend.meta_scan(_JOB_PREFIX):
            info = msgspec.json.decode(raw, type=JobInfo)
            if info.state not in FINAL:
                info.state = "failed"
                info.finished_us = now
                info.error = JobError(
                    "unavailable",
                    "the store stopped while the job was running; the table is as it was "
                    "before the job (submit it again)",
                )
                self._write(info)
        self.store.catalog.abort_pending_epochs()

    # -- the API ------------------------------------------------------------------

    def submit(
        self,
        namespace: str,
        table: str,
        source: str,
        *,
        mode: str = "merge",
        layout: str = "cells",
        columns: Mapping[str, str] | None = None,
        ts: int | None = None,
        job_id: str | None = None,
    ) -> JobInfo:
        """Check and start a bulk load; returns its job (state ``pending``)."""
        if self._closed:
            raise InvalidRequestError("the job manager is closed")
        if columns is not None and not isinstance(columns, Mapping):
            raise InvalidRequestError("columns must map roles (pk, sk, value, ts) to names")
        spec = JobSpec(namespace, table, source, mode, layout, dict(columns or {}), ts)
        if job_id is not None:
            check_job_id(job_id)
            with self._lock:
                existing = self._live.get(job_id)
                info = existing.info if existing else self._load(job_id)
            if info is not None:
                if info.spec != spec:
                    raise ConflictError(f"job {job_id!r} exists with another request")
                return self.get(job_id)
        check_mode(mode)
        lay = parse_layout(layout, spec.columns)
        if ts is not None:
            check_ts(ts, "ts")
        tinfo = self.store.catalog.get_table(namespace, table)
        src = open_source(source)
        for f in src.files:
            lay.check(f)
        now = self.store.clock.now_us()
        with self._lock:
            if job_id is None:
                job_id = f"bl-{now:x}-{next(self._ids)}"
                while job_id in self._live or self._load(job_id) is not None:
                    job_id = f"bl-{now:x}-{next(self._ids)}"
            elif job_id in self._live or self._load(job_id) is not None:
                return self.get(job_id)  # a concurrent twin submission won the race
            info = JobInfo(
                id=job_id,
                spec=spec,
                table_id=tinfo.id,
                ts_us=now if ts is None else ts,
                created_us=now,
                progress=JobProgress(total_rows=src.total_rows, total_bytes=src.total_bytes),
            )
            self._write(info)
            run = _Running(info)
            self._live[job_id] = run
            tlock = self._queues.setdefault(tinfo.id, _TableQueue())
            tlock.enter(job_id)
        plan_args = (lay, src, check_mode(mode))
        run.thread = threading.Thread(
            target=self._run,
            args=(run, tlock, plan_args),
            name=f"mussel-bulk-{job_id}",
            daemon=True,
        )
        run.thread.start()
        return self.get(job_id)

    def get(self, job_id: str) -> JobInfo:
        with self._lock:
            run = self._live.get(job_id)
            if run is not None:
                return self._snapshot(run)
        info = self._load(job_id)
        if info is None:
            raise JobNotFoundError(f"job {job_id!r} does not exist")
        return info

    def list(self, namespace: str | None = None) -> list[JobInfo]:
        out = {}
        for _, raw in self.store.backend.meta_scan(_JOB_PREFIX):
            info = msgspec.json.decode(raw, type=JobInfo)
            out[info.id] = info
        with self._lock:
            for job_id, run in self._live.items():
                out[job_id] = self._snapshot(run)
        jobs = [j for j in out.values() if namespace is None or j.spec.namespace == namespace]
        return sorted(jobs, key=lambda j: (j.created_us, j.id))

    def cancel(self, job_id: str) -> JobInfo:
        """Ask a job to stop; a finished job is returned as it is."""
        with self._lock:
            run = self._live.get(job_id)
        if run is None:
            return self.get(job_id)
        run.cancelled.set()
        return self.get(job_id)

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobInfo:
        """Block until the job is final (or ``timeout_s``); returns it."""
        with self._lock:
            run = self._live.get(job_id)
        if run is not None:
            run.done.wait(timeout_s)
        return self.get(job_id)

    def close(self, timeout_s: float = 30.0) -> None:
        """Cancel running jobs and wait for their threads."""
        self._closed = True
        with self._lock:
            runs = list(self._live.values())
        for run in runs:
            run.cancelled.set()
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout_s)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------

    def _snapshot(self, run: _Running) -> JobInfo:
        info = run.info
        p = info.progress
        s = run.stats
        with s.lock:
            if info.state == "running":
                p.phase = s.phase
                p.rows, p.bytes, p.cells = s.rows, s.bytes, s.cells_ingested
                p.duplicates_dropped = s.duplicates_dropped
                p.skipped_existing = s.skipped_existing
                read = s.bytes / p.total_bytes if p.total_bytes else 1.0
                wrote = s.cells_ingested / s.cells_read if s.cells_read else 0.0
                if s.phase == "reading":
                    wrote = 0.0
                p.fraction = round(min(0.999, 0.7 * read + 0.3 * wrote), 4)
                elapsed = self.store.clock.monotonic() - run.started_mono
                if elapsed > 0:
                    p.rate_rows_s = round(s.rows / elapsed, 1)
                if p.fraction > 0 and elapsed > 0:
                    p.eta_s = round(elapsed * (1 - p.fraction) / p.fraction, 1)
        return msgspec.convert(msgspec.to_builtins(info), JobInfo)

    def _finish(self, run: _Running, state: str, error: JobError | None) -> None:
        info = run.info
        self._snapshot(run)
        info.state = state
        info.error = error
        info.finished_us = self.store.clock.now_us()
        info.progress.eta_s = None
        info.progress.phase = state

    def _run(self, run: _Running, tlock: _TableQueue, plan_args: tuple[Any, ...]) -> None:
        info = run.info
        catalog = self.store.catalog
        epoch: int | None = None
        try:
            with tlock.turn(info.id, run.cancelled):
                if run.cancelled.is_set():
                    raise Cancelled
                spec = info.spec
                table, epoch = catalog.reserve_epoch(spec.namespace, spec.table)
                if table.id != info.table_id:
                    raise ConflictError(
                        f"table {spec.namespace}/{spec.table} was dropped and created again"
                    )
                with self._lock:
                    info.epoch = epoch
                    info.state = "running"
                    info.started_us = self.store.clock.now_us()
                    info.progress.phase = "reading"
                    run.started_mono = self.store.clock.monotonic()
                self._write(info)
                layout, src, mode = plan_args
                plan = LoadPlan(
                    spec.namespace,
                    spec.table,
                    info.table_id,
                    epoch,
                    info.ts_us,
                    mode,
                    layout,
                    src,
                    self.workdir / info.id,
                    **self._tuning,
                )

                def committed_items(stats: LoadStats) -> dict[bytes, bytes]:
                    with self._lock:
                        final = self._snapshot(run)
                    final.state = "committed"
                    final.finished_us = self.store.clock.now_us()
                    final.progress.fraction, final.progress.phase = 1.0, "committed"
                    final.progress.eta_s = None
                    done.append(final)
                    return {_key(info.id): msgspec.json.encode(final)}

                done: list[JobInfo] = []
                guard = LatencyGuard.for_run(*self._guard)
                run_load(self.store, plan, run.stats, run.cancelled, committed_items, guard)
                with self._lock:
                    run.info = done[-1]
        except Cancelled:
            self._fail(run, epoch, "cancelled", None)
        except MusselError as exc:
            self._fail(run, epoch, "failed", JobError(exc.code, exc.message))
        except Exception as exc:  # a bug or an unexpected library error: report it
            self._fail(run, epoch, "failed", JobError("internal", f"{type(exc).__name__}: {exc}"))
        finally:
            with self._lock:
                self._live.pop(info.id, None)
            run.done.set()

    def _fail(self, run: _Running, epoch: int | None, state: str, error: JobError | None) -> None:
        info = run.info
        if epoch is not None:
            spec = info.spec
            # if this fails the epoch stays pending: aborted at the next start-up
            with contextlib.suppress(MusselError):
                self.store.catalog.abort_epoch(spec.namespace, spec.table, info.table_id, epoch)
        with self._lock:
            self._finish(run, state, error)
        with contextlib.suppress(MusselError):
            self._write(info)
