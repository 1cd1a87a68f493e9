"""The server's life (SPEC §8): SIGTERM exits 0 and a restart serves every write
acknowledged with ack=durable; the body limit is enforced before a body is buffered."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mussel.cli.devcluster import DevCluster
from tests.conftest import ServerProcess, start_server
from tests.contract.conftest import MODES, Api, Table, check_envelope, values
from tests.contract.test_errors import _read_answer
from tests.fixtures.cluster import ClusterServer, start_cluster


class Life:
    """The server under test in either mode: a two-process ``mussel serve``, or a
    distributed cluster (2 dispatchers on one port, 2 replayers, a worker) whose
    "front" is its dispatchers."""

    def __init__(self, srv: ServerProcess | ClusterServer) -> None:
        self.srv = srv

    @property
    def url(self) -> str:
        return self.srv.url

    def _fronts(self) -> list[subprocess.Popen[bytes]]:
        if isinstance(self.srv, ServerProcess):
            return [self.srv.proc]
        roles = self.srv.cluster.roles.values()
        return [r.proc for r in roles if r.role == "dispatcher" and r.proc is not None]

    def signal_front(self, sig: int) -> None:
        """``sig`` to the process(es) that take HTTP requests."""
        for proc in self._fronts():
            proc.send_signal(sig)

    def wait_front(self, timeout: float = 30.0) -> int:
        """Their exit status (the worst one)."""
        return max(abs(proc.wait(timeout)) for proc in self._fronts())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Every process, with ``sig``; the worst exit status."""
        return self.srv.stop(sig)

    def restart(self, root: Path) -> Life:
        """The same data served again: the data directory, or the same database and log."""
        if isinstance(self.srv, ServerProcess):
            return Life(start_server(self.srv.data_dir))
        old = self.srv.cluster
        again = DevCluster(
            root,
            backend_url=old.backend_url,
            bootstrap=old.bootstrap,
            topic=old.topic,
            partitions=old.partitions,
            # a new consumer group: the replayers resume from the offsets stored in the
            # database, not the group's. (On Tansu, a group all of whose members left
            # was once seen never to re-form for new members within 60 s.)
            extra=(*old.extra, "--group", f"mussel-replayers.{old.topic}.again"),
            env=old.env,
        )
        return Life(ClusterServer(again.start()))

    def close(self) -> None:
        if isinstance(self.srv, ServerProcess):
            if self.srv.proc.poll() is None:
                self.srv.stop()
            if self.srv.proc.stderr:
                self.srv.proc.stderr.close()
        else:
            self.srv.cluster.stop()


def _start(request: pytest.FixtureRequest, root: Path, *extra: str) -> Life:
    if request.param == "distributed":
        return Life(
            start_cluster(
                root,
                request.getfixturevalue("postgres_server"),
                request.getfixturevalue("kafka_bootstrap"),
                *extra,
            )
        )
    return Life(start_server(root / "data", *extra))


@pytest.fixture(params=MODES)
def life(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Life]:
    """A fresh server (or cluster), stopped after the test."""
    srv = _start(request, tmp_path / "server")
    yield srv
    srv.close()


def test_sigterm_exits_0_and_a_restart_serves_durable_writes(life: Life, tmp_path: Path) -> None:
    api = Api(life.url)
    api.put_namespace("life", {"consistency": "eventual"})
    t = api.put_table("life", "t", {"max_versions": 2})
    for batch in range(20):
        records = [{"pk": f"p{batch}-{i}", "sk": "s", "value": f"v{batch}.{i}"} for i in range(50)]
        assert t.write(*records, ack="durable").json() == {"written": 50}
    t.write({"pk": "gone", "value": "x", "ts": 5}, {"op": "delete", "pk": "gone", "ts": 6})
    api.close()
    assert life.stop(signal.SIGTERM) == 0

    again = life.restart(tmp_path / "again")
    try:
        api = Api(again.url)
        t = Table(api, "life", "t")
        ns = api.get("/v1/namespaces/life").json()["namespace"]
        assert ns["consistency"] == "eventual"
        assert api.get(t.path).json()["table"]["max_versions"] == 2
        got = api.get(f"{t.path}/scan", params={"consistency": "strong", "limit": 5000}).json()
        assert len(got["cells"]) == 1000
        assert values(t.row("p19-49")) == [("s", "v19.49")]
        assert values(t.row("p0-0", {"consistency": "eventual"})) == [("s", "v0.0")]
        assert values(t.row("gone", {"versions": 5})) == []
        assert t.write({"pk": "after", "value": "restart"}).status_code == 200
        api.close()
    finally:
        assert again.stop(signal.SIGTERM) == 0
        again.close()


def test_sigterm_does_not_wait_for_idle_keep_alive_connections(life: Life) -> None:
    clients = [httpx.Client(base_url=life.url) for _ in range(3)]
    try:
        for c in clients:
            assert c.get("/healthz").status_code == 200  # the connection stays open
        started = time.monotonic()
        life.signal_front(signal.SIGTERM)
        assert life.wait_front() == 0
        assert time.monotonic() - started < 5, "shutdown waited on idle connections"
    finally:
        for c in clients:
            c.close()


def test_sigterm_answers_requests_already_received(life: Life) -> None:
    api = Api(life.url)
    api.put_namespace("drain")
    t = api.put_table("drain", "t")
    host, port = life.url.removeprefix("http://").split(":")
    body = json.dumps({"records": [{"pk": "p", "value": "v"}], "ack": "applied"}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        head = (
            f"POST {t.path}/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        s.sendall(head + body[:5])
        time.sleep(0.1)
        life.signal_front(signal.SIGTERM)
        time.sleep(0.2)
        s.sendall(body[5:])
        status, _, answer = _read_answer(s)
    assert status == 200
    assert json.loads(answer) == {"written": 1}
    assert life.wait_front(30) == 0
    api.close()


@pytest.fixture(params=MODES, scope="module")
def small_body_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Life]:
    """A server (or cluster) taking bodies of at most 64 KiB, shared by the tests below."""
    root = tmp_path_factory.mktemp("small-body")
    config = root / "mussel.toml"
    config.write_text("[server]\nmax_body_bytes = 65536\n")
    srv = _start(request, root / "server", "--config", str(config))
    yield srv
    srv.close()


def test_body_over_the_configured_limit_is_413_via_httpx(small_body_server: Life) -> None:
    api = Api(small_body_server.url)
    api.put_namespace("lim")
    t = api.put_table("lim", "t")
    resp = t.write({"pk": "p", "value": "v" * 70_000})
    assert resp.status_code == 413
    assert check_envelope(resp.json())["code"] == "too_large"
    assert t.write({"pk": "p", "value": "v" * 60_000}).status_code == 200
    api.close()


def test_chunked_body_over_the_limit_is_rejected_before_it_is_all_sent(
    small_body_server: Life,
) -> None:
    host, port = small_body_server.url.removeprefix("http://").split(":")
    chunk = b"x" * 16384
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /v1/namespaces/lim/tables/t/write HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        while sent < 4 << 20:  # the server must answer long before
            readable, _, _ = select.select([s], [], [], 0.02)
            if readable:
                break
            try:
                s.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        assert sent < 1 << 20, f"the server let {sent} bytes in before answering"
        status, _, body = _read_answer(s)
    assert status == 413
    assert check_envelope(json.loads(body))["code"] == "too_large"
