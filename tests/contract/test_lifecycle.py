"""The server's life (SPEC §8): SIGTERM exits 0 and a restart serves every write
acknowledged with ack=durable; the body limit is enforced before a body is buffered."""

from __future__ import annotations

import json
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, start_server
from tests.contract.conftest import Api, Table, check_envelope, values
from tests.contract.test_errors import _read_answer


def test_sigterm_exits_0_and_a_restart_serves_durable_writes(server: ServerProcess) -> None:
    api = Api(server.url)
    api.put_namespace("life", {"consistency": "eventual"})
    t = api.put_table("life", "t", {"max_versions": 2})
    for batch in range(20):
        records = [{"pk": f"p{batch}-{i}", "sk": "s", "value": f"v{batch}.{i}"} for i in range(50)]
        assert t.write(*records, ack="durable").json() == {"written": 50}
    t.write({"pk": "gone", "value": "x", "ts": 5}, {"op": "delete", "pk": "gone", "ts": 6})
    api.close()
    assert server.stop(signal.SIGTERM) == 0

    again = start_server(server.data_dir)
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


def test_sigterm_does_not_wait_for_idle_keep_alive_connections(server: ServerProcess) -> None:
    clients = [httpx.Client(base_url=server.url) for _ in range(3)]
    try:
        for c in clients:
            assert c.get("/healthz").status_code == 200  # the connection stays open
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5, "shutdown waited on idle connections"
    finally:
        for c in clients:
            c.close()


def test_sigterm_answers_requests_already_received(server: ServerProcess) -> None:
    api = Api(server.url)
    api.put_namespace("drain")
    t = api.put_table("drain", "t")
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"records": [{"pk": "p", "value": "v"}], "ack": "applied"}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        head = (
            f"POST {t.path}/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        s.sendall(head + body[:5])
        time.sleep(0.1)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        s.sendall(body[5:])
        status, _, answer = _read_answer(s)
    assert status == 200
    assert json.loads(answer) == {"written": 1}
    assert server.proc.wait(30) == 0
    api.close()


@pytest.fixture
def small_body_server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "mussel.toml"
    config.write_text("[server]\nmax_body_bytes = 65536\n")
    srv = start_server(tmp_path / "data", "--config", str(config))
    yield srv
    srv.stop()


def test_body_over_the_configured_limit_is_413_via_httpx(small_body_server: ServerProcess) -> None:
    api = Api(small_body_server.url)
    api.put_namespace("lim")
    t = api.put_table("lim", "t")
    resp = t.write({"pk": "p", "value": "v" * 70_000})
    assert resp.status_code == 413
    assert check_envelope(resp.json())["code"] == "too_large"
    assert t.write({"pk": "p", "value": "v" * 60_000}).status_code == 200
    api.close()


def test_chunked_body_over_the_limit_is_rejected_before_it_is_all_sent(
    small_body_server: ServerProcess,
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
