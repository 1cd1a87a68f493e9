"""Shared fixtures: a real ``mussel serve`` process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("mussel", deadline=None)
settings.load_profile("mussel")
"""No hypothesis deadlines: examples that reach a real database or spawn processes run
on a shared machine, and speed is for benchmarks, never timed assertions in tests."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.kafka",
    "tests.fixtures.cluster",
]


@dataclass
class ServerProcess:
    """A running ``mussel serve``; ``url`` is its base URL (http://127.0.0.1:PORT)."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The server's processes: the owner first, then its followers."""
        path = self.data_dir / "run" / "pids"
        return [int(line) for line in path.read_text().split()]

    def kill_all(self) -> None:
        """kill -9 of every server process at once; waits for the owner."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_server(
    data_dir: Path, *extra: str, processes: int = 2, timeout: float = 60.0
) -> ServerProcess:
    """Start ``mussel serve`` on an OS-chosen port; return once it is listening.

    Two processes by default (an owner and a follower), whatever the machine's
    cores, so that every server test also covers requests handed between them.
    """
    parent, child = socket.socketpair()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mussel.cli.main",
            "serve",
            "--data",
            str(data_dir),
            "--port",
            "0",
            "--ready-fd",
            str(child.fileno()),
            "--processes",
            str(processes),
            *extra,
        ],
        pass_fds=(child.fileno(),),
        stderr=subprocess.PIPE,
    )
    child.close()
    parent.settimeout(timeout)
    try:
        port = int(parent.recv(16) or b"0")
    except (TimeoutError, ValueError):
        port = 0
    finally:
        parent.close()
    if not port:
        proc.kill()
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"mussel serve did not start: {err}")
    return ServerProcess(proc, data_dir, port)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server with its own data directory, stopped (SIGTERM) after the test."""
    srv = start_server(tmp_path / "data")
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a whole test module (tests use distinct namespaces)."""
    srv = start_server(tmp_path_factory.mktemp("shared") / "data")
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


__all__ = ["ServerProcess", "start_server"]
