"""Bulk loads in distributed mode, end to end: two dispatchers on their own ports, two
replayers and a worker over real PostgreSQL and a real Kafka-protocol broker.

A job submitted to dispatcher A is listed, followed (pending/running, then committed)
and cancelled through dispatcher B; the loaded data is readable through both, for
merge, replace and insert_ignore, once each has answered ``committed`` (a dispatcher
refreshes its catalog before it says so; otherwise it sees the commit within its
0.25 s catalog poll); a failing job reports the file and row, and leaves the table as
it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mussel import Client
from mussel.cli.devcluster import DevCluster, Role
from mussel.client._models import JobDescription
from tests.fixtures.cluster import create_database

pytestmark = pytest.mark.slow


def _own_group() -> tuple[str, ...]:
    """A consumer group of the cluster's own (the broker is shared by the session's
    tests; a group left by an earlier cluster can keep a new one rebalancing)."""
    return ("--group", f"bulk-{os.getpid()}-{time.monotonic_ns()}")


def parquet(path: Path, rows: list[tuple[str, str, str]], **kw: Any) -> str:
    pq.write_table(
        pa.table(
            {
                "pk": [r[0] for r in rows],
                "sk": [r[1] for r in rows],
                "value": [r[2] for r in rows],
            }
        ),
        path,
        **kw,
    )
    return str(path)


def scan_all(client: Client, ns: str, table: str) -> list[tuple[bytes, bytes, bytes]]:
    return [(c.pk, c.sk, c.value) for c in client.iter_scan(ns, table, consistency="strong")]


def follow(client: Client, job_id: str, timeout_s: float = 120.0) -> list[JobDescription]:
    """Every description of the job ``client`` sees until it is final."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.job(job_id)
        seen.append(job)
        if job.done:
            return seen
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


@pytest.fixture
def two_dispatchers(tmp_path: Path, postgres_server: Any, kafka_bootstrap: str) -> Any:
    cluster = DevCluster(
        tmp_path / "cluster",
        backend_url=create_database(postgres_server),
        bootstrap=kafka_bootstrap,
        topic=f"bulk-{os.getpid()}-{time.monotonic_ns()}",
        extra=_own_group(),
        separate_ports=True,
    )
    with cluster:
        a_url, b_url = cluster.dispatcher_urls
        with Client(a_url, timeout=60) as a, Client(b_url, timeout=60) as b:
            yield a, b


def test_merge_and_replace_submitted_to_a_are_followed_and_read_through_b(
    two_dispatchers: tuple[Client, Client], tmp_path: Path
) -> None:
    a, b = two_dispatchers
    a.put_namespace("shop")
    a.put_table("shop", "items")
    a.put("shop", "items", "old", "", b"streamed", ts=1)

    # merge: 300,000 rows in 60 row groups (2 subtasks), one duplicate (the last wins)
    n = 300_000
    rows = [(f"k{i:07d}", "", f"v{i}") for i in range(n)] + [("k0000001", "", "dup")]
    src = parquet(tmp_path / "big.parquet", rows, row_group_size=5000)
    job = a.bulk_load("shop", "items", src).job
    assert job.state in ("pending", "running")
    seen = follow(b, job.id)  # through the other dispatcher
    states = [j.state for j in seen]
    assert states[0] in ("pending", "running"), states  # B saw it before it ended
    order = ["pending", "running", "committed"]
    assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)
    fractions = [j.progress.fraction for j in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    for j in seen:
        if j.state == "running":
            assert j.progress.phase in ("reading", "ingesting") and j.progress.fraction < 1
    done = seen[-1]
    assert done.state == "committed", done
    assert done.progress.rows == n + 1 and done.progress.total_rows == n + 1
    assert done.duplicates_dropped == 1 and done.progress.cells == n
    assert done.error is None and done.started_us and done.finished_us
    assert [j.id for j in a.jobs("shop")] == [job.id] == [j.id for j in b.jobs("shop")]
    for client in (a, b):
        assert client.job(job.id).state == "committed"
        assert [c.value for c in client.get("shop", "items", "k0000001", "")] == [b"dup"]
        assert [c.value for c in client.get("shop", "items", "k0299999", "")] == [b"v299999"]
        assert [c.value for c in client.get("shop", "items", "old", "")] == [b"streamed"]

    # replace through B, followed through A: the old data vanishes, the new appears
    small = parquet(tmp_path / "small.parquet", [("x", "a", "1"), ("y", "", "2")])
    job2 = b.bulk_load("shop", "items", small, mode="replace").job
    final = follow(a, job2.id)[-1]
    assert final.state == "committed", final
    for client in (a, b):
        # a dispatcher that answered committed shows the load (it refreshed its catalog)
        assert client.job(job2.id).state == "committed"
        assert scan_all(client, "shop", "items") == [(b"x", b"a", b"1"), (b"y", b"", b"2")]

    # insert_ignore: only what is absent is written
    more = parquet(tmp_path / "more.parquet", [("x", "a", "other"), ("z", "", "3")])
    job3 = a.bulk_load("shop", "items", more, mode="insert_ignore").job
    final = follow(b, job3.id)[-1]
    assert final.state == "committed" and final.progress.skipped_existing == 1, final
    for client in (a, b):
        assert client.job(job3.id).state == "committed"
        assert scan_all(client, "shop", "items") == [
            (b"x", b"a", b"1"),
            (b"y", b"", b"2"),
            (b"z", b"", b"3"),
        ]


def test_cancel_through_b_and_a_failed_job(
    two_dispatchers: tuple[Client, Client], tmp_path: Path
) -> None:
    a, b = two_dispatchers
    a.put_namespace("ns")
    a.put_table("ns", "t")
    rows = [(f"k{i:07d}", "", "v" * 50) for i in range(300_000)]
    src = parquet(tmp_path / "big.parquet", rows, row_group_size=5000)
    job = a.bulk_load("ns", "t", src, job_id="load-1").job
    assert b.cancel_job(job.id).id == "load-1"
    final = follow(a, job.id)[-1]
    assert final.state == "cancelled", final
    assert final.progress.phase == "cancelled" and final.error is None
    for client in (a, b):
        assert client.scan("ns", "t", limit=1).cells == []

    # the same id and request again: the same (cancelled) job, through either
    again = b.bulk_load("ns", "t", src, job_id="load-1").job
    assert (again.id, again.state) == ("load-1", "cancelled")

    bad = parquet(tmp_path / "bad.parquet", [("a", "", "1"), ("x" * 5000, "", "2")])
    job = b.bulk_load("ns", "t", bad).job
    final = follow(a, job.id)[-1]
    assert final.state == "failed", final
    assert final.error is not None and final.error.code == "too_large"
    assert "bad.parquet, row 1" in final.error.message
    for client in (a, b):
        assert client.scan("ns", "t", limit=1).cells == []


_WORKER = """
import signal, sys, threading
from mussel.bulkload.worker import BulkWorker
from mussel.engine import Store

store = Store.open_distributed(sys.argv[1], sys.argv[2], "dispatcher")
worker = BulkWorker(store, lease_s=2.0, batch_rows=5000, settle_s=0.0)
worker.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
worker.stop()
store.close()
"""


def _worker(cluster: DevCluster) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, cluster.log_url, str(cluster.backend_url)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def test_a_killed_workers_subtask_is_loaded_again_by_another_worker(
    tmp_path: Path, postgres_server: Any, kafka_bootstrap: str
) -> None:
    cluster = DevCluster(
        tmp_path / "cluster",
        backend_url=create_database(postgres_server),
        bootstrap=kafka_bootstrap,
        topic=f"bulk-{os.getpid()}-{time.monotonic_ns()}",
        extra=_own_group(),
        workers=0,  # the test runs its own, with a 2 s lease
    )
    with cluster, Client(cluster.url, timeout=60) as client:
        client.put_namespace("ns")
        client.put_table("ns", "t")
        n = 600_000
        rows = [(f"k{i:07d}", "", f"v{i}") for i in range(n)]
        src = parquet(tmp_path / "big.parquet", rows, row_group_size=10_000)
        first = _worker(cluster)
        second = None
        try:
            job = client.bulk_load("ns", "t", src).job
            deadline = time.monotonic() + 60
            while client.job(job.id).progress.rows == 0:  # a heartbeat reported rows
                assert time.monotonic() < deadline
                time.sleep(0.02)
            first.kill()  # mid-subtask: its transaction is rolled back
            first.wait()
            second = _worker(cluster)
            final = follow(client, job.id)[-1]
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(30)
        assert final.state == "committed", final
        assert final.progress.cells == n and final.duplicates_dropped == 0
        with psycopg.connect(str(cluster.backend_url)) as conn:
            attempts = conn.execute(
                "SELECT max(attempts) FROM mussel_job_tasks WHERE job_id = %s", (job.id,)
            ).fetchone()
            cells = conn.execute("SELECT count(*) FROM mussel_cells").fetchone()
        assert attempts is not None and attempts[0] >= 2  # the killed one's, claimed again
        assert cells is not None and cells[0] == n  # every row once
        assert [c.value for c in client.get("ns", "t", "k0599999", "")] == [b"v599999"]


def test_role_all_runs_bulk_loads_in_one_process(
    tmp_path: Path, postgres_server: Any, kafka_bootstrap: str
) -> None:
    cluster = DevCluster(
        tmp_path / "cluster",
        dispatchers=0,
        replayers=0,
        workers=0,
        backend_url=create_database(postgres_server),
        bootstrap=kafka_bootstrap,
        topic=f"bulk-{os.getpid()}-{time.monotonic_ns()}",
        extra=_own_group(),
    )
    with cluster:
        cluster.roles["all-1"] = Role("all-1", "all", 0)
        role = cluster.spawn("all-1")
        with Client(f"http://127.0.0.1:{role.port}", timeout=60) as client:
            client.put_namespace("ns")
            client.put_table("ns", "t")
            client.put("ns", "t", "old", "", b"gone", ts=1)
            src = parquet(tmp_path / "x.parquet", [("a", "", "1"), ("b", "", "2")])
            job = client.bulk_load("ns", "t", src, mode="replace").wait(60)
            assert job.state == "committed", job
            assert scan_all(client, "ns", "t") == [(b"a", b"", b"1"), (b"b", b"", b"2")]
