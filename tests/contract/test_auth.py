"""SPEC §6 over HTTP: ``--auth token``, the authorization matrix, token management.

Every endpoint x {no token, a bad token, a token of another namespace, a read token,
a write token, admin}: 401 and 403 exactly as SPEC §6 says, and every allowed request
answered without either. The server runs two processes, so followers and the owner
both enforce it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, start_server
from tests.contract.conftest import MODES
from tests.fixtures.cluster import ClusterServer, start_cluster

ADMIN = "contract-admin-token-0123456789"


@pytest.fixture(scope="module", params=MODES)
def auth_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess | ClusterServer]:
    """``--auth token``: a two-process ``mussel serve``, or a distributed cluster whose
    every process runs with it (the tokens live in the shared catalog)."""
    if request.param == "distributed":
        cluster = start_cluster(
            tmp_path_factory.mktemp("auth-cluster"),
            request.getfixturevalue("postgres_server"),
            request.getfixturevalue("kafka_bootstrap"),
            "--auth",
            "token",
            env={"MUSSEL_ADMIN_TOKEN": ADMIN},
        )
        yield cluster
        cluster.cluster.stop()
        return
    os.environ["MUSSEL_ADMIN_TOKEN"] = ADMIN
    try:
        srv = start_server(tmp_path_factory.mktemp("auth") / "data", "--auth", "token")
    finally:
        del os.environ["MUSSEL_ADMIN_TOKEN"]
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


def _h(token: str | None) -> dict[str, str]:
    return {} if token is None else {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tokens(auth_server: ServerProcess | ClusterServer) -> dict[str, str | None]:
    with httpx.Client(base_url=auth_server.url, headers=_h(ADMIN), timeout=10) as c:
        for ns in ("shop", "other"):
            assert c.put(f"/v1/namespaces/{ns}", json={}).status_code == 200
            assert c.put(f"/v1/namespaces/{ns}/tables/t", json={}).status_code == 200
        made = {}
        for kind, scopes in {
            "read": ["shop:read"],
            "write": ["shop:write"],
            "other": ["other:write"],
        }.items():
            r = c.post("/v1/tokens", json={"scopes": scopes, "name": kind})
            assert r.status_code == 201, r.text
            made[kind] = r.json()["token"]
    return {"none": None, "bad": "mus_000000000000_not-a-real-token", "admin": ADMIN, **made}


T = "/v1/namespaces/shop/tables/t"
# (method, path, body, right needed: None = open, "any" = any valid token)
ENDPOINTS: list[tuple[str, str, Any, str | None]] = [
    ("GET", "/healthz", None, None),
    ("GET", "/readyz", None, None),
    ("GET", "/openapi.json", None, None),
    ("GET", "/metrics", None, "admin"),
    ("GET", "/dashboard", None, "admin"),
    ("GET", "/dashboard/data.json", None, "admin"),
    ("GET", "/dashboard/static/dashboard.js", None, "admin"),
    ("GET", "/v1/namespaces", None, "any"),
    ("GET", "/v1/namespaces/shop", None, "read"),
    ("PUT", "/v1/namespaces/shop", {}, "admin"),
    ("DELETE", "/v1/namespaces/nothere", None, "admin"),
    ("GET", "/v1/namespaces/shop/tables", None, "read"),
    ("GET", T, None, "read"),
    ("PUT", T, {"max_versions": 2}, "write"),
    ("DELETE", "/v1/namespaces/shop/tables/nothere", None, "write"),
    ("POST", f"{T}/write", {"records": [{"pk": "p", "value": "v"}]}, "write"),
    ("GET", f"{T}/rows/p", None, "read"),
    ("GET", f"{T}/rows/p?sk=", None, "read"),
    ("POST", f"{T}/get", {"keys": [{"pk": "p"}]}, "read"),
    ("GET", f"{T}/scan", None, "read"),
    ("POST", f"{T}/expire", None, "write"),
    ("GET", f"{T}/hotkeys", None, "read"),
    ("POST", f"{T}/bulkloads", {"source": "/nonexistent/x.parquet"}, "write"),
    ("GET", "/v1/jobs", None, "any"),
    ("GET", "/v1/tokens", None, "admin"),
    ("POST", "/v1/tokens", {"scopes": ["shop:read"]}, "admin"),
    ("DELETE", "/v1/tokens/000000000000", None, "admin"),
    # encoded names are the same names
    ("GET", "/v1/namespaces/%73hop/tables/t/rows/p", None, "read"),
    ("PUT", "/v1/namespaces/%73hop/tables/%74", {}, "write"),
]


def _allowed(right: str | None, kind: str) -> bool:
    if right is None:
        return True
    if kind in ("none", "bad"):
        return False
    if right == "any" or kind == "admin":
        return True
    if right == "admin":
        return False
    if kind == "other":
        return False
    return right == "read" or kind == "write"


@pytest.mark.parametrize(("method", "path", "body", "right"), ENDPOINTS)
def test_authorization_matrix(
    auth_server: ServerProcess | ClusterServer,
    tokens: dict[str, str | None],
    method: str,
    path: str,
    body: Any,
    right: str | None,
) -> None:
    for kind, token in tokens.items():
        # a new connection per request: the kernel spreads them over both processes
        with httpx.Client(base_url=auth_server.url, timeout=10) as c:
            r = c.request(method, path, json=body, headers=_h(token))
        assert r.status_code < 500, (kind, r.text)
        if _allowed(right, kind):
            assert r.status_code not in (401, 403), (kind, r.status_code, r.text)
        elif kind in ("none", "bad"):
            assert r.status_code == 401, (kind, r.text)
            assert r.json()["error"]["code"] == "unauthenticated"
            assert r.headers["www-authenticate"].startswith("Bearer")
        else:
            assert r.status_code == 403, (kind, r.text)
            assert r.json()["error"]["code"] == "forbidden"


def test_dashboard_sign_in_sets_a_cookie_that_only_the_dashboard_takes(
    auth_server: ServerProcess | ClusterServer, tokens: dict[str, str | None]
) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=auth_server.url, timeout=10) as c:
        # a browser without a sign-in gets the form, with a clear 401
        page = c.get("/dashboard", headers={"accept": "text/html,*/*"})
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        assert 'action="/dashboard/login"' in page.text
        assert c.get("/dashboard/data.json").status_code == 401  # the JSON envelope
        bad = c.post("/dashboard/login", content=f"token={tokens['bad']}", headers=form)
        assert bad.status_code == 401 and "not valid" in bad.text
        reader = c.post("/dashboard/login", content=f"token={tokens['read']}", headers=form)
        assert reader.status_code == 403 and "admin" in reader.text
        assert "set-cookie" not in reader.headers
        empty = c.post("/dashboard/login", content="token=", headers=form)
        assert empty.status_code == 400 and empty.json()["error"]["code"] == "invalid_request"
        ok = c.post("/dashboard/login", content=f"token={ADMIN}", headers=form)
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
        jar = {"cookie": cookie.split(";", 1)[0]}
        assert c.get("/dashboard", headers=jar).status_code == 200
        data = c.get("/dashboard/data.json", headers=jar)
        assert data.status_code == 200
        assert {"shop", "other"} <= {ns["name"] for ns in data.json()["namespaces"]}
        # the cookie is the dashboard's only: no API request takes it
        assert c.get("/metrics", headers=jar).status_code == 401
        assert c.get("/v1/namespaces", headers=jar).status_code == 401
        assert c.put("/v1/namespaces/x", json={}, headers=jar).status_code == 401
        stale = {"cookie": "mussel_token=mus_000000000000_not-a-real-token"}
        assert c.get("/dashboard/data.json", headers=stale).status_code == 401


def test_lists_show_only_what_a_token_may_read(
    auth_server: ServerProcess | ClusterServer, tokens: dict[str, str | None]
) -> None:
    with httpx.Client(base_url=auth_server.url, timeout=10) as c:
        names = lambda kind: {  # noqa: E731
            n["name"]
            for n in c.get("/v1/namespaces", headers=_h(tokens[kind])).json()["namespaces"]
        }
        assert names("read") == names("write") == {"shop"}
        assert names("other") == {"other"}
        assert {"shop", "other"} <= names("admin")


def _raw_get(url: str, path: str, token: str | None) -> int:
    """A GET with the path exactly as given (HTTP clients normalize ``..`` away)."""
    host, port = url.removeprefix("http://").split(":")
    auth = "" if token is None else f"authorization: Bearer {token}\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n".encode())
        head = s.recv(65536).split(b"\r\n", 1)[0]
    return int(head.split()[1])


def test_dot_dot_and_odd_paths_reach_nothing(
    auth_server: ServerProcess | ClusterServer, tokens: dict[str, str | None]
) -> None:
    for path in (
        "/v1/namespaces/shop/../other/tables/t/rows/p",
        "/v1/namespaces/other/../shop/tables/t/rows/p",
        "/v1/namespaces/%2e%2e/tables/t/rows/p",
        "/v1/namespaces/shop%2fother/tables/t",
        "/v1/namespaces/other%2f..%2fshop/tables/t",
    ):
        for kind in ("read", "other"):
            status = _raw_get(auth_server.url, path, tokens[kind])
            assert status in (400, 403, 404), (path, kind, status)


def test_a_revoked_token_stops_working_at_once(
    auth_server: ServerProcess | ClusterServer, tokens: dict[str, str | None]
) -> None:
    with httpx.Client(base_url=auth_server.url, timeout=10) as c:
        made = c.post("/v1/tokens", json={"scopes": ["shop:read"]}, headers=_h(ADMIN)).json()
        assert c.get(f"{T}/scan", headers=_h(made["token"])).status_code == 200
        listed = c.get("/v1/tokens", headers=_h(ADMIN)).json()["tokens"]
        mine = next(t for t in listed if t["id"] == made["id"])
        assert "token" not in mine and "hash" not in mine  # never a secret
        r = c.delete(f"/v1/tokens/{made['id']}", headers=_h(ADMIN))
        assert r.status_code == 200
    for _ in range(6):  # whichever process answers
        with httpx.Client(base_url=auth_server.url, timeout=10) as c:
            r = c.get(f"{T}/scan", headers=_h(made["token"]))
        assert r.status_code == 401


def test_token_requests_are_checked(auth_server: ServerProcess | ClusterServer) -> None:
    with httpx.Client(base_url=auth_server.url, headers=_h(ADMIN), timeout=10) as c:
        for body in ({"scopes": []}, {"scopes": ["shop:delete"]}, {"scopes": ["BAD NS:read"]},
                     {"scopes": "admin"}, {"name": "x"}):  # fmt: skip
            r = c.post("/v1/tokens", json=body)
            assert r.status_code == 400, body
        assert c.delete("/v1/tokens/nope").status_code == 404


def test_the_server_refuses_to_listen_openly_without_tokens(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"refusing to listen on 0\.0\.0\.0"):
        start_server(tmp_path / "data", "--host", "0.0.0.0")
    with pytest.raises(RuntimeError, match="MUSSEL_ADMIN_TOKEN"):
        start_server(tmp_path / "data2", "--auth", "token")
