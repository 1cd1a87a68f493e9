"""Job lifecycle: states, progress, cancel, idempotent submission, recovery."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from mussel.bulkload import JobInfo, JobManager
from mussel.bulkload.jobs import JobSpec
from mussel.clock import ManualClock
from mussel.codec.keys import cell_key, meta_key
from mussel.engine import Store
from mussel.errors import ConflictError, InvalidRequestError, JobNotFoundError
from mussel.model import Put
from tests.unit.bulkload.conftest import T0, content, load, write_cells
from tests.unit.engine.conftest import CONFIG


def big_source(tmp_path: Path, n: int = 100_000) -> Path:
    return write_cells(
        tmp_path / "big.parquet", [(f"k{i:07d}", "", "v") for i in range(n)], row_group_size=1000
    )


def test_states_and_progress_of_a_committed_job(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    src = write_cells(tmp_path / "in.parquet", [(f"k{i}", "", "v") for i in range(3000)])
    job = jobs.submit("ns", "t", str(src), job_id="daily-2024-01-01")
    assert job.id == "daily-2024-01-01" and job.state in ("pending", "running", "committed")
    job = jobs.wait(job.id, 60)
    assert job.state == "committed"
    p = job.progress
    assert (p.rows, p.cells, p.total_rows, p.fraction) == (3000, 3000, 3000, 1.0)
    assert p.bytes == p.total_bytes == src.stat().st_size
    assert job.ts_us == T0 and job.epoch is not None and job.finished_us is not None
    assert [j.id for j in jobs.list()] == [job.id]
    assert jobs.list("other") == []
    body = job.to_json()
    assert body["state"] == "committed" and body["progress"]["rows"] == 3000


def test_submitting_the_same_job_id_again_is_idempotent(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    src = write_cells(tmp_path / "in.parquet", [("a", "", "v")])
    first = load(jobs, src, job_id="j1")
    again = jobs.submit("ns", "t", str(src), job_id="j1")
    assert again.state == "committed" and again.created_us == first.created_us
    assert len(jobs.list()) == 1
    with pytest.raises(ConflictError, match="another request"):
        jobs.submit("ns", "t", str(src), job_id="j1", mode="replace")
    with pytest.raises(InvalidRequestError, match="job id"):
        jobs.submit("ns", "t", str(src), job_id="no spaces")


def test_unknown_job(jobs: JobManager) -> None:
    with pytest.raises(JobNotFoundError):
        jobs.get("nope")
    with pytest.raises(JobNotFoundError):
        jobs.cancel("nope")


def test_cancel_a_running_job_leaves_the_table_as_it_was(store: Store, tmp_path: Path) -> None:
    store.table("ns", "t").put("a", "", "before", ts=1, ack="applied")
    src = big_source(tmp_path)
    with JobManager(store, tmp_path / "bulk", batch_rows=500, sst_cells=1000) as m:
        job = m.submit("ns", "t", str(src), mode="replace")
        m.cancel(job.id)
        job = m.wait(job.id, 60)
    assert job.state == "cancelled"
    assert content(store) == [(b"a", b"", 1, b"before")]
    assert store.table_info("ns", "t").aborted_epochs in ((), (job.epoch,))


def test_cancel_a_pending_job_queued_behind_another(store: Store, tmp_path: Path) -> None:
    src = big_source(tmp_path, 20_000)
    small = write_cells(tmp_path / "small.parquet", [("z", "", "v")])
    with JobManager(store, tmp_path / "bulk", batch_rows=500) as m:
        first = m.submit("ns", "t", str(src))
        second = m.submit("ns", "t", str(small))
        m.cancel(second.id)
        assert m.wait(second.id, 60).state == "cancelled"
        assert m.wait(first.id, 60).state == "committed"
    assert store.get("ns", "t", "z") == []
    assert len(content(store)) == 20_000


def test_jobs_of_one_table_run_one_at_a_time_so_replaces_commit(
    store: Store, tmp_path: Path
) -> None:
    srcs = [write_cells(tmp_path / f"{i}.parquet", [(f"k{i}", "", "v")]) for i in range(4)]
    with JobManager(store, tmp_path / "bulk") as m:
        ids = [
            m.submit("ns", "t", str(s), mode="replace", ts=100 + i).id for i, s in enumerate(srcs)
        ]
        states = [m.wait(i, 60).state for i in ids]
    assert states == ["committed"] * 4
    assert [pk for pk, *_ in content(store)] == [b"k3"]


def test_a_running_job_is_failed_at_restart_and_its_epoch_stays_hidden(
    tmp_path: Path,
) -> None:
    """What a crash mid-load leaves behind: a job record 'running', a pending epoch,
    ingested cells. The next start marks the job failed; the cells stay invisible."""
    clock = ManualClock(T0)
    store = Store.open(tmp_path / "s", CONFIG, clock=clock)
    store.put_namespace("ns")
    store.put_table("ns", "t")
    store.table("ns", "t").write([Put("a", "", "before", ts=1)], ack="applied")
    table, epoch = store.catalog.reserve_epoch("ns", "t")
    ing = store.backend.bulk_ingest(table.id, epoch, tmp_path / "w", store.catalog.apply_lock)
    ing.add([cell_key(b"a", b"", T0), cell_key(b"b", b"", T0)], [b"bulk", b"bulk"])
    info = JobInfo(
        id="crashed",
        spec=JobSpec("ns", "t", "file:///x"),
        state="running",
        table_id=table.id,
        epoch=epoch,
        ts_us=T0,
    )
    store.backend.meta_write({meta_key("job", "crashed"): msgspec.json.encode(info)})
    store.close()  # (a kill -9 is tested in tests/faults)

    store = Store.open(tmp_path / "s", CONFIG, clock=clock)
    assert store.table_info("ns", "t").pending_epochs == (epoch,)
    assert content(store) == [(b"a", b"", 1, b"before")]
    with JobManager(store, tmp_path / "bulk") as m:
        job = m.get("crashed")
        assert job.state == "failed" and job.error is not None
        assert "stopped while the job was running" in job.error.message
        t = store.table_info("ns", "t")
        assert (t.pending_epochs, t.aborted_epochs) == ((), (epoch,))
        assert content(store) == [(b"a", b"", 1, b"before")]
        # a new job gets a new epoch and works
        src = write_cells(tmp_path / "in.parquet", [("b", "", "new")])
        job = m.wait(m.submit("ns", "t", str(src)).id, 60)
        assert job.state == "committed" and job.epoch == epoch + 1
    assert content(store) == [(b"a", b"", 1, b"before"), (b"b", b"", T0, b"new")]
    store.close()


def test_dropping_the_table_during_a_job_fails_it(store: Store, tmp_path: Path) -> None:
    src = big_source(tmp_path, 50_000)
    with JobManager(store, tmp_path / "bulk", batch_rows=500) as m:
        job = m.submit("ns", "t", str(src))
        store.drop_table("ns", "t")
        job = m.wait(job.id, 60)
    assert job.state == "failed" and job.error is not None
    assert job.error.code == "table_not_found"


def test_the_scratch_directory_is_never_someone_elses(store: Store, tmp_path: Path) -> None:
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(InvalidRequestError, match="not a bulk-load scratch directory"):
        JobManager(store, precious)
    assert (precious / "keep.txt").read_text() == "mine"
    scratch = tmp_path / "scratch"
    JobManager(store, scratch).close()
    (scratch / "bl-stale").mkdir()  # what a crash leaves behind
    JobManager(store, scratch).close()
    assert [p.name for p in scratch.iterdir()] == [".mussel-bulk-workdir"]
