"""SPEC §4 service endpoints: /healthz, /readyz, /metrics, /openapi.json."""

from __future__ import annotations

import math
import re
from typing import Any

import jsonschema
import pytest
from referencing.exceptions import Unresolvable

from tests.contract.conftest import Api, Table, error_code

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

# (method, path template) of every SPEC §4 row this API serves today.
SPEC_OPERATIONS = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/namespaces"),
    ("get", "/v1/namespaces/{ns}"),
    ("put", "/v1/namespaces/{ns}"),
    ("delete", "/v1/namespaces/{ns}"),
    ("get", "/v1/namespaces/{ns}/tables"),
    ("get", "/v1/namespaces/{ns}/tables/{table}"),
    ("put", "/v1/namespaces/{ns}/tables/{table}"),
    ("delete", "/v1/namespaces/{ns}/tables/{table}"),
    ("post", "/v1/namespaces/{ns}/tables/{table}/write"),
    ("get", "/v1/namespaces/{ns}/tables/{table}/rows/{pk}"),
    ("post", "/v1/namespaces/{ns}/tables/{table}/get"),
    ("get", "/v1/namespaces/{ns}/tables/{table}/scan"),
}


def test_healthz_answers_200_while_alive(api: Api) -> None:
    resp = api.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_readyz_answers_200_when_ready_to_serve(api: Api) -> None:
    resp = api.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready"}


def test_unknown_endpoint_is_404_with_the_error_envelope(api: Api) -> None:
    for path in ("/nope", "/v1", "/v2/namespaces", "/v1/namespaces/a/nope", "/v1/x/y/z/w"):
        resp = api.get(path)
        assert resp.status_code == 404, path
        assert error_code(resp) == "not_found"


def test_wrong_method_is_405_with_allow_header_and_envelope(api: Api, table: Table) -> None:
    for method, path, allowed in [
        ("POST", "/healthz", "GET"),
        ("POST", "/v1/namespaces", "GET"),
        ("GET", f"{table.path}/write", "POST"),
        ("PUT", f"{table.path}/scan", "GET"),
        ("POST", f"{table.path}/rows/p", "GET"),
    ]:
        resp = api.request(method, path)
        assert resp.status_code == 405, (method, path)
        assert error_code(resp) == "method_not_allowed"
        assert allowed in resp.headers["allow"]


# -- /openapi.json ---------------------------------------------------------------


@pytest.fixture(scope="module")
def doc(api: Api) -> dict[str, Any]:
    resp = api.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()  # type: ignore[no-any-return]


def _walk(node: Any, at: str = "#") -> list[tuple[str, Any]]:
    out = [(at, node)]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _walk(v, f"{at}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _walk(v, f"{at}/{i}")
    return out


def test_openapi_document_is_openapi_3_1(doc: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert isinstance(doc["info"]["title"], str) and doc["info"]["title"]
    assert isinstance(doc["info"]["version"], str) and doc["info"]["version"]
    assert set(doc) <= {
        "openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
        "components", "security", "tags", "externalDocs",
    }  # fmt: skip
    for template, item in doc["paths"].items():
        assert template.startswith("/"), template
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method, op in item.items():
            if method == "parameters":
                continue
            assert method in METHODS, (template, method)
            params = item.get("parameters", []) + op.get("parameters", [])
            for p in params:
                assert p["in"] in {"query", "header", "path", "cookie"}, p
                assert isinstance(p["name"], str) and "schema" in p, p
                if p["in"] == "path":
                    assert p["required"] is True, p
            path_params = declared | {p["name"] for p in params if p["in"] == "path"}
            assert path_params == set(re.findall(r"\{([^}]+)\}", template)), template
            assert op["responses"], (template, method)
            for status, answer in op["responses"].items():
                assert re.fullmatch(r"[1-5](\d\d|XX)|default", status), status
                assert isinstance(answer["description"], str), (template, method, status)
            if "requestBody" in op:
                assert op["requestBody"]["content"], (template, method)


def test_openapi_schemas_are_valid_json_schema_2020_12(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for _, node in _walk(doc):
        if isinstance(node, dict) and "schema" in node:
            jsonschema.Draft202012Validator.check_schema(node["schema"])


def test_openapi_every_ref_resolves(api: Api, doc: dict[str, Any]) -> None:
    resolver = api.openapi.registry.resolver(base_uri="urn:mussel:openapi")
    refs = [
        (at, node["$ref"]) for at, node in _walk(doc) if isinstance(node, dict) and "$ref" in node
    ]
    assert refs
    for at, ref in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{at}: $ref {ref} does not resolve: {exc}")


def test_openapi_documents_every_spec_operation(doc: dict[str, Any]) -> None:
    have = {(m, t) for t, item in doc["paths"].items() for m in item if m in METHODS}
    assert have >= SPEC_OPERATIONS, SPEC_OPERATIONS - have
    for method, template in SPEC_OPERATIONS:
        responses = doc["paths"][template][method]["responses"]
        assert "200" in responses, (method, template)
        if template.startswith("/v1/"):
            assert "400" in responses, (method, template)


def test_openapi_write_body_schema_matches_what_the_server_accepts(api: Api) -> None:
    path = "/v1/namespaces/{ns}/tables/{table}/write"
    ref = "urn:mussel:openapi#/paths/" + path.replace("/", "~1")
    ref += "/post/requestBody/content/application~1json/schema"
    v = jsonschema.Draft202012Validator({"$ref": ref}, registry=api.openapi.registry)
    assert v.is_valid({"records": [{"pk": "a", "value": "b"}]})
    assert v.is_valid(
        {"records": [{"op": "delete", "pk": "a", "sk": "s", "ts": 5}], "ack": "applied"}
    )
    assert not v.is_valid({"records": [{"op": "upsert", "pk": "a"}]})
    assert not v.is_valid({"records": [{"pk": 1}]})
    assert not v.is_valid({"records": [], "ack": "later"})


def test_openapi_schemas_reject_answers_of_the_wrong_shape(api: Api) -> None:
    """The schema check every other test relies on does fail on a wrong answer."""
    path = "/v1/namespaces/x"
    good = api.get("/v1/namespaces").json()["namespaces"][:1]
    for bad in ({"namespace": {"name": 1}}, {"nothing": True}, {"namespace": None}):
        with pytest.raises(AssertionError, match="OpenAPI schema"):
            api.openapi.validate("GET", path, 200, bad)
    with pytest.raises(AssertionError, match="does not list"):
        api.openapi.validate("GET", path, 418, {})
    assert api.openapi.validate("GET", "/v1/namespaces", 200, {"namespaces": good})
    assert api.openapi.validated > 0


def test_head_answers_the_get_headers_without_a_body(api: Api, table: Table) -> None:
    table.put("p", "s", "v")
    for path in ("/healthz", "/openapi.json", f"{table.path}/rows/p", table.path):
        got = api.http.get(path)
        head = api.http.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        assert head.headers["content-type"] == got.headers["content-type"]


# -- /metrics --------------------------------------------------------------------

_SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\]|\\.)*\",?)*)\})?"
    r" (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|Inf|NaN|\+Inf|-Inf))"
    r"(?: -?\d+)?"
)
_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\]|\\.)*)\"")

Sample = tuple[str, dict[str, str], float]


def parse_prometheus(text: str) -> tuple[dict[str, str], list[Sample]]:
    """Parse Prometheus text format 0.0.4 strictly: (types by family, samples)."""
    types: dict[str, str] = {}
    samples: list[Sample] = []
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert parts[3] in {"counter", "gauge", "histogram", "summary", "untyped"}, line
                assert parts[2] not in types, f"TYPE given twice: {line}"
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE.fullmatch(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(_LABEL.findall(m["labels"] or ""))
        raw = m["value"]
        value = math.inf if raw in ("Inf", "+Inf") else float(raw)
        name = m["name"]
        family = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert name in types or family in types or name.removesuffix("_total") in types, (
            f"sample of an undeclared metric: {line!r}"
        )
        samples.append((name, labels, value))
    return types, samples


def _metrics(api: Api) -> tuple[dict[str, str], list[Sample]]:
    resp = api.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "version=0.0.4" in resp.headers["content-type"]
    return parse_prometheus(resp.text)


def _find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


def test_metrics_is_prometheus_text_format(api: Api) -> None:
    types, samples = _metrics(api)
    assert types["mussel_requests_total"] == "counter"
    assert types["mussel_request_duration_seconds"] == "histogram"
    assert samples


def test_metrics_count_requests_by_namespace_table_and_operation(api: Api, table: Table) -> None:
    for i in range(3):
        assert table.write({"pk": f"p{i}", "value": "v"}).status_code == 200
    assert table.row("p0").status_code == 200
    assert table.row("p1").status_code == 200
    assert table.multi_get({"keys": [{"pk": "p0"}]}).status_code == 200
    assert table.scan().status_code == 200
    _, samples = _metrics(api)
    mine = _find(samples, "mussel_requests_total", namespace=table.ns, table=table.name)
    by_op = {s[1]["operation"]: s[2] for s in mine if s[1].get("code") == "200"}
    assert by_op.get("write") == 3, by_op
    assert by_op.get("read_row") == 2, by_op
    assert by_op.get("get") == 1, by_op
    assert by_op.get("scan") == 1, by_op


def test_metrics_latency_histogram_by_namespace_table_and_operation(api: Api, table: Table) -> None:
    for i in range(4):
        assert table.write({"pk": f"p{i}", "value": "v"}).status_code == 200
    _, samples = _metrics(api)
    labels = {"namespace": table.ns, "table": table.name, "operation": "write"}
    buckets = _find(samples, "mussel_request_duration_seconds_bucket", **labels)
    assert buckets, "no histogram buckets for the table's writes"
    les = [float(s[1]["le"].replace("+Inf", "inf")) for s in buckets]
    assert les == sorted(les) and les[-1] == math.inf
    counts = [s[2] for s in buckets]
    assert counts == sorted(counts), "bucket counts must be cumulative"
    (count,) = _find(samples, "mussel_request_duration_seconds_count", **labels)
    (total,) = _find(samples, "mussel_request_duration_seconds_sum", **labels)
    assert count[2] == counts[-1] == 4
    assert total[2] > 0


def test_metrics_label_client_errors_with_their_operation(api: Api, table: Table) -> None:
    resp = table.write({"pk": "p", "op": "upsert"})
    assert resp.status_code == 400
    resp = table.row("p", {"sk": "absent"})
    assert resp.status_code == 404
    _, samples = _metrics(api)
    mine = _find(samples, "mussel_requests_total", namespace=table.ns, table=table.name)
    got = {(s[1]["operation"], s[1]["code"]): s[2] for s in mine}
    assert got.get(("write", "400")) == 1, got
    assert got.get(("read_row", "404")) == 1, got


def test_metrics_report_replay_lag(api: Api, table: Table) -> None:
    table.put("p", "s", "v")
    types, samples = _metrics(api)
    lag = [name for name in types if name.startswith("mussel_replay_") and "lag" in name]
    assert lag, f"no replay lag metric in {sorted(types)}"
    lag_samples = [s for s in samples if s[0] in lag]
    assert lag_samples
    assert all(s[2] >= 0 for s in lag_samples)
    (staleness,) = _find(samples, "mussel_replay_staleness_seconds")
    assert staleness[2] >= 0


def test_metrics_do_not_grow_series_for_unknown_names(api: Api) -> None:
    for i in range(5):
        assert api.get(f"/v1/namespaces/ghost-{i}/tables/t/rows/p").status_code == 404
    _, samples = _metrics(api)
    assert not [s for s in samples if s[1].get("namespace", "").startswith("ghost-")]


# -- /dashboard --------------------------------------------------------------------


def test_dashboard_page_and_files_are_served_from_the_package(api: Api) -> None:
    page = api.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for src in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page.text):
        asset = api.get(src)
        assert asset.status_code == 200 and asset.content, src
        assert asset.headers["content-type"].startswith(("text/javascript", "text/css"))
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    missing = api.get("/dashboard/static/nope.js")
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    assert api.get("/dashboard/static/..%2Fapp.py").status_code == 404
    assert api.request("POST", "/dashboard").status_code == 405


def test_dashboard_data_reuses_the_api_s_views(api: Api, table: Table) -> None:
    table.put("p", "s", "v")
    assert table.row("p").status_code == 200
    data = api.get("/dashboard/data.json").json()  # Api.check: the OpenAPI schema holds
    names = {ns["name"]: ns for ns in data["namespaces"]}
    assert names[table.ns] == api.get(f"/v1/namespaces/{table.ns}").json()["namespace"]
    tables = {(t["namespace"], t["name"]): t for t in data["tables"]}
    assert tables[(table.ns, table.name)]["max_versions"] == 3
    assert any(h["namespace"] == table.ns and h["pk"] == "p" for h in data["hot_keys"])
    assert data["replay"]["lag_records"] >= 0 and data["sample_interval_s"] > 0
    history = data["history"]
    assert history["t"], "the owner samples at start"
    assert all(len(v) == len(history["t"]) for v in history["series"].values())
    assert "reads_per_s" in history["series"]
    assert api.get("/dashboard", params={"refresh": "0.5"}).status_code == 200
    for refresh in ("0", "nan", "x", "1e9"):
        resp = api.get("/dashboard", params={"refresh": refresh})
        assert resp.status_code == 400 and error_code(resp) == "invalid_request", refresh
    bad = api.get("/dashboard/data.json", params={"x": "1"})
    assert bad.status_code == 400 and error_code(bad) == "invalid_request"
