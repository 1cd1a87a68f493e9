"""``mussel serve --processes N``: an owner and followers on one port.

What only the process layout can show: followers answer reads on their own (the
owner stopped with SIGSTOP), a follower that dies is started again, followers die
with the owner, and SIGTERM stops them all cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, start_server


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait(cond: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def three(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path / "data", processes=3)
    base = srv.url + "/v1/namespaces/ns"
    httpx.put(base, json={}).raise_for_status()
    httpx.put(base + "/tables/t", json={}).raise_for_status()
    httpx.post(
        base + "/tables/t/write",
        json={"records": [{"pk": "a", "sk": "b", "value": "v"}], "ack": "applied"},
    ).raise_for_status()
    yield srv
    with contextlib.suppress(ProcessLookupError):
        os.kill(srv.proc.pid, signal.SIGCONT)
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


def _read(url: str, consistency: str) -> httpx.Response | None:
    """One read on a new connection (so the kernel picks a process for it)."""
    try:
        with httpx.Client(timeout=1.0) as c:
            return c.get(f"{url}/v1/namespaces/ns/tables/t/rows/a?sk=b&consistency={consistency}")
    except httpx.TimeoutException:
        return None


def test_every_process_is_listed_and_alive(three: ServerProcess) -> None:
    pids = three.pids()
    assert len(pids) == 3 and pids[0] == three.proc.pid
    assert all(map(_alive, pids))


def test_followers_answer_reads_while_the_owner_is_stopped(three: ServerProcess) -> None:
    os.kill(three.proc.pid, signal.SIGSTOP)
    try:
        answers = [_read(three.url, c) for c in ("eventual", "strong") * 8]
    finally:
        os.kill(three.proc.pid, signal.SIGCONT)
    served = [r for r in answers if r is not None]
    assert served, "no follower answered"  # 16 connections all on the owner: p = 3^-16
    for r in served:
        assert r.status_code == 200
        assert r.json()["cells"][0]["value"] == "v"
    # and what the owner queued meanwhile is answered once it runs again
    assert all(r is not None and r.status_code == 200 for r in (_read(three.url, "strong"),) * 3)


def test_a_follower_killed_is_started_again(three: ServerProcess) -> None:
    victim = three.pids()[1]
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: victim not in three.pids() and len(three.pids()) == 3)
    assert all(map(_alive, three.pids()))
    for _ in range(10):
        r = _read(three.url, "strong")
        assert r is not None and r.status_code == 200


def test_followers_die_with_the_owner(three: ServerProcess) -> None:
    followers = three.pids()[1:]
    three.proc.kill()
    three.proc.wait()
    _wait(lambda: not any(map(_alive, followers)), timeout=10)


def test_sigterm_stops_every_process_with_status_0(three: ServerProcess) -> None:
    followers = three.pids()[1:]
    assert three.stop() == 0
    _wait(lambda: not any(map(_alive, followers)), timeout=10)


def test_writes_through_any_process_are_read_strongly_through_any(
    three: ServerProcess,
) -> None:
    base = f"{three.url}/v1/namespaces/ns/tables/t"
    for i in range(30):
        with httpx.Client(timeout=5.0) as c:  # new connections: any process
            c.post(
                base + "/write", json={"records": [{"pk": f"k{i}", "sk": "s", "value": str(i)}]}
            ).raise_for_status()
        with httpx.Client(timeout=5.0) as c:
            r = c.get(f"{base}/rows/k{i}?sk=s&consistency=strong")
            assert r.status_code == 200 and r.json()["cells"][0]["value"] == str(i)
    with httpx.Client(timeout=5.0) as c:
        text = c.get(three.url + "/metrics").text
    reads = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mussel_requests_total{")
        and 'operation="read_row"' in line
        and 'namespace="ns"' in line
    )
    assert reads == 30  # counted once each, in whichever process answered


def test_a_client_cannot_pose_as_a_follower(three: ServerProcess) -> None:
    """``Mussel-Internal: append`` counts only on the owner's Unix socket: from a client
    it is an ordinary header, and the body must be an ordinary, valid write."""
    import msgspec

    from mussel.model import Mutation

    bogus = msgspec.msgpack.encode([1, "durable", [Mutation(1, 0, b"", b"s", 1, b"v")]])
    for _ in range(6):  # new connections: the owner and the followers
        with httpx.Client(timeout=5.0) as c:
            r = c.post(
                f"{three.url}/v1/namespaces/ns/tables/t/write",
                content=bogus,
                headers={"content-type": "application/msgpack", "mussel-internal": "append"},
            )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_request"
