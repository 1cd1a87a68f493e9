"""``mussel token`` against a server started with ``--auth token``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mussel import Client
from tests.cli.conftest import Mussel
from tests.conftest import ServerProcess, start_server

ADMIN = "cli-admin-token-0123456789"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    os.environ["MUSSEL_ADMIN_TOKEN"] = ADMIN
    try:
        srv = start_server(tmp_path_factory.mktemp("cli-auth") / "data", "--auth", "token")
    finally:
        del os.environ["MUSSEL_ADMIN_TOKEN"]
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


@pytest.fixture
def admin(auth_server: ServerProcess) -> Mussel:
    return Mussel(auth_server.url, {"MUSSEL_TOKEN": ADMIN})


def test_create_use_list_and_revoke_a_token(admin: Mussel, auth_server: ServerProcess) -> None:
    with Client(auth_server.url, token=ADMIN) as c:
        c.put_namespace("shop")
    made = admin.json("token", "create", "--scope", "shop:read", "--name", "reader")
    assert made["scopes"] == ["shop:read"] and made["token"].startswith("mus_")
    reader = Mussel(auth_server.url, {"MUSSEL_TOKEN": made["token"]})
    assert [n["name"] for n in reader.json("ns", "list")["namespaces"]] == ["shop"]
    assert "forbidden" in reader.fails("ns", "create", "mine")
    listed = admin.json("token", "list")["tokens"]
    assert {t["id"] for t in listed} >= {made["id"], "admin-env"}
    assert all("token" not in t for t in listed)
    out = admin.ok("token", "revoke", made["id"])
    assert made["id"] in out
    assert "unauthenticated" in reader.fails("ns", "list")


def test_token_errors_are_clear(admin: Mussel, auth_server: ServerProcess) -> None:
    assert "not_found" in admin.fails("token", "revoke", "nope")
    assert "invalid_request" in admin.fails("token", "create", "--scope", "shop:drop")
    anonymous = Mussel(auth_server.url)
    assert "unauthenticated" in anonymous.fails("token", "list")
