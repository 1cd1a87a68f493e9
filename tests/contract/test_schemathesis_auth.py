"""Schemathesis against a ``mussel serve --auth token`` (issue 6: "schemathesis with
tokens: zero server errors").

The same checks as ``test_schemathesis.py`` (no server error, status code, content type,
headers and body as the document says, 405 with ``Allow``, invalid requests rejected),
about 1,750 requests, with the bearer token of every request chosen in turn: most carry
the admin token (so that the operations get past authorization and their own input is
fuzzed), the rest a read-only token of the seeded namespace, a write token of another
namespace, a token that does not exist, or none, so that the 401 and 403 answers of
every operation are fuzzed too and must conform to the document. Embedded mode only
(the authorization matrix of ``test_auth.py`` covers both modes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import ServerProcess, start_server
from tests.contract.test_schemathesis import (
    CHECKS,
    NS,
    PK,
    TABLE,
    _accept,
    _real_names,
    _write_seed,
)

ADMIN = "schemathesis-admin-token-0123456789"
MIN_REQUESTS = 800
EXAMPLES_PER_OPERATION = 12
"""Fuzzed cases per operation: with the coverage cases, about 1,750 requests in all
(most from schemathesis' coverage phase), in about 40 s."""

ROTATION = ("admin", "admin", "admin", "admin", "admin", "read", "admin", "other", "bad", "none")
"""The token of the n-th request is ``ROTATION[n % 10]``: 60% admin, 10% each of the others."""


class Sent:
    requests = 0
    by_token: dict[str, dict[int, int]] = {}  # noqa: RUF012 - one module-wide tally
    operation = ""
    kind = "admin"  # the token the request under way carries
    ran = False


@pytest.fixture(scope="module")
def auth_fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    os.environ["MUSSEL_ADMIN_TOKEN"] = ADMIN
    try:
        srv = start_server(tmp_path_factory.mktemp("schemathesis-auth") / "data", "--auth", "token")
    finally:
        del os.environ["MUSSEL_ADMIN_TOKEN"]
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


def _seed(url: str) -> None:
    """As ``test_schemathesis._seed``, as admin: the namespace, table and a few rows."""
    ns = f"/v1/namespaces/{NS}"
    table = f"{ns}/tables/{TABLE}"
    headers = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, timeout=30.0, headers=headers) as http:
        quotas = dict.fromkeys(("storage_bytes", "read_qps", "write_qps", "tables"))
        resp = http.put(ns, json={"consistency": "eventual", "quotas": quotas})
        assert resp.status_code == 200, resp.text
        resp = http.put(table, json={"ttl_seconds": None, "max_versions": 3, "consistency": None})
        assert resp.status_code == 200, resp.text
        records = [{"pk": pk, "sk": "a", "value": pk} for pk in (PK, "q")]
        _write_seed(http, f"{table}/write", records)


@pytest.fixture(scope="module")
def tokens(auth_fuzz_server: ServerProcess) -> dict[str, str | None]:
    _seed(auth_fuzz_server.url)
    made: dict[str, str | None] = {"admin": ADMIN, "bad": "mus_000000000000_no-such", "none": None}
    headers = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=auth_fuzz_server.url, timeout=30.0, headers=headers) as http:
        assert http.put("/v1/namespaces/elsewhere", json={}).status_code == 200
        for kind, scope in (("read", f"{NS}:read"), ("other", "elsewhere:write")):
            resp = http.post("/v1/tokens", json={"scopes": [scope], "name": f"fuzz-{kind}"})
            assert resp.status_code == 201, resp.text
            made[kind] = resp.json()["token"]
    return made


def _count(_ctx: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
    Sent.requests += 1
    tally = Sent.by_token.setdefault(Sent.kind, {})
    tally[response.status_code] = tally.get(response.status_code, 0) + 1


@pytest.fixture(scope="module")
def auth_api_schema(auth_fuzz_server: ServerProcess, tokens: dict[str, str | None]) -> Any:
    schema = schemathesis.openapi.from_url(f"{auth_fuzz_server.url}/openapi.json", timeout=30)
    schema.config.update(base_url=auth_fuzz_server.url)
    schema.hook("flatmap_path_parameters")(_real_names)
    schema.hook("flatmap_headers")(_accept)
    schema.hook("after_call")(_count)
    Sent.ran = True
    return schema


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.clear()
        yield s


@pytest.fixture(autouse=True)
def _pytest_node_id(request: pytest.FixtureRequest) -> None:
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("auth_api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_with_tokens(
    case: schemathesis.Case,
    session: requests.Session,
    auth_fuzz_server: ServerProcess,
    tokens: dict[str, str | None],
) -> None:
    if case.operation.label != Sent.operation:
        Sent.operation = case.operation.label
        _seed(auth_fuzz_server.url)
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    Sent.kind = ROTATION[Sent.requests % len(ROTATION)]
    token = tokens[Sent.kind]
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    case.headers = headers
    case.call_and_validate(session=session, checks=CHECKS, timeout=30)


def test_schemathesis_with_tokens_sent_enough_requests_and_met_every_refusal() -> None:
    if not Sent.ran:
        pytest.skip("test_every_operation_conforms_with_tokens did not run")
    tallies = {k: dict(sorted(v.items())) for k, v in Sent.by_token.items()}
    assert Sent.requests >= MIN_REQUESTS, (Sent.requests, tallies)
    assert all(max(t) < 500 for t in tallies.values()), tallies
    assert 200 in tallies["admin"], tallies
    assert 401 in tallies["bad"] and 401 in tallies["none"], tallies
    assert 403 in tallies["read"] and 403 in tallies["other"], tallies
    print(f"schemathesis with tokens: {Sent.requests} requests, statuses by token {tallies}")
