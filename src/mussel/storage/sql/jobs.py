"""The bulk-load job queue of distributed mode: job records and their subtasks in SQL.

Tables (created with the rest of the schema by ``SqlBackend``)::

    mussel_jobs(id text PRIMARY KEY, namespace text, table_id int4, created_us int8,
                state text, cancel bool, stage text, stage_dropped bool,
                started_at timestamptz, info bytea)      -- JSON of the job (bulkload)
    mussel_job_tasks(job_id text, n int4, state text, owner text,
                     lease_until timestamptz, attempts int4, rows int8, bytes int8,
                     cells int8, error bytea, slice bytea,   -- JSON of the slice
                     PRIMARY KEY (job_id, n))

What this module decides is *who does what, when*; what a job or a slice means is the
caller's (``bulkload/cluster.py``), carried as opaque JSON.

* **Jobs** start ``pending``. ``start_next`` locks the oldest pending job whose table
  has no older job still pending or running (``FOR UPDATE SKIP LOCKED``: two workers
  never start one job) and lets the caller turn it ``running`` in the same
  transaction. ``finish_next`` locks a running job that is ready to end (cancel asked,
  a subtask failed, or every subtask done and at least ``settle_s`` since it started:
  see ``bulkload/worker.py``) for the caller's final transaction. A
  worker killed inside either transaction holds nothing afterwards: the database
  rolls the transaction back and releases the row lock, and another worker takes the
  job again.
* **Subtasks** of running jobs are claimed with ``claim_task``: the first pending one,
  or a running one whose lease has expired (its worker stopped heartbeating), locked
  with ``FOR UPDATE SKIP LOCKED`` and marked ``running`` with a fresh owner token and
  ``lease_until = now() + lease`` (the database's clock, so workers' clocks do not
  matter). ``heartbeat`` extends the lease while the owner works; ``complete_task``
  writes the subtask's output and marks it ``done`` in ONE transaction that first
  checks the owner token (a worker whose subtask was taken over writes nothing), so a
  subtask's rows are staged exactly once, and a ``done`` subtask is never claimed again.
* **Cancel** (``request_cancel``) turns a pending job final at once, and flags a
  running one; its workers see the flag at their next heartbeat and the finisher ends
  the job.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from mussel.storage.sql.errors import map_sql_errors

if TYPE_CHECKING:
    from mussel.storage.sql.backend import SqlBackend

__all__ = ["JOB_TABLES_DDL", "JobRow", "SqlJobQueue", "TaskClaim", "TaskCounts"]

JOBS = "mussel_jobs"
TASKS = "mussel_job_tasks"

JOB_TABLES_DDL = [
    f"CREATE TABLE IF NOT EXISTS {JOBS} ("
    " id text PRIMARY KEY, namespace text NOT NULL, table_id integer NOT NULL,"
    " created_us bigint NOT NULL, state text NOT NULL,"
    " cancel boolean NOT NULL DEFAULT false,"
    " stage text NOT NULL, stage_dropped boolean NOT NULL DEFAULT false,"
    " started_at timestamptz, info bytea NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS mussel_jobs_by_state ON {JOBS} (state, created_us, id)",
    f"CREATE TABLE IF NOT EXISTS {TASKS} ("
    " job_id text NOT NULL, n integer NOT NULL,"
    " state text NOT NULL DEFAULT 'pending', owner text,"
    " lease_until timestamptz, attempts integer NOT NULL DEFAULT 0,"
    " rows bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL DEFAULT 0,"
    " cells bigint NOT NULL DEFAULT 0, error bytea, slice bytea NOT NULL,"
    " PRIMARY KEY (job_id, n))",
]

_ACTIVE = "('pending', 'running')"


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """A job's subtasks summed: how many in each state, and their progress."""

    total: int = 0
    done: int = 0
    failed: int = 0
    rows: int = 0
    nbytes: int = 0
    cells: int = 0
    first_error: bytes | None = None


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    namespace: str
    table_id: int
    created_us: int
    state: str
    cancel: bool
    stage: str
    info: bytes
    tasks: TaskCounts


@dataclass(frozen=True, slots=True)
class TaskClaim:
    """A subtask this worker holds (until its lease expires)."""

    job_id: str
    n: int
    owner: str
    attempt: int
    slice: bytes
    stage: str
    job_info: bytes


def stage_name(job_id: str) -> str:
    """The staging table of a job (job ids may hold characters SQL names may not)."""
    return "mussel_bulk_" + hashlib.sha1(job_id.encode(), usedforsecurity=False).hexdigest()[:24]


class SqlJobQueue:
    """The job and subtask tables of one database (see the module docstring).

    ``lease_s``: how long a claimed subtask stays its worker's without a heartbeat.
    """

    def __init__(self, backend: SqlBackend, lease_s: float = 30.0) -> None:
        self.backend = backend
        self.lease_s = lease_s

    # -- dispatcher side --------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        namespace: str,
        table_id: int,
        created_us: int,
        info: bytes,
        slices: Sequence[bytes],
    ) -> bool:
        """Insert a pending job and its subtasks in one transaction. False (nothing
        written) when a job with this id exists."""

        def body(cur: psycopg.Cursor[Any]) -> bool:
            cur.execute(
                f"INSERT INTO {JOBS} (id, namespace, table_id, created_us, state, stage, info)"
                " VALUES (%s, %s, %s, %s, 'pending', %s, %s) ON CONFLICT (id) DO NOTHING",
                (job_id, namespace, table_id, created_us, stage_name(job_id), info),
            )
            if cur.rowcount != 1:
                return False
            if slices:
                cur.execute(
                    f"INSERT INTO {TASKS} (job_id, n, slice)"
                    " SELECT %s, n - 1, s FROM unnest(%b::bytea[]) WITH ORDINALITY AS t(s, n)",
                    (job_id, list(slices)),
                )
            return True

        return bool(self.backend.write_tx("create a bulk-load job", body))

    def job(self, job_id: str) -> JobRow | None:
        rows = self._jobs("j.id = %s", (job_id,))
        return rows[0] if rows else None

    def jobs(self, namespace: str | None = None) -> list[JobRow]:
        """Every job (of ``namespace``), oldest first."""
        if namespace is None:
            return self._jobs("true", ())
        return self._jobs("j.namespace = %s", (namespace,))

    def _jobs(self, where: str, params: tuple[object, ...]) -> list[JobRow]:
        sql = (
            "SELECT j.id, j.namespace, j.table_id, j.created_us, j.state, j.cancel, j.stage,"
            " j.info, count(t.n), count(t.n) FILTER (WHERE t.state = 'done'),"
            " count(t.n) FILTER (WHERE t.state = 'failed'),"
            " coalesce(sum(t.rows), 0), coalesce(sum(t.bytes), 0), coalesce(sum(t.cells), 0),"
            " (array_agg(t.error ORDER BY t.n) FILTER (WHERE t.state = 'failed'))[1]"
            f" FROM {JOBS} j LEFT JOIN {TASKS} t ON t.job_id = j.id"
            f" WHERE {where} GROUP BY j.id ORDER BY j.created_us, j.id"
        )
        with map_sql_errors("read bulk-load jobs"), self.backend.connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_job_row(r) for r in rows]

    def request_cancel(self, job_id: str, cancelled: Callable[[JobRow], bytes]) -> bool:
        """Cancel a job: a pending one becomes final at once (``cancelled(row)`` gives
        its new info), a running one is flagged for its workers. False when no such job."""

        def body(cur: psycopg.Cursor[Any]) -> bool:
            row = _locked_job(cur, "j.id = %s", (job_id,), skip_locked=False)
            if row is None:
                return False
            if row.state == "pending":
                self.set_job(cur, job_id, "cancelled", cancelled(row))
            elif row.state == "running":
                cur.execute(f"UPDATE {JOBS} SET cancel = true WHERE id = %s", (job_id,))
            return True

        return bool(self.backend.write_tx("cancel a bulk-load job", body))

    # -- worker side: jobs --------------------------------------------------------

    def start_next(self, start: Callable[[psycopg.Cursor[Any], JobRow], None]) -> bool:
        """Lock the next job that may start (see the module docstring) and run
        ``start(cursor, job)`` in that transaction. False when none may start."""

        def body(cur: psycopg.Cursor[Any]) -> bool:
            row = _locked_job(
                cur,
                "j.state = 'pending' AND NOT EXISTS (SELECT 1 FROM mussel_jobs o WHERE"
                f" o.table_id = j.table_id AND o.state IN {_ACTIVE} AND"
                " (o.created_us, o.id) < (j.created_us, j.id))",
                (),
                skip_locked=True,
            )
            if row is None:
                return False
            start(cur, row)
            return True

        return bool(self.backend.write_tx("start a bulk-load job", body))

    def finish_next(
        self,
        finish: Callable[[psycopg.Cursor[Any], JobRow], None],
        settle_s: float = 0.0,
        *,
        job_id: str | None = None,
    ) -> bool:
        """Lock a running job that is ready to end (cancel asked, a subtask failed, or
        every subtask done and the job started at least ``settle_s`` ago by the
        database's clock), the job ``job_id`` if given, and run ``finish(cursor, job)``
        in that transaction, which makes the job final (or sends its subtasks back:
        ``rerun_tasks``). False when none is ready."""
        only, params = (
            ("", (settle_s,)) if job_id is None else (" AND j.id = %s", (settle_s, job_id))
        )

        def body(cur: psycopg.Cursor[Any]) -> bool:
            row = _locked_job(
                cur,
                "j.state = 'running' AND (j.cancel OR EXISTS (SELECT 1 FROM mussel_job_tasks"
                " f WHERE f.job_id = j.id AND f.state = 'failed') OR (NOT EXISTS (SELECT 1"
                f" FROM mussel_job_tasks a WHERE a.job_id = j.id AND a.state IN {_ACTIVE})"
                f" AND j.started_at <= clock_timestamp() - make_interval(secs => %s))){only}",
                params,
                skip_locked=True,
            )
            if row is None:
                return False
            # finishing may publish staged rows: the table's partitions first (made
            # on another connection; this transaction's locks do not conflict)
            self.backend.partitions.ensure((row.table_id,))
            finish(cur, row)
            return True

        return bool(self.backend.write_tx("finish a bulk-load job", body))

    @staticmethod
    def rerun_tasks(cur: psycopg.Cursor[Any], job_id: str, stage: str) -> None:
        """Inside a ``finish`` transaction: empty the job's staging table and make every
        subtask pending again (the staged rows were lost: an UNLOGGED table is
        emptied when the database restarts after a crash)."""
        cur.execute(f"DELETE FROM {stage}")
        cur.execute(
            f"UPDATE {TASKS} SET state = 'pending', owner = NULL, lease_until = NULL,"
            " rows = 0, bytes = 0, cells = 0 WHERE job_id = %s",
            (job_id,),
        )

    @staticmethod
    def set_job(cur: psycopg.Cursor[Any], job_id: str, state: str, info: bytes) -> None:
        """Inside a ``start``/``finish``/cancel transaction: the job's new state (the
        database's clock notes when it became ``running``)."""
        cur.execute(
            f"UPDATE {JOBS} SET state = %s, info = %s, started_at = CASE WHEN %s = 'running'"
            " THEN clock_timestamp() ELSE started_at END WHERE id = %s",
            (state, info, state, job_id),
        )

    def drop_stages(self) -> int:
        """Drop the staging tables of final jobs (each once). Returns how many."""
        with map_sql_errors("drop staging tables"), self.backend.connection() as conn:
            rows = conn.execute(
                f"SELECT id, stage FROM {JOBS} WHERE NOT stage_dropped AND state NOT IN {_ACTIVE}"
            ).fetchall()
            for job_id, stage in rows:
                with conn.transaction():
                    conn.execute("SET LOCAL lock_timeout = '2s'")
                    conn.execute(f"DROP TABLE IF EXISTS {stage}")
                    conn.execute(f"UPDATE {JOBS} SET stage_dropped = true WHERE id = %s", (job_id,))
        return len(rows)

    # -- worker side: subtasks -------------------------------------------------------

    def claim_task(self) -> TaskClaim | None:
        """Claim the first pending subtask of a running job, or one whose lease has
        expired; None when there is none. Never one that is done or failed."""
        owner = secrets.token_hex(8)

        def body(cur: psycopg.Cursor[Any]) -> TaskClaim | None:
            cur.execute(
                f"SELECT t.job_id, t.n FROM {TASKS} t JOIN {JOBS} j ON j.id = t.job_id"
                " WHERE j.state = 'running' AND NOT j.cancel AND (t.state = 'pending' OR"
                " (t.state = 'running' AND t.lease_until < clock_timestamp()))"
                " ORDER BY j.created_us, j.id, t.n LIMIT 1 FOR UPDATE OF t SKIP LOCKED"
            )
            found = cur.fetchone()
            if found is None:
                return None
            cur.execute(
                f"UPDATE {TASKS} t SET state = 'running', owner = %s, attempts = attempts + 1,"
                " lease_until = clock_timestamp() + make_interval(secs => %s), cells = 0"
                f" FROM {JOBS} j WHERE j.id = t.job_id AND t.job_id = %s AND t.n = %s"
                " RETURNING t.attempts, t.slice, j.stage, j.info",
                (owner, self.lease_s, found[0], found[1]),
            )
            r = cur.fetchone()
            assert r is not None
            job_id, n = found[0], int(found[1])
            return TaskClaim(job_id, n, owner, int(r[0]), bytes(r[1]), r[2], bytes(r[3]))

        claim: TaskClaim | None = self.backend.write_tx("claim a bulk-load subtask", body)
        return claim

    def heartbeat(self, claim: TaskClaim, rows: int, nbytes: int) -> bool:
        """Extend the lease and record progress (never less than an earlier attempt
        reported, so a job's progress does not go back when a subtask is claimed again;
        ``complete_task`` sets the exact figures). False when the subtask is no longer
        this claim's (taken over after the lease expired) or its job no longer wants it
        (cancel asked, or the job ended): the worker should stop."""
        with map_sql_errors("bulk-load heartbeat"), self.backend.connection() as conn:
            row = conn.execute(
                f"UPDATE {TASKS} t SET lease_until = clock_timestamp() +"
                " make_interval(secs => %s), rows = greatest(t.rows, %s),"
                " bytes = greatest(t.bytes, %s)"
                f" FROM {JOBS} j WHERE j.id = t.job_id AND t.job_id = %s AND t.n = %s"
                " AND t.owner = %s AND t.state = 'running' RETURNING j.state, j.cancel",
                (self.lease_s, rows, nbytes, claim.job_id, claim.n, claim.owner),
            ).fetchone()
        return row is not None and row[0] == "running" and not row[1]

    def complete_task(
        self,
        claim: TaskClaim,
        write: Callable[[psycopg.Cursor[Any]], tuple[int, int, int]],
    ) -> bool:
        """In ONE transaction: ``write(cursor)`` (the subtask's output; returns rows,
        bytes, cells), then mark the subtask ``done`` if it is still this claim's.
        False, and nothing written, when it is not."""
        with (
            map_sql_errors("complete a bulk-load subtask"),
            self.backend.connection() as conn,
            conn.transaction() as tx,
            conn.cursor() as cur,
        ):
            rows, nbytes, cells = write(cur)
            cur.execute(
                f"UPDATE {TASKS} SET state = 'done', rows = %s, bytes = %s, cells = %s"
                " WHERE job_id = %s AND n = %s AND owner = %s AND state = 'running'",
                (rows, nbytes, cells, claim.job_id, claim.n, claim.owner),
            )
            if cur.rowcount == 1:
                return True
            raise psycopg.Rollback(tx)
        return False

    def release_task(self, claim: TaskClaim) -> bool:
        """Give a claimed subtask back (pending again, for any worker at once: a worker
        that stops). False when it is no longer this claim's."""
        with map_sql_errors("release a bulk-load subtask"), self.backend.connection() as conn:
            cur = conn.execute(
                f"UPDATE {TASKS} SET state = 'pending', owner = NULL, lease_until = NULL"
                " WHERE job_id = %s AND n = %s AND owner = %s AND state = 'running'",
                (claim.job_id, claim.n, claim.owner),
            )
            return cur.rowcount == 1

    def fail_task(self, claim: TaskClaim, error: bytes) -> bool:
        """Mark the subtask failed (its job then fails). False when not this claim's."""
        with map_sql_errors("fail a bulk-load subtask"), self.backend.connection() as conn:
            cur = conn.execute(
                f"UPDATE {TASKS} SET state = 'failed', error = %s"
                " WHERE job_id = %s AND n = %s AND owner = %s AND state = 'running'",
                (error, claim.job_id, claim.n, claim.owner),
            )
            return cur.rowcount == 1

    def create_stage(self, cur: psycopg.Cursor[Any], stage: str) -> None:
        """Inside a ``start`` transaction: the job's staging table (UNLOGGED on
        PostgreSQL: a subtask's rows are written again if the database crashes)."""
        unlogged = "UNLOGGED " if self.backend.dialect.name == "postgresql" else ""
        cur.execute(
            f"CREATE {unlogged}TABLE IF NOT EXISTS {stage} (pk bytea NOT NULL,"
            " sk bytea NOT NULL, its bigint NOT NULL, value bytea NOT NULL,"
            " seq bigint NOT NULL)"
        )

    @staticmethod
    def copy_rows(
        cur: psycopg.Cursor[Any], stage: str, rows: Iterable[tuple[bytes, bytes, int, bytes, int]]
    ) -> None:
        """Binary COPY of (pk, sk, its, value, seq) rows into a staging table."""
        with cur.copy(f"COPY {stage} (pk, sk, its, value, seq) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["bytea", "bytea", "int8", "bytea", "int8"])
            for row in rows:
                cp.write_row(row)


def _job_row(r: Sequence[Any]) -> JobRow:
    counts = TaskCounts(
        int(r[8]),
        int(r[9]),
        int(r[10]),
        int(r[11]),
        int(r[12]),
        int(r[13]),
        None if r[14] is None else bytes(r[14]),
    )
    return JobRow(r[0], r[1], int(r[2]), int(r[3]), r[4], bool(r[5]), r[6], bytes(r[7]), counts)


def _locked_job(
    cur: psycopg.Cursor[Any], where: str, params: tuple[object, ...], *, skip_locked: bool
) -> JobRow | None:
    """The first job matching ``where`` (oldest first), its row locked FOR UPDATE."""
    skip = " SKIP LOCKED" if skip_locked else ""
    cur.execute(
        f"SELECT j.id FROM {JOBS} j WHERE {where} ORDER BY j.created_us, j.id"
        f" LIMIT 1 FOR UPDATE{skip}",
        params,
    )
    found = cur.fetchone()
    if found is None:
        return None
    cur.execute(
        "SELECT j.id, j.namespace, j.table_id, j.created_us, j.state, j.cancel, j.stage,"
        " j.info, count(t.n), count(t.n) FILTER (WHERE t.state = 'done'),"
        " count(t.n) FILTER (WHERE t.state = 'failed'),"
        " coalesce(sum(t.rows), 0), coalesce(sum(t.bytes), 0), coalesce(sum(t.cells), 0),"
        " (array_agg(t.error ORDER BY t.n) FILTER (WHERE t.state = 'failed'))[1]"
        f" FROM {JOBS} j LEFT JOIN {TASKS} t ON t.job_id = j.id WHERE j.id = %s GROUP BY j.id",
        (found[0],),
    )
    r = cur.fetchone()
    assert r is not None
    return _job_row(r)
