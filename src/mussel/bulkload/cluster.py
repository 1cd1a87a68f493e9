"""Bulk loads in distributed mode, as a dispatcher sees them: ``ClusterJobs``.

The same API, states, progress and errors as ``JobManager`` (SPEC §2, §4), but every
job lives in the database (``storage/sql/jobs.py``), so any dispatcher can submit,
list, get and cancel any job, and the loads are run by workers (``worker.py``), never
by the dispatcher:

* ``submit`` checks what can be known at once, exactly as ``JobManager`` does (table,
  mode, layout, columns; the source's files exist, are Parquet and have the columns),
  then writes the job (``pending``) and its subtasks (``slices.py``) in one
  transaction. A client-chosen ``job_id`` submitted again with the same request
  returns the existing job, with another request it is ``ConflictError``, whichever
  dispatcher received the first one.
* ``get``/``list`` read the job's record and sum its subtasks' progress: ``phase``
  ``reading`` while subtasks run, ``ingesting`` once they are all done and a worker
  merges the staged rows, then the final state. ``fraction`` is 0.7 of the bytes read
  while reading (the merge is the last 0.3), 1.0 once committed.
* ``cancel`` makes a pending job ``cancelled`` at once and asks a running one to stop.

A dispatcher that answers ``committed`` has its catalog refreshed first, so a read it
serves next sees the loaded data; other dispatchers see it within their catalog poll
(0.25 s).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

import msgspec

from mussel.bulkload.jobs import FINAL, JobInfo, JobProgress, JobSpec, check_job_id
from mussel.bulkload.layouts import parse_layout
from mussel.bulkload.modes import check_mode
from mussel.bulkload.slices import plan_slices
from mussel.bulkload.source import open_source
from mussel.engine import Store
from mussel.errors import ConflictError, InvalidRequestError, JobNotFoundError
from mussel.limits import check_ts
from mussel.storage.sql import JobRow, SqlBackend, SqlJobQueue

__all__ = ["ClusterJobs", "job_queue", "job_view"]


def job_queue(store: Store, lease_s: float = 30.0) -> SqlJobQueue:
    """The job queue of a distributed store's database (``InvalidRequestError`` for a
    store that is not on SQL)."""
    backend = store.backend
    if not isinstance(backend, SqlBackend):
        raise InvalidRequestError("distributed bulk loads need the SQL backend")
    return SqlJobQueue(backend, lease_s)


def job_view(row: JobRow, now_us: int) -> JobInfo:
    """The job as the API shows it: its record, with a running job's live progress."""
    info = msgspec.json.decode(row.info, type=JobInfo)
    info.state = row.state
    if row.state != "running":
        return info
    p = info.progress
    t = row.tasks
    p.rows, p.bytes = t.rows, t.nbytes
    p.phase = "ingesting" if t.done == t.total else "reading"
    read = t.nbytes / p.total_bytes if p.total_bytes else 1.0
    if p.phase == "ingesting":
        read = 1.0
    p.fraction = round(min(0.999, 0.7 * read), 4)
    elapsed = (now_us - info.started_us) / 1e6 if info.started_us else 0.0
    if elapsed > 0:
        p.rate_rows_s = round(t.rows / elapsed, 1)
        if p.fraction > 0:
            p.eta_s = round(elapsed * (1 - p.fraction) / p.fraction, 1)
    return info


class ClusterJobs:
    """Bulk-load jobs of a distributed store (see the module docstring).

    ``slice_rows``: about how many rows one subtask loads.
    """

    def __init__(self, store: Store, *, slice_rows: int = 250_000) -> None:
        self.store = store
        self.queue = job_queue(store)
        self.slice_rows = slice_rows

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
        """Check and record a bulk load; returns its job (state ``pending``)."""
        if columns is not None and not isinstance(columns, Mapping):
            raise InvalidRequestError("columns must map roles (pk, sk, value, ts) to names")
        spec = JobSpec(namespace, table, source, mode, layout, dict(columns or {}), ts)
        if job_id is not None:
            check_job_id(job_id)
            existing = self._same(job_id, spec)
            if existing is not None:
                return existing
        check_mode(mode)
        lay = parse_layout(layout, spec.columns)
        if ts is not None:
            check_ts(ts, "ts")
        tinfo = self.store.catalog.get_table(namespace, table)
        src = open_source(source)
        for f in src.files:
            lay.check(f)
        slices = plan_slices(src, self.slice_rows)
        for _ in range(8):
            now = self.store.clock.now_us()
            new_id = job_id or f"bl-{now:x}-{secrets.token_hex(3)}"
            info = JobInfo(
                id=new_id,
                spec=spec,
                table_id=tinfo.id,
                ts_us=now if ts is None else ts,
                created_us=now,
                progress=JobProgress(total_rows=src.total_rows, total_bytes=src.total_bytes),
            )
            created = self.queue.create_job(
                new_id,
                namespace,
                tinfo.id,
                now,
                msgspec.json.encode(info),
                [msgspec.json.encode(s) for s in slices],
            )
            if created:
                return self.get(new_id)
            if job_id is not None:  # a concurrent twin submission won the race
                existing = self._same(job_id, spec)
                if existing is not None:
                    return existing
        raise ConflictError("could not record the job (its id kept being taken); retry")

    def _same(self, job_id: str, spec: JobSpec) -> JobInfo | None:
        """The existing job ``job_id`` if it asked for ``spec`` (``ConflictError`` if
        it asked for something else); None when there is no such job."""
        row = self.queue.job(job_id)
        if row is None:
            return None
        info = job_view(row, self.store.clock.now_us())
        if info.spec != spec:
            raise ConflictError(f"job {job_id!r} exists with another request")
        return self._fresh(info)

    def get(self, job_id: str) -> JobInfo:
        row = self.queue.job(job_id)
        if row is None:
            raise JobNotFoundError(f"job {job_id!r} does not exist")
        return self._fresh(job_view(row, self.store.clock.now_us()))

    def list(self, namespace: str | None = None) -> list[JobInfo]:
        now = self.store.clock.now_us()
        return [job_view(r, now) for r in self.queue.jobs(namespace)]

    def cancel(self, job_id: str) -> JobInfo:
        """Ask a job to stop; a finished job is returned as it is."""

        def cancelled(row: JobRow) -> bytes:
            info = msgspec.json.decode(row.info, type=JobInfo)
            info.state = "cancelled"
            info.finished_us = self.store.clock.now_us()
            info.progress.phase = "cancelled"
            info.progress.eta_s = None
            return msgspec.json.encode(info)

        if not self.queue.request_cancel(job_id, cancelled):
            raise JobNotFoundError(f"job {job_id!r} does not exist")
        return self.get(job_id)

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobInfo:
        """Poll until the job is final (or ``timeout_s``); returns it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            info = self.get(job_id)
            if info.state in FINAL or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(0.05)

    def close(self) -> None:
        """Nothing runs here: the workers run the loads."""

    def _fresh(self, info: JobInfo) -> JobInfo:
        """``info``, after making this process's catalog show a committed job's data."""
        if info.state == "committed" and info.epoch is not None:
            table = self.store.catalog.table_by_id(info.table_id)
            if table is None or table.epoch_seq < info.epoch or info.epoch in table.pending_epochs:
                self.store.catalog.refresh()
        return info
