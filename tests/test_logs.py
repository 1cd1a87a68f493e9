"""Structured logs of ``mussel serve`` (``observability/logging.py``): every stderr line
is one JSON object; the access log has a line per answered request with its request id,
names, operation, status, latency and process role; the answer echoes the request id;
no token, key or value ever appears in the log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import start_server

ADMIN = "admin-SECRET-token-0123456789"
PK = "pk-SECRET-KEY-4711"
SK = "sk-SECRET-QUALIFIER-17"
VALUE = "value-SECRET-PAYLOAD-0815"


def test_json_access_log_has_the_fields_and_never_secrets(tmp_path: Path) -> None:
    os.environ["MUSSEL_ADMIN_TOKEN"] = ADMIN
    try:
        srv = start_server(
            tmp_path / "data", "--auth", "token", "--access-log", "--log-format", "json"
        )
    finally:
        del os.environ["MUSSEL_ADMIN_TOKEN"]
    admin = {"authorization": f"Bearer {ADMIN}"}
    try:
        with httpx.Client(base_url=srv.url, timeout=30.0) as http:
            r = http.put("/v1/namespaces/logs", headers={**admin, "x-request-id": "req-1.a:b"})
            assert r.status_code == 200 and r.headers["x-request-id"] == "req-1.a:b"
            r = http.post("/v1/tokens", json={"scopes": ["logs:write"]}, headers=admin)
            writer = r.json()["token"]
            auth = {"authorization": f"Bearer {writer}"}
            assert http.put("/v1/namespaces/logs/tables/t", headers=auth).status_code == 200
            body = {"records": [{"pk": PK, "sk": SK, "value": VALUE}]}
            r = http.post("/v1/namespaces/logs/tables/t/write", json=body, headers=auth)
            assert r.status_code == 200
            ids = set()
            for _ in range(6):  # over several connections: both processes answer some
                with httpx.Client(base_url=srv.url, timeout=30.0) as one:
                    r = one.get(f"/v1/namespaces/logs/tables/t/rows/{PK}", headers=auth)
                assert r.status_code == 200 and VALUE in r.text
                ids.add(r.headers["x-request-id"])
            assert len(ids) == 6  # generated ids are unique
            bad = {"authorization": f"Bearer {writer}x", "x-request-id": "no spaces allowed"}
            r = http.get("/v1/namespaces/logs/tables/t/rows/x", headers=bad)
            assert r.status_code == 401
            assert r.headers["x-request-id"] != "no spaces allowed"
            bad_id = r.headers["x-request-id"]
    finally:
        assert srv.stop() == 0
    assert srv.proc.stderr is not None
    text = srv.proc.stderr.read().decode()
    srv.proc.stderr.close()

    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    for line in lines:
        assert {"ts", "level", "logger", "role", "pid", "msg"} <= set(line)
    access = [line for line in lines if line["logger"] == "mussel.access"]
    by_id: dict[str, dict[str, Any]] = {line["request_id"]: line for line in access}
    first = by_id["req-1.a:b"]
    assert first["op"] == "namespace_put" and first["namespace"] == "logs"
    assert first["status"] == 200 and first["method"] == "PUT" and first["role"] == "owner"
    assert isinstance(first["latency_ms"], float | int) and first["latency_ms"] >= 0
    write = next(line for line in access if line["op"] == "write")
    assert (write["namespace"], write["table"], write["status"]) == ("logs", "t", 200)
    reads = [by_id[i] for i in ids]
    assert all(r["op"] == "read_row" and r["table"] == "t" for r in reads)
    assert by_id[bad_id]["status"] == 401
    roles = {line["role"] for line in access}
    assert "owner" in roles and any(r.startswith("follower-") for r in roles), roles
    assert any("serving http://" in line["msg"] for line in lines)
    for secret in (ADMIN, writer, PK, SK, VALUE):
        assert secret not in text


def test_no_token_ever_appears_in_the_logs_or_metrics(tmp_path: Path) -> None:
    """Issue 6: "tokens never appear in logs or metrics". A two-process server with
    ``--auth token`` and the access log as text (the test above reads JSON lines) gets
    every kind of token where a client puts one: the admin token from the environment,
    secrets returned by ``POST /v1/tokens`` (one used, one revoked and used again),
    well-formed, malformed and long unknown tokens, another scheme, no scheme, the
    dashboard's sign-in form (valid and invalid) and its cookie; on allowed and refused
    requests, in both processes. None shows up on stderr (any log line), in ``/metrics``
    of any process, or in the dashboard's data."""
    admin = "admin-SECRET-env-token-9876543210"
    os.environ["MUSSEL_ADMIN_TOKEN"] = admin
    try:
        srv = start_server(
            tmp_path / "data", "--auth", "token", "--access-log", "--log-format", "text"
        )
    finally:
        del os.environ["MUSSEL_ADMIN_TOKEN"]
    unknown = [
        "mus_0123456789ab_SECRET-wellformed-unknown",
        "SECRET-garbage-token-with-no-shape",
        "SECRET-long-" + "x" * 600,
    ]
    secrets = [admin, *unknown]
    pages: list[str] = []
    try:
        with httpx.Client(base_url=srv.url, timeout=30.0) as http:
            as_admin = {"authorization": f"Bearer {admin}"}
            assert http.put("/v1/namespaces/tok", headers=as_admin).status_code == 200
            made = []
            for name in ("used", "revoked"):
                r = http.post(
                    "/v1/tokens", json={"scopes": ["tok:write"], "name": name}, headers=as_admin
                )
                assert r.status_code == 201
                made.append(r.json())
            used, revoked = (m["token"] for m in made)
            secrets += [used, revoked]
            assert http.delete(f"/v1/tokens/{made[1]['id']}", headers=as_admin).status_code == 200
            listed = http.get("/v1/tokens", headers=as_admin).text
            assert used not in listed and revoked not in listed
            assert http.put("/v1/namespaces/tok/tables/t", headers=_bearer(used)).status_code == 200
            headers: list[dict[str, str]] = [
                _bearer(used),
                _bearer(revoked),
                *(_bearer(u) for u in unknown),
                {"authorization": f"Basic {used}"},
                {"authorization": used},  # no scheme at all
                {"authorization": f"Bearer {admin}"},
            ]
            for h in headers:
                for _ in range(3):  # new connections: both processes answer some
                    with httpx.Client(base_url=srv.url, timeout=30.0, headers=h) as one:
                        one.get("/v1/namespaces/tok/tables/t/rows/p")
                        one.post(
                            "/v1/namespaces/tok/tables/t/write",
                            json={"records": [{"pk": "p", "value": "v"}]},
                        )
                        one.get("/v1/namespaces/other")
                        one.get("/v1/tokens")
            for token in (used, unknown[0], admin):  # the dashboard's sign-in form
                with httpx.Client(base_url=srv.url, timeout=30.0) as browser:
                    r = browser.post("/dashboard/login", data={"token": token})
                    assert r.status_code == (
                        303 if token == admin else 403 if token == used else 401
                    )
                    r = browser.get("/dashboard/data.json")  # with the cookie, if one was set
                    assert r.status_code == (200 if token == admin else 401)
                    pages.append(r.text)
            for _ in range(4):  # /metrics of every process (each sums its peers' too)
                with httpx.Client(base_url=srv.url, timeout=30.0, headers=as_admin) as one:
                    r = one.get("/metrics")
                    assert r.status_code == 200
                    pages.append(r.text)
    finally:
        assert srv.stop() == 0
    assert srv.proc.stderr is not None
    text = srv.proc.stderr.read().decode()
    srv.proc.stderr.close()
    assert "status=401" in text, text[-2000:]  # refusals were logged (without tokens)
    for secret in secrets:
        assert secret not in text, f"a token is in the server's log: {secret!r}"
        for page in pages:
            assert secret not in page, f"a token is in /metrics or the dashboard: {secret!r}"
    for part in ("SECRET-garbage", "SECRET-wellformed", "SECRET-long", "SECRET-env"):
        assert part not in text and all(part not in page for page in pages)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
