"""Fixtures of the client tests: a client in each wire mode, and fresh names.

Tests that need a server use ``shared_server`` (one ``mussel serve`` per module) and
their own namespace, so they never see each other's data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from mussel import Client
from tests.conftest import ServerProcess

_names = itertools.count()

# Bytes that break text protocols: NUL, a lone continuation byte, 0xff, a bad sequence.
BINARY = b"\x00bin\x00\xff\xfe\x80\xc3\x28"


def fresh(prefix: str = "t") -> str:
    """A namespace or table name no other test uses."""
    return f"{prefix}{next(_names)}"


@pytest.fixture(params=[True, False], ids=["msgpack", "json"])
def msgpack(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def client(shared_server: ServerProcess, msgpack: bool) -> Iterator[Client]:
    with Client(shared_server.url, msgpack=msgpack, timeout=10.0) as c:
        yield c


@pytest.fixture
def ns(client: Client) -> str:
    """A fresh namespace with one table, ``t``, keeping up to 5 versions."""
    name = fresh("ns")
    client.put_namespace(name)
    client.put_table(name, "t", max_versions=5)
    return name
