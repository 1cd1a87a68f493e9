"""``ClusterJobs`` and ``BulkWorker`` in one process, one step at a time, over real
PostgreSQL and a real Kafka-protocol broker: the job's states and progress at each step,
duplicates across subtasks and files (the last in source order wins), staged rows lost
by a database crash (loaded again), a table dropped under a job (failed, nothing
visible)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mussel.bulkload.cluster import ClusterJobs
from mussel.bulkload.worker import GIVE_UP_AFTER, BulkWorker
from mussel.engine import Store
from mussel.errors import MusselError


@pytest.fixture
def store(pg_url: str, kafka_bootstrap: str) -> Iterator[Store]:
    topic = f"bw-{os.getpid()}-{time.monotonic_ns()}"
    s = Store.open_distributed(f"kafka://{kafka_bootstrap}/{topic}", pg_url, "dispatcher")
    s.put_namespace("ns")
    s.put_table("ns", "t")
    yield s
    s.close()


def parquet(path: Path, rows: list[tuple[str, str]]) -> str:
    table = pa.table(
        {"pk": [r[0] for r in rows], "sk": [""] * len(rows), "value": [r[1] for r in rows]}
    )
    pq.write_table(table, path, row_group_size=2)
    return str(path)


def scan(store: Store) -> list[tuple[bytes, bytes]]:
    return [(c.pk, c.value) for c in store.scan_all("ns", "t")]


def run(worker: BulkWorker) -> None:
    while worker.step():
        pass


def test_a_load_step_by_step(store: Store, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    parquet(tmp_path / "src" / "a.parquet", [("k1", "a1"), ("k2", "a2"), ("k3", "a3")])
    parquet(tmp_path / "src" / "b.parquet", [("k2", "b2"), ("k4", "b4"), ("k2", "b2-last")])
    jobs = ClusterJobs(store, slice_rows=2)  # a subtask per row group: 4 of them
    worker = BulkWorker(store, settle_s=0.0)
    job = jobs.submit("ns", "t", str(tmp_path / "src"))
    assert (job.state, job.progress.total_rows, job.progress.phase) == ("pending", 6, "pending")
    assert jobs.queue.job(job.id).tasks.total == 4  # type: ignore[union-attr]
    assert worker.start_one()
    job = jobs.get(job.id)
    assert (job.state, job.progress.phase, job.progress.rows) == ("running", "reading", 0)
    assert job.epoch is not None and job.started_us
    assert worker.load_one()
    job = jobs.get(job.id)
    assert job.progress.rows == 2 and 0 < job.progress.fraction < 0.7
    assert not worker.finish_one()  # subtasks left
    while worker.load_one():
        pass
    job = jobs.get(job.id)
    assert (job.progress.phase, job.progress.fraction, job.progress.rows) == ("ingesting", 0.7, 6)
    assert scan(store) == []  # nothing visible before the commit
    assert worker.finish_one()
    job = jobs.get(job.id)
    assert job.state == "committed" and job.progress.phase == "committed"
    p = job.progress
    assert (p.fraction, p.cells, p.duplicates_dropped) == (1.0, 4, 2)
    assert job.progress.rows == 6 and job.progress.bytes == job.progress.total_bytes
    # three versions of k2 at the job's ts: the last in source order (file b, last row)
    assert scan(store) == [(b"k1", b"a1"), (b"k2", b"b2-last"), (b"k3", b"a3"), (b"k4", b"b4")]
    assert [j.id for j in jobs.list("ns")] == [job.id]
    assert worker.queue.drop_stages() == 1


def test_duplicates_are_counted_like_embedded(store: Store, tmp_path: Path) -> None:
    src = parquet(tmp_path / "d.parquet", [("k1", "x"), ("k1", "y"), ("k1", "z")])
    jobs = ClusterJobs(store, slice_rows=2)
    worker = BulkWorker(store, settle_s=0.0)
    job = jobs.submit("ns", "t", src, ts=7)
    run(worker)
    job = jobs.get(job.id)
    assert job.state == "committed"
    assert (job.progress.duplicates_dropped, job.progress.cells) == (2, 1)
    assert [(c.pk, c.ts, c.value) for c in store.scan_all("ns", "t")] == [(b"k1", 7, b"z")]


def test_staged_rows_lost_in_a_database_crash_are_loaded_again(
    store: Store, tmp_path: Path, pg_url: str
) -> None:
    src = parquet(tmp_path / "x.parquet", [(f"k{i}", f"v{i}") for i in range(6)])
    jobs = ClusterJobs(store, slice_rows=2)
    worker = BulkWorker(store, settle_s=0.0)
    job = jobs.submit("ns", "t", src)
    assert worker.start_one()
    while worker.load_one():
        pass
    row = jobs.queue.job(job.id)
    assert row is not None and row.tasks.done == 3
    with psycopg.connect(pg_url, autocommit=True) as conn:  # what a crash does to UNLOGGED
        conn.execute(f"TRUNCATE {row.stage}")
    assert worker.finish_one()  # finds the loss: the subtasks are pending again
    job = jobs.get(job.id)
    assert (job.state, job.progress.rows) == ("running", 0)
    run(worker)
    job = jobs.get(job.id)
    assert job.state == "committed" and job.progress.cells == 6
    assert len(scan(store)) == 6


def test_a_table_dropped_under_a_job_fails_it(store: Store, tmp_path: Path) -> None:
    src = parquet(tmp_path / "x.parquet", [("k1", "v")])
    jobs = ClusterJobs(store)
    worker = BulkWorker(store, settle_s=0.0)
    job = jobs.submit("ns", "t", src)
    assert worker.start_one()
    assert worker.load_one()
    store.drop_table("ns", "t")
    store.put_table("ns", "t")
    assert worker.finish_one()
    job = jobs.get(job.id)
    assert job.state == "failed" and job.error is not None
    assert job.error.code == "table_not_found", job.error
    assert scan(store) == []


def test_a_job_that_cannot_be_committed_is_failed_after_a_few_tries(
    store: Store, tmp_path: Path, pg_url: str
) -> None:
    src = parquet(tmp_path / "x.parquet", [("k1", "v")])
    jobs = ClusterJobs(store)
    worker = BulkWorker(store, settle_s=0.0)
    job = jobs.submit("ns", "t", src)
    assert worker.start_one() and worker.load_one()
    row = jobs.queue.job(job.id)
    assert row is not None
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a fault no retry cures
        conn.execute(f"DROP TABLE {row.stage}")
    for _ in range(GIVE_UP_AFTER - 1):
        with pytest.raises(MusselError):
            worker.finish_one()
        assert jobs.get(job.id).state == "running"
    assert worker.finish_one()  # the last try fails the job
    job = jobs.get(job.id)
    assert job.state == "failed" and job.error is not None, job
    assert job.error.message.startswith("database error"), job.error
    table = store.catalog.get_table("ns", "t")
    assert job.epoch in table.aborted_epochs and not table.pending_epochs


def test_a_stopping_worker_gives_its_subtask_back(store: Store, tmp_path: Path) -> None:
    rows = [(f"k{i:07d}", "v" * 20) for i in range(200_000)]
    table = pa.table(
        {"pk": [r[0] for r in rows], "sk": [""] * len(rows), "value": [r[1] for r in rows]}
    )
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=20_000)
    jobs = ClusterJobs(store)
    worker = BulkWorker(store, settle_s=0.0, lease_s=0.3, batch_rows=2000)
    job = jobs.submit("ns", "t", str(tmp_path / "big.parquet"))
    assert worker.start_one()
    loading = threading.Thread(target=worker.load_one)
    loading.start()
    deadline = time.monotonic() + 30
    while jobs.get(job.id).progress.rows == 0:  # a heartbeat reported progress
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker.stop()
    loading.join(30)
    row = jobs.queue.job(job.id)
    assert row is not None and row.tasks.done == 0
    assert row.tasks.rows > 0  # the progress shown does not go back
    other = BulkWorker(store, settle_s=0.0, lease_s=60)  # no lease to wait for
    claim = other.queue.claim_task()
    assert claim is not None and claim.attempt == 2


def test_a_worker_pauses_between_batches_while_online_reads_are_slow(
    store: Store, tmp_path: Path
) -> None:
    """Batch priority in distributed mode: the worker paces by the dispatchers' read
    p99 (``SharedReadLatency.cluster_p99``; figures made up here). A p99 that was
    already slow when the subtask began is not held against it (``for_run``)."""
    rows = [(f"k{i}", f"v{i}") for i in range(8)]
    src = parquet(tmp_path / "a.parquet", rows)
    jobs = ClusterJobs(store, slice_rows=8)  # one subtask of four 2-row batches
    calls = []

    def rising() -> float:  # fast when the subtask begins, slow from then on
        calls.append(1)
        return 0.001 if len(calls) == 1 else 0.2

    for p99, paused in ((lambda: None, False), (rising, True)):
        worker = BulkWorker(store, settle_s=0.0, batch_rows=2, read_p99_s=p99)
        job = jobs.submit("ns", "t", src, mode="replace")
        started = time.monotonic()
        run(worker)
        elapsed = time.monotonic() - started
        assert jobs.get(job.id).state == "committed"
        assert sorted(scan(store)) == sorted((k.encode(), v.encode()) for k, v in rows)
        if paused:  # 5, 10, 20, 40 ms before the four batches
            assert worker.throttled_steps == 4 and elapsed >= 0.075
        else:
            assert worker.throttled_steps == 0
