"""Fixtures of the CLI tests: ``mussel`` run in-process by click's ``CliRunner``.

One real ``mussel serve`` serves the whole package (``cli_server``); every test
works in namespaces of its own (``fresh``), so tests never see each other's data.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mussel import Client
from mussel.cli.main import cli
from tests.conftest import ServerProcess, start_server

_names = itertools.count()


def fresh(prefix: str = "c") -> str:
    """A namespace or table name no other test uses."""
    return f"cli{prefix}{next(_names)}"


@dataclass
class Mussel:
    """Runs ``mussel ARGS...`` against ``url`` (through ``MUSSEL_URL``)."""

    url: str
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, input: str | None = None) -> Result:
        env = {"MUSSEL_URL": self.url, "COLUMNS": "200", **self.env}
        result = CliRunner().invoke(cli, list(args), env=env, input=input)
        # Never a traceback: every outcome is an exit status, not an exception.
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    def ok(self, *args: str, input: str | None = None) -> str:
        """Stdout of a command that must succeed."""
        result = self(*args, input=input)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        return result.stdout

    def json(self, *args: str) -> Any:
        """The one JSON document a command prints with ``--json``."""
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, code: int = 1) -> str:
        """Stderr of a command that must fail with exit status ``code``; stdout is empty."""
        result = self(*args)
        assert result.exit_code == code, result.output
        assert result.stdout == ""
        return result.stderr


@pytest.fixture(scope="package")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("cli") / "data")
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


@pytest.fixture
def mussel(cli_server: ServerProcess) -> Mussel:
    return Mussel(cli_server.url)


@pytest.fixture
def client(cli_server: ServerProcess) -> Iterator[Client]:
    """The library, to set up and check what the CLI did."""
    with Client(cli_server.url) as c:
        yield c


@pytest.fixture
def ns(client: Client) -> str:
    """A fresh namespace."""
    name = fresh("ns")
    client.put_namespace(name)
    return name


@pytest.fixture
def table(client: Client, ns: str) -> str:
    """A fresh table, ``NS/TABLE``, that keeps 3 versions."""
    name = fresh("t")
    client.put_table(ns, name, max_versions=3)
    return f"{ns}/{name}"


def dead_url() -> str:
    """The URL of a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


__all__ = ["Mussel", "dead_url", "fresh"]
