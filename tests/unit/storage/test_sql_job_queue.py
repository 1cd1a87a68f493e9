"""The distributed bulk-load job queue (``storage/sql/jobs.py``) on a real PostgreSQL:
claims with SKIP LOCKED never hand one subtask to two workers, an expired lease is
claimed again (and the old owner is fenced off), a done subtask is never run again,
jobs of one table start one at a time, cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mussel.storage.sql import JobRow, SqlBackend, SqlJobQueue, TaskClaim


@pytest.fixture
def backend(pg_url: str) -> Iterator[SqlBackend]:
    b = SqlBackend(pg_url, pool_size=6)
    yield b
    b.close()


def make_job(q: SqlJobQueue, job_id: str, tasks: int, table_id: int = 1, created: int = 0) -> None:
    slices = [f"slice-{i}".encode() for i in range(tasks)]
    assert q.create_job(job_id, "ns", table_id, created, b"{}", slices)


def start(q: SqlJobQueue) -> str | None:
    """Start the next startable job (as a worker does); its id."""
    started: list[str] = []

    def body(cur: Any, row: JobRow) -> None:
        q.create_stage(cur, row.stage)
        q.set_job(cur, row.id, "running", b"{}")
        started.append(row.id)

    q.start_next(body)
    return started[0] if started else None


def stage_rows(q: SqlJobQueue, job_id: str) -> list[int]:
    row = q.job(job_id)
    assert row is not None
    with q.backend.connection() as conn:
        return sorted(int(r[0]) for r in conn.execute(f"SELECT seq FROM {row.stage}").fetchall())


def complete(q: SqlJobQueue, claim: TaskClaim, seq: int) -> bool:
    def write(cur: Any) -> tuple[int, int, int]:
        SqlJobQueue.copy_rows(cur, claim.stage, [(b"pk", b"sk", -1, b"v", seq)])
        return 1, 10, 1

    return q.complete_task(claim, write)


def test_a_job_and_its_subtasks_are_created_once(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "j1", 3)
    assert not q.create_job("j1", "ns", 1, 0, b"{}", [b"x"])  # the id exists: nothing written
    row = q.job("j1")
    assert row is not None
    assert (row.state, row.tasks.total, row.tasks.done) == ("pending", 3, 0)
    assert q.job("nope") is None
    assert [r.id for r in q.jobs("ns")] == ["j1"] and q.jobs("other") == []


def test_pending_jobs_have_nothing_to_claim(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "j1", 2)
    assert q.claim_task() is None
    assert start(q) == "j1"
    assert q.claim_task() is not None


def test_two_claimers_never_get_the_same_subtask(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "j1", 40)
    assert start(q) == "j1"
    got: list[list[tuple[str, int]]] = [[], [], []]
    go = threading.Barrier(3)

    def claimer(i: int) -> None:
        mine = SqlJobQueue(backend)
        go.wait()
        while (claim := mine.claim_task()) is not None:
            got[i].append((claim.job_id, claim.n))

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [c for g in got for c in g]
    assert sorted(everything) == [("j1", n) for n in range(40)]  # each once, none lost


def test_an_expired_lease_is_claimed_again_and_the_old_owner_is_fenced(
    backend: SqlBackend,
) -> None:
    q = SqlJobQueue(backend, lease_s=0.3)
    make_job(q, "j1", 1)
    start(q)
    first = q.claim_task()
    assert first is not None and first.attempt == 1
    assert q.claim_task() is None  # leased
    assert q.heartbeat(first, 5, 50)  # still ours: the lease is extended
    time.sleep(0.15)
    assert q.claim_task() is None  # the heartbeat moved the lease on
    time.sleep(0.4)  # no heartbeat: the worker is taken for dead
    second = q.claim_task()
    assert second is not None and (second.job_id, second.n) == ("j1", 0)
    assert second.attempt == 2 and second.owner != first.owner
    # the first owner wakes up: it may neither extend nor complete the subtask
    assert not q.heartbeat(first, 9, 90)
    assert not complete(q, first, seq=1)
    assert stage_rows(q, "j1") == []  # ... and what it wrote was rolled back
    assert complete(q, second, seq=2)
    assert stage_rows(q, "j1") == [2]


def test_a_done_subtask_is_never_run_again(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend, lease_s=0.2)
    make_job(q, "j1", 2)
    start(q)
    a = q.claim_task()
    b = q.claim_task()
    assert a is not None and b is not None and {a.n, b.n} == {0, 1}
    assert complete(q, a, seq=10)
    assert complete(q, b, seq=11)
    time.sleep(0.3)  # leases long expired
    assert q.claim_task() is None
    assert not complete(q, a, seq=12)  # completing twice writes nothing
    assert stage_rows(q, "j1") == [10, 11]
    row = q.job("j1")
    assert row is not None
    assert (row.tasks.done, row.tasks.rows, row.tasks.nbytes) == (2, 2, 20)


def test_a_failed_subtask_is_not_claimed_and_makes_the_job_finishable(
    backend: SqlBackend,
) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "j1", 3)
    start(q)
    claim = q.claim_task()
    assert claim is not None
    finished: list[JobRow] = []

    def finish(cur: Any, row: JobRow) -> None:
        finished.append(row)
        q.set_job(cur, row.id, "failed", b"{}")

    assert not q.finish_next(finish)  # subtasks pending: not ready
    assert q.fail_task(claim, b'{"code":"too_large","message":"x"}')
    assert not q.fail_task(claim, b"{}")  # once
    assert q.finish_next(finish)
    assert finished[0].tasks.failed == 1
    assert finished[0].tasks.first_error == b'{"code":"too_large","message":"x"}'
    assert q.claim_task() is None  # the job is final: its other subtasks are not run
    assert not q.heartbeat(claim, 1, 1)


def test_a_job_is_finishable_once_every_subtask_is_done(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "j1", 2)
    start(q)
    seen: list[str] = []

    def finish(cur: Any, row: JobRow) -> None:
        seen.append(row.id)
        q.set_job(cur, row.id, "committed", b"{}")

    claims = [q.claim_task(), q.claim_task()]
    assert complete(q, claims[0], seq=1)  # type: ignore[arg-type]
    assert not q.finish_next(finish)
    assert complete(q, claims[1], seq=2)  # type: ignore[arg-type]
    assert not q.finish_next(finish, settle_s=60)  # started less than a minute ago
    time.sleep(0.05)
    assert q.finish_next(finish, settle_s=0.01) and seen == ["j1"]
    assert not q.finish_next(finish)  # final now
    assert q.drop_stages() == 1
    assert q.drop_stages() == 0


def test_jobs_of_one_table_start_one_at_a_time_in_order(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "a1", 1, table_id=1, created=1)
    make_job(q, "a2", 1, table_id=1, created=2)
    make_job(q, "b1", 1, table_id=2, created=3)
    assert start(q) == "a1"
    assert start(q) == "b1"  # another table: in parallel
    assert start(q) is None  # a2 waits for a1

    def cancelled(row: JobRow) -> bytes:
        return b"{}"

    assert q.request_cancel("a1", cancelled)  # running: flagged, not final
    row = q.job("a1")
    assert row is not None and row.state == "running" and row.cancel
    assert start(q) is None

    def finish(cur: Any, row: JobRow) -> None:
        q.set_job(cur, row.id, "cancelled", b"{}")

    assert q.finish_next(finish)  # a cancelled job is ready to end at once
    assert start(q) == "a2"


def test_cancel_of_a_pending_job_is_final_at_once(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "j1", 2)
    assert q.request_cancel("j1", lambda row: b'{"c":1}')
    row = q.job("j1")
    assert row is not None and row.state == "cancelled" and row.info == b'{"c":1}'
    assert start(q) is None and q.claim_task() is None
    assert not q.request_cancel("nope", lambda row: b"")


def test_rerun_tasks_empties_the_stage_and_makes_every_subtask_claimable_again(
    backend: SqlBackend,
) -> None:
    q = SqlJobQueue(backend)
    make_job(q, "j1", 2)
    start(q)
    for seq in (1, 2):
        claim = q.claim_task()
        assert claim is not None and complete(q, claim, seq=seq)
    assert q.claim_task() is None

    def rerun(cur: Any, row: JobRow) -> None:
        q.rerun_tasks(cur, row.id, row.stage)

    assert q.finish_next(rerun)
    row = q.job("j1")
    assert row is not None and row.state == "running"
    assert (row.tasks.done, row.tasks.rows, row.tasks.cells) == (0, 0, 0)
    assert stage_rows(q, "j1") == []
    again = [q.claim_task(), q.claim_task()]
    assert sorted(c.n for c in again if c is not None) == [0, 1]
    assert all(c is not None and c.attempt == 2 for c in again)


def test_a_released_subtask_is_claimable_at_once(backend: SqlBackend) -> None:
    q = SqlJobQueue(backend, lease_s=60)
    make_job(q, "j1", 1)
    start(q)
    first = q.claim_task()
    assert first is not None and q.claim_task() is None
    assert q.release_task(first)
    assert not q.release_task(first)  # once
    second = q.claim_task()
    assert second is not None and second.n == first.n and second.attempt == 2
    assert not complete(q, first, seq=1)  # the first claim holds nothing any more
    assert complete(q, second, seq=2)
