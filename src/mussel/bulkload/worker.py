"""``BulkWorker``: runs distributed bulk loads (in ``mussel serve --role worker|all``).

Any number of workers, in any number of processes, share the work through the job
queue in the database (``storage/sql/jobs.py``); each step is one transaction, so a
worker killed at any point leaves nothing half done:

1. **start** the next job that may start (jobs of one table one at a time, in
   submission order, as in embedded mode): reserve a pending epoch in the catalog,
   create the job's staging table and mark it ``running``, one transaction.
2. **load a subtask** (``slices.py``): claimed with a lease, renewed by a heartbeat
   thread; its rows are read from the source, turned into cells by the job's layout,
   checked against the limits, and COPYed into the staging table with their source
   order (``seq``) in the same transaction that marks the subtask done, after
   checking it is still this worker's. A worker that dies mid-subtask commits nothing;
   the lease expires and another worker loads the slice again.
3. **finish** a job whose subtasks are all done (or one failed, or cancel was asked),
   in ONE transaction holding the job's row lock. If the staging table holds fewer
   rows than the subtasks staged (it is UNLOGGED: a database crash empties it), every
   subtask is made pending again and the job goes on. Duplicates (pk, sk, ts) are dropped
   keeping the last in source order (``DISTINCT ON ... ORDER BY seq DESC``); for
   ``insert_ignore`` the cells whose (pk, sk) has a visible version are dropped
   (``keep_absent``, the embedded rule); the rest are upserted into the cells table
   with the job's epoch; ``Catalog.commit_epoch`` (with the replace floor for
   ``replace``) writes the catalog in that same transaction, and so does the job's
   final record. Readers see all of the load or none of it, and a ``replace`` hides
   the old versions at the very instant the new ones appear. Before it, the worker
   waits until every write acknowledged so far is applied (as embedded mode's replayer
   has long applied them): a replayer that already knew the commit would stamp a late
   write with the new epoch, which a replace's floor does not hide. A failed or
   cancelled job aborts its epoch in the same way.

Why a commit waits ``settle_s`` (1 s) after the start: a dispatcher decides what is
visible from its cached catalog, which it re-reads every 0.25 s. One that knows the
job's epoch as pending hides its cells, so until it sees the commit it shows the table
exactly as before the job (for a replace: all the old versions, none of the new), and
then all of the new. One whose catalog predates the epoch would take the cells for
visible ones while still lacking the replace floor; waiting until every dispatcher has
polled several times after the start rules that out. The dispatcher that answers a job
``committed`` refreshes its catalog first (``ClusterJobs``), so reading through it
after that shows the load.

Staging tables of final jobs are dropped afterwards (``drop_stages``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
import pyarrow as pa

from mussel.bulkload.cluster import job_queue
from mussel.bulkload.jobs import JobError, JobInfo
from mussel.bulkload.layouts import parse_layout
from mussel.bulkload.loader import batch_cells, check_sizes
from mussel.bulkload.modes import check_mode, keep_absent
from mussel.bulkload.slices import Slice
from mussel.bulkload.source import ParquetSource, open_source
from mussel.engine import Store
from mussel.errors import ConflictError, MusselError, UnavailableError
from mussel.observability.pacing import LatencyGuard
from mussel.storage.sql import CELLS, JobRow, SqlBackend, SqlJobQueue, TaskClaim

__all__ = ["BulkWorker"]

log = logging.getLogger("mussel.bulkload.worker")

GIVE_UP_AFTER = 5
"""Failed attempts to finish one job (not ``UnavailableError``) before it is failed."""
_KEEP_CHUNK = 10_000


def _count(cur: Any, sql: str) -> int:
    cur.execute(sql)
    return int(cur.fetchone()[0])


class _Abandoned(Exception):
    """The subtask is no longer this worker's to finish (lease lost, cancel, stop)."""


class BulkWorker:
    """Runs the steps above in ``threads`` threads until ``stop``.

    ``lease_s``: how long a subtask stays claimed without a heartbeat (heartbeats go
    every third of it). ``poll_s``: how long an idle thread waits before looking again.
    ``settle_s``: the least time between a job's start (its epoch reserved, pending)
    and its commit, so that every dispatcher's catalog (polled every 0.25 s) knows the
    epoch as pending before its cells appear (see the module docstring).

    ``read_p99_s`` (the dispatchers' recent online read p99 in seconds, None when
    unknown: ``SharedReadLatency.cluster_p99``) makes loads batch work (SPEC §7): a
    subtask pauses before each source batch while it is above ``latency_target_s`` or
    ``latency_rise`` x its value when the subtask began, whichever is higher, as
    embedded loads and expiration sweeps do (``LatencyGuard.for_run``).
    ``throttled_steps`` counts the batches that paused.
    """

    def __init__(
        self,
        store: Store,
        *,
        threads: int = 1,
        lease_s: float = 30.0,
        poll_s: float = 0.2,
        settle_s: float = 1.0,
        batch_rows: int = 65_536,
        read_p99_s: Callable[[], float | None] | None = None,
        latency_target_s: float = 0.005,
        latency_rise: float = 1.15,
    ) -> None:
        self.store = store
        self._guard = (read_p99_s, latency_target_s, latency_rise)
        self.throttled_steps = 0
        self.queue: SqlJobQueue = job_queue(store, lease_s)
        backend = store.backend
        assert isinstance(backend, SqlBackend)
        self._backend = backend
        self._threads_n = threads
        self._poll_s = poll_s
        self._settle_s = settle_s
        self._batch_rows = batch_rows
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sources: dict[str, ParquetSource] = {}
        self._sources_lock = threading.Lock()
        self._tls = threading.local()  # .finishing: the job this thread is finishing
        self._finish_failures: dict[str, int] = {}

    def start(self) -> None:
        for i in range(self._threads_n):
            t = threading.Thread(target=self._loop, name=f"mussel-bulk-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current step (a subtask being loaded is abandoned: its lease
        expires and another worker loads it)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)

    def _loop(self) -> None:
        idle = 0
        while not self._stop.is_set():
            try:
                did = self.step()
                if not did and idle % 25 == 0:
                    self.queue.drop_stages()
            except MusselError as exc:
                log.warning("bulk-load worker: %s", exc.message)
                did = False
            except Exception:
                log.exception("bulk-load worker: unexpected error")
                did = False
            idle = 0 if did else idle + 1
            if not did:
                self._stop.wait(self._poll_s)

    def step(self) -> bool:
        """Do one thing (finish, start, or load a subtask); False when there was nothing."""
        return self.finish_one() or self.start_one() or self.load_one()

    # -- jobs ------------------------------------------------------------------------

    def _catalog_step(self, run: Callable[[], bool]) -> bool:
        """Run a transaction that changes the catalog; if it fails, this process's
        cached catalog may hold the change that was rolled back: reload it."""
        try:
            return run()
        except BaseException:
            with contextlib.suppress(MusselError):
                self.store.catalog.reload()
            raise

    def _write_in(
        self, cur: Any
    ) -> Callable[[Mapping[bytes, bytes | None], Mapping[bytes, bytes | None] | None], None]:
        def write(
            items: Mapping[bytes, bytes | None], expect: Mapping[bytes, bytes | None] | None
        ) -> None:
            SqlBackend.write_meta_in(cur, items, expect)

        return write

    def start_one(self) -> bool:
        def start(cur: Any, row: JobRow) -> None:
            info = msgspec.json.decode(row.info, type=JobInfo)
            spec = info.spec
            catalog = self.store.catalog
            catalog.refresh()
            now = self.store.clock.now_us()
            try:
                table = catalog.get_table(spec.namespace, spec.table)
                if table.id != info.table_id:
                    raise ConflictError(
                        f"table {spec.namespace}/{spec.table} was dropped and created again"
                    )
                _, epoch = catalog.reserve_epoch(spec.namespace, spec.table, self._write_in(cur))
            except MusselError as exc:
                self._final(info, "failed", JobError(exc.code, exc.message), now)
                self.queue.set_job(cur, info.id, "failed", msgspec.json.encode(info))
                return
            self.queue.create_stage(cur, row.stage)
            info.epoch = epoch
            info.state = "running"
            info.started_us = now
            info.progress.phase = "reading"
            self.queue.set_job(cur, info.id, "running", msgspec.json.encode(info))

        return self._catalog_step(lambda: self.queue.start_next(start))

    def finish_one(self) -> bool:
        """Finish the next job that is ready. A job whose finishing failed
        ``GIVE_UP_AFTER`` times in a row with an error that waiting does not cure (not
        ``UnavailableError``) is failed with that error, so it cannot hold up the
        jobs behind it."""
        self._tls.finishing = None
        try:
            return self._catalog_step(lambda: self.queue.finish_next(self._finish, self._settle_s))
        except MusselError as exc:
            job_id: str | None = self._tls.finishing
            if job_id is None or isinstance(exc, UnavailableError):
                raise
            tries = self._finish_failures.get(job_id, 0) + 1
            self._finish_failures[job_id] = tries
            if tries < GIVE_UP_AFTER:
                raise
            log.error("bulk-load job %s cannot be committed, failing it: %s", job_id, exc)
            self._finish_failures.pop(job_id, None)

            error = JobError(exc.code, exc.message)

            def give_up(cur: Any, row: JobRow) -> None:
                self._end(cur, row, "failed", error)

            return self._catalog_step(
                lambda: self.queue.finish_next(give_up, self._settle_s, job_id=job_id)
            )

    def _final(self, info: JobInfo, state: str, error: JobError | None, now: int) -> None:
        info.state = state
        info.error = error
        info.finished_us = now
        info.progress.phase = state
        info.progress.eta_s = None

    def _finish(self, cur: Any, row: JobRow) -> None:
        self._tls.finishing = row.id
        info = msgspec.json.decode(row.info, type=JobInfo)
        catalog = self.store.catalog
        catalog.refresh()
        t = row.tasks
        p = info.progress
        p.rows, p.bytes = t.rows, t.nbytes
        p.fraction = round(min(0.999, 0.7 * (t.nbytes / p.total_bytes if p.total_bytes else 1)), 4)
        state, error = "cancelled", None
        if not row.cancel:
            if row.tasks.failed:
                state = "failed"
                error = JobError("internal", "a subtask failed without saying why")
                with contextlib.suppress(msgspec.DecodeError):
                    error = msgspec.json.decode(t.first_error or b"", type=JobError)
            elif _count(cur, f"SELECT count(*) FROM {row.stage}") != t.cells:
                # the staging table lost rows (UNLOGGED: emptied by a database crash)
                log.warning("bulk-load job %s: staged rows were lost; loading again", row.id)
                self.queue.rerun_tasks(cur, row.id, row.stage)
                return
            else:
                try:
                    with cur.connection.transaction():  # a savepoint: undone on failure
                        self._commit(cur, row, info)
                    return
                except MusselError as exc:
                    if isinstance(exc, UnavailableError):
                        raise  # (the savepoint is undone) try again later
                    state, error = "failed", JobError(exc.code, exc.message)
        self._end(cur, row, state, error, info)

    def _end(
        self,
        cur: Any,
        row: JobRow,
        state: str,
        error: JobError | None,
        info: JobInfo | None = None,
    ) -> None:
        """Abort the job's epoch and make it ``state`` (inside its finish transaction)."""
        if info is None:
            info = msgspec.json.decode(row.info, type=JobInfo)
            t = row.tasks
            info.progress.rows, info.progress.bytes = t.rows, t.nbytes
        spec = info.spec
        assert info.epoch is not None
        self.store.catalog.abort_epoch(
            spec.namespace, spec.table, info.table_id, info.epoch, self._write_in(cur)
        )
        self._final(info, state, error, self.store.clock.now_us())
        self.queue.set_job(cur, info.id, state, msgspec.json.encode(info))

    def _commit(self, cur: Any, row: JobRow, info: JobInfo) -> None:
        """Merge the staged rows and commit the epoch (inside the finish transaction)."""
        spec = info.spec
        mode = check_mode(spec.mode)
        stage, tid, epoch = row.stage, info.table_id, info.epoch
        assert epoch is not None
        # Writes acknowledged before now are applied before the commit, as embedded
        # mode's replayer has long applied them: a replayer that already knew the
        # commit would stamp a late one with the new epoch, which a replace's floor does
        # not hide, and a late write at a loaded cell's ts would replace it.
        self.store.wait_all_applied()
        staged = row.tasks.cells  # (checked against the staging table by _finish)
        skipped = 0
        cur.execute("SET LOCAL work_mem = '64MB'")  # for the sort of DISTINCT ON
        dedup = (
            "SELECT DISTINCT ON (pk, sk, its) pk, sk, its, value"
            f" FROM {stage} ORDER BY pk, sk, its, seq DESC"
        )
        source = f"({dedup}) AS d"
        if mode == "insert_ignore":
            cur.execute(f"CREATE TEMP TABLE mussel_bulk_merge ON COMMIT DROP AS {dedup}")
            distinct = _count(cur, "SELECT count(*) FROM mussel_bulk_merge")
            skipped = self._drop_present(cur, spec.namespace, spec.table)
            source = "mussel_bulk_merge"
        cur.execute(
            f"WITH ins AS (INSERT INTO {CELLS} (table_id, pk, sk, its, tomb, epoch, value)"
            f" SELECT %s, pk, sk, its, false, %s, value FROM {source}"
            " ON CONFLICT (table_id, pk, sk, its) DO UPDATE SET"
            " tomb = excluded.tomb, epoch = excluded.epoch, value = excluded.value"
            " RETURNING octet_length(pk) + octet_length(sk) + 8 + octet_length(value) AS n)"
            " SELECT count(*), coalesce(sum(n), 0) FROM ins",
            (tid, epoch),
        )
        got = cur.fetchone()
        written, nbytes = int(got[0]), int(got[1])
        if mode == "insert_ignore":
            cur.execute("DROP TABLE mussel_bulk_merge")
        else:
            distinct = written  # each distinct (pk, sk, ts) inserted or updated once
        if written:
            SqlBackend.count_in(cur, 0, {tid: (written, nbytes)})
        now = self.store.clock.now_us()
        p = info.progress
        p.bytes = p.total_bytes
        p.cells = written
        p.duplicates_dropped = staged - distinct
        p.skipped_existing = skipped
        p.fraction = 1.0
        elapsed = (now - info.started_us) / 1e6 if info.started_us else 0.0
        if elapsed > 0:
            p.rate_rows_s = round(p.rows / elapsed, 1)
        self.store.catalog.commit_epoch(
            spec.namespace,
            spec.table,
            tid,
            epoch,
            floor_ts_us=info.ts_us if mode == "replace" else None,
            write=self._write_in(cur),
        )
        self._final(info, "committed", None, now)
        self.queue.set_job(cur, info.id, "committed", msgspec.json.encode(info))
        self._backend.forget_stats((tid,))

    def _drop_present(self, cur: Any, namespace: str, table: str) -> int:
        """insert_ignore: delete the merge rows whose (pk, sk) has a visible version
        now (``keep_absent``, chunk by chunk in key order). Returns how many."""
        after: tuple[bytes, bytes, int] | None = None
        dropped = 0
        while True:
            if after is None:
                cur.execute(
                    "SELECT pk, sk, its FROM mussel_bulk_merge ORDER BY pk, sk, its LIMIT %s",
                    (_KEEP_CHUNK,),
                )
            else:
                cur.execute(
                    "SELECT pk, sk, its FROM mussel_bulk_merge WHERE (pk, sk, its) > (%s, %s, %s)"
                    " ORDER BY pk, sk, its LIMIT %s",
                    (*after, _KEEP_CHUNK),
                )
            rows = [(bytes(pk), bytes(sk), int(its)) for pk, sk, its in cur.fetchall()]
            if not rows:
                return dropped
            after = rows[-1]
            chunk = pa.table(
                {
                    "pk": pa.array([r[0] for r in rows], pa.binary()),
                    "sk": pa.array([r[1] for r in rows], pa.binary()),
                    "its": pa.array([r[2] for r in rows], pa.int64()),
                }
            )
            kept = keep_absent(self.store, namespace, table, chunk)
            if kept.num_rows == chunk.num_rows:
                continue
            keep = set(
                zip(
                    kept.column("pk").to_pylist(),
                    kept.column("sk").to_pylist(),
                    kept.column("its").to_pylist(),
                    strict=True,
                )
            )
            gone = [r for r in rows if r not in keep]
            dropped += len(gone)
            cur.execute(
                "DELETE FROM mussel_bulk_merge m USING unnest(%b::bytea[], %b::bytea[],"
                " %b::int8[]) AS g(pk, sk, its)"
                " WHERE m.pk = g.pk AND m.sk = g.sk AND m.its = g.its",
                ([g[0] for g in gone], [g[1] for g in gone], [g[2] for g in gone]),
            )

    # -- subtasks -------------------------------------------------------------------

    def _source(self, info: JobInfo) -> ParquetSource:
        with self._sources_lock:
            src = self._sources.get(info.id)
        if src is None:
            src = open_source(info.spec.source)
            with self._sources_lock:
                if len(self._sources) > 64:
                    self._sources.clear()
                self._sources[info.id] = src
        return src

    def load_one(self) -> bool:
        claim = self.queue.claim_task()
        if claim is None:
            return False
        try:
            self._load(claim)
        except _Abandoned:
            log.info("bulk-load subtask %s/%d abandoned", claim.job_id, claim.n)
            if self._stop.is_set():  # stopping: another worker may take it at once
                with contextlib.suppress(MusselError):
                    self.queue.release_task(claim)
        except MusselError as exc:
            self.queue.fail_task(claim, msgspec.json.encode(JobError(exc.code, exc.message)))
        except Exception as exc:  # a bug or an unexpected library error: report it
            log.exception("bulk-load subtask %s/%d", claim.job_id, claim.n)
            message = f"{type(exc).__name__}: {exc}"
            self.queue.fail_task(claim, msgspec.json.encode(JobError("internal", message)))
        return True

    def _load(self, claim: TaskClaim) -> None:
        info = msgspec.json.decode(claim.job_info, type=JobInfo)
        sl = msgspec.json.decode(claim.slice, type=Slice)
        spec = info.spec
        layout = parse_layout(spec.layout, spec.columns)
        src = self._source(info)
        f = src.file(sl.path)
        done = [0, 0]  # rows, bytes
        lost = threading.Event()
        halt = threading.Event()

        def heartbeat() -> None:
            while not halt.wait(self.queue.lease_s / 3):
                try:
                    if not self.queue.heartbeat(claim, done[0], done[1]):
                        lost.set()
                        return
                except MusselError as exc:
                    log.warning("bulk-load heartbeat: %s", exc.message)

        beat = threading.Thread(target=heartbeat, name="mussel-bulk-heartbeat", daemon=True)
        beat.start()

        def rows_of(cells: pa.Table) -> Iterator[tuple[bytes, bytes, int, bytes, int]]:
            cols = [cells.column(c).to_pylist() for c in ("pk", "sk", "ts", "value", "seq")]
            for pk, sk, ts, value, seq in zip(*cols, strict=True):
                yield pk, sk, -1 - ts, value, seq

        guard = LatencyGuard.for_run(*self._guard) if self._guard[0] is not None else None

        def write(cur: Any) -> tuple[int, int, int]:
            cells_n = 0
            try:
                for batch in src.slice_batches(f, sl.row_groups, sl.first_row, self._batch_rows):
                    pause = guard.pause() if guard is not None else 0.0
                    if pause > 0:  # batch priority: online reads are slow
                        self.throttled_steps += 1
                        self._stop.wait(pause)
                    if lost.is_set() or self._stop.is_set():
                        raise _Abandoned
                    seq0 = sl.seq0 + batch.first_row - sl.first_row
                    cells = batch_cells(layout, batch, seq0, info.ts_us)
                    check_sizes(self.store, cells, f.path)
                    SqlJobQueue.copy_rows(cur, claim.stage, rows_of(cells))
                    cells_n += cells.num_rows
                    done[0] += batch.data.num_rows
                    done[1] = sl.bytes * done[0] // max(sl.rows, 1)
            finally:
                halt.set()
                beat.join()
            if lost.is_set():
                raise _Abandoned
            return done[0], sl.bytes, cells_n

        if not self.queue.complete_task(claim, write):
            raise _Abandoned
