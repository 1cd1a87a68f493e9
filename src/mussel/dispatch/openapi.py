"""``GET /openapi.json``: the OpenAPI 3.1 document of HTTP API v1, from the msgspec types.

Request schemas come from ``bodies.py`` (what the server decodes with), answer
schemas from ``responses.py``. Keys and values are described as JSON strings
(UTF-8 text, or base64 with ``encoding=base64``); ``application/msgpack`` carries
the same shapes with binary keys and values. Every body and answer of ``/v1`` is
listed in both media types: the request's Content-Type picks how its body is read
and its Accept picks the answer's (content negotiation, which OpenAPI expresses by
the media types of an answer, not by an ``Accept`` parameter).

``tests/contract/test_schemathesis.py`` fuzzes the server against this document.
"""

from __future__ import annotations

from typing import Any

import msgspec

from mussel.dispatch import bodies, responses
from mussel.limits import TS_MAX, TS_MIN

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"
NAME_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$"
MEDIA_TYPES = ("application/json", "application/msgpack")


def _schemas() -> dict[str, Any]:
    types = [
        bodies.WriteBody[str],
        bodies.GetBody[str],
        bodies.NamespaceBody,
        bodies.TableBody[str],
        bodies.BulkLoadBody,
        responses.ErrorBody,
        responses.JobReply,
        responses.JobsReply,
        responses.NamespaceReply,
        responses.NamespacesReply,
        responses.TableReply,
        responses.TablesReply,
        responses.ExpireReply,
        responses.TokensReply,
        responses.HotKeysReply,
        responses.TokenCreated,
        responses.Revoked,
        bodies.TokenBody,
        responses.RowReply,
        responses.MultiGetReply,
        responses.ScanReply,
        responses.Written,
        responses.Deleted,
        responses.Health,
        responses.DashboardReply,
        bodies.BackupBody,
        responses.BackupReply,
    ]
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    # What msgspec cannot say: a put carries a value, a delete none; a pk is not empty.
    record = components["WriteRecord_str_"]
    record["properties"]["pk"]["minLength"] = 1
    record["if"] = {"properties": {"op": {"const": "delete"}}, "required": ["op"]}
    record["then"] = {"properties": {"value": {"type": "null"}}}
    record["else"] = {"properties": {"value": {"type": "string"}}, "required": ["value"]}
    components["GetKey_str_"]["properties"]["pk"]["minLength"] = 1
    return components


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _content(schema: dict[str, Any], media_types: tuple[str, ...] = MEDIA_TYPES) -> dict[str, Any]:
    return {media_type: {"schema": schema} for media_type in media_types}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_STALENESS = {
    "Mussel-Staleness-Ms": {
        "description": "on eventual reads: how far behind acknowledged writes the answer may be",
        "required": False,
        "schema": {"type": "integer", "minimum": 0},
    }
}


def _answers(
    ok: str,
    *errors: int,
    ok_media: tuple[str, ...] = MEDIA_TYPES,
    ok_headers: dict[str, Any] | None = None,
    ok_status: int = 200,
) -> dict[str, Any]:
    """The answers of an operation: ``ok_status`` with ``ok``, and the SPEC §5 envelope for
    400 and ``errors``, each in JSON or msgpack as the request's Accept asks."""
    good = str(ok_status)
    out: dict[str, Any] = {good: {"description": "OK", "content": _content(_ref(ok), ok_media)}}
    if ok_headers:
        out[good]["headers"] = ok_headers
    for status in (400, *errors):
        answer = {"description": "error (SPEC §5)", "content": _content(_ref("ErrorBody"))}
        if status in (429, 503):
            answer["headers"] = _RETRY_AFTER
        out[str(status)] = answer
    return out


def _path_param(name: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, typ: str = "string", **keywords: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": typ, **keywords}
    return {"name": name, "in": "query", "required": False, "schema": schema}


_NS = _path_param("ns", NAME_PATTERN)
_TABLE = _path_param("table", NAME_PATTERN)
_ENCODING = _query("encoding", enum=["base64"])
_CONSISTENCY = _query("consistency", enum=["strong", "eventual"])
_TS = {"minimum": TS_MIN, "maximum": TS_MAX}
_READ = [
    _query("min_ts", "integer", **_TS),
    _query("max_ts", "integer", **_TS),
    _query("versions", "integer", minimum=1),
    _query("limit", "integer", minimum=1),
    _query("cursor"),
    _CONSISTENCY,
    _ENCODING,
]


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _content(_ref(name))}


_SUMMARIES = {
    ("GET", "/healthz"): "Liveness: 200 while the process serves HTTP.",
    (
        "GET",
        "/readyz",
    ): "Readiness: 200 when the process can serve; 503 while starting or draining.",
    ("GET", "/metrics"): "Prometheus metrics (text format).",
    ("GET", "/v1/namespaces"): "List namespaces.",
    ("GET", "/v1/namespaces/{ns}"): "Describe a namespace, with its usage against its quotas.",
    ("PUT", "/v1/namespaces/{ns}"): "Create a namespace, or change its options and quotas.",
    ("DELETE", "/v1/namespaces/{ns}"): "Drop an empty namespace.",
    ("GET", "/v1/namespaces/{ns}/tables"): "List the namespace's tables.",
    ("GET", "/v1/namespaces/{ns}/tables/{table}"): "Describe a table: options, stats, expiration.",
    ("PUT", "/v1/namespaces/{ns}/tables/{table}"): "Create a table, or change its options.",
    ("DELETE", "/v1/namespaces/{ns}/tables/{table}"): "Drop a table and its data.",
    ("POST", "/v1/namespaces/{ns}/tables/{table}/write"): "Write a batch of puts and deletes.",
    ("GET", "/v1/namespaces/{ns}/tables/{table}/rows/{pk}"): "Read a row, a cell, an sk prefix "
    "or range, versions, a time range; paginated.",
    ("POST", "/v1/namespaces/{ns}/tables/{table}/get"): "Multi-get: many rows or cells at once.",
    ("GET", "/v1/namespaces/{ns}/tables/{table}/hotkeys"): "The table's busiest pks right now.",
    ("POST", "/v1/namespaces/{ns}/tables/{table}/expire"): "Queue an expiration run of the table.",
    ("GET", "/v1/namespaces/{ns}/tables/{table}/scan"): "Scan the table in pk order; paginated.",
    ("POST", "/v1/namespaces/{ns}/tables/{table}/bulkloads"): "Start a bulk load of Parquet "
    "files (merge, replace or insert_ignore).",
    ("GET", "/v1/jobs"): "List bulk-load jobs.",
    ("GET", "/v1/jobs/{id}"): "A bulk-load job's state and progress.",
    ("POST", "/v1/jobs/{id}/cancel"): "Cancel a bulk-load job.",
    ("GET", "/v1/tokens"): "List tokens (never their secrets).",
    ("POST", "/v1/tokens"): "Create a token; its secret is shown once.",
    ("DELETE", "/v1/tokens/{id}"): "Revoke a token.",
    ("GET", "/openapi.json"): "This document.",
    ("GET", "/dashboard"): "The web dashboard.",
    ("GET", "/dashboard/data.json"): "What the dashboard shows, as JSON.",
    ("GET", "/dashboard/static/{name}"): "The dashboard's scripts and styles.",
    ("POST", "/dashboard/login"): "Sign in to the dashboard with an admin token (sets a cookie).",
    ("POST", "/v1/admin/backup"): "Back up an embedded server while it serves.",
}
"""A one-line summary of every operation (``/openapi.json``'s ``summary``; docs/api.md)."""


def _summarise(paths: dict[str, Any]) -> None:
    """Give every operation its ``_SUMMARIES`` line (a copy: paths may share items)."""
    for path, item in paths.items():
        for method in list(item):
            if method != "parameters":
                summary = _SUMMARIES.get((method.upper(), path))
                if summary is None:
                    raise AssertionError(f"no summary for {method.upper()} {path}")
                item[method] = {"summary": summary, **item[method]}


def openapi_document() -> bytes:
    health = {"get": {"responses": _answers("Health", 503, ok_media=("application/json",))}}
    paths: dict[str, Any] = {
        "/healthz": health,
        "/readyz": {"get": dict(health["get"])},
        "/metrics": {
            "get": {
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                }
            }
        },
        "/v1/namespaces": {"get": {"responses": _answers("NamespacesReply")}},
        "/v1/namespaces/{ns}": {
            "parameters": [_NS],
            "get": {"responses": _answers("NamespaceReply", 404)},
            "put": {
                "requestBody": _body("NamespaceBody", required=False),
                "responses": _answers("NamespaceReply", 413),
            },
            "delete": {"responses": _answers("Deleted", 404, 409)},
        },
        "/v1/namespaces/{ns}/tables": {
            "parameters": [_NS],
            "get": {"parameters": [_ENCODING], "responses": _answers("TablesReply", 404)},
        },
        "/v1/namespaces/{ns}/tables/{table}": {
            "parameters": [_NS, _TABLE],
            "get": {"parameters": [_ENCODING], "responses": _answers("TableReply", 404)},
            "put": {
                "parameters": [_ENCODING],
                "requestBody": _body("TableBody_str_", required=False),
                "responses": _answers("TableReply", 404, 409, 413, 507),
            },
            "delete": {"responses": _answers("Deleted", 404)},
        },
        "/v1/namespaces/{ns}/tables/{table}/write": {
            "parameters": [_NS, _TABLE],
            "post": {
                "parameters": [_ENCODING],
                "requestBody": _body("WriteBody_str_"),
                "responses": _answers("Written", 404, 413, 429, 503, 507),
            },
        },
        "/v1/namespaces/{ns}/tables/{table}/rows/{pk}": {
            "parameters": [_NS, _TABLE, _path_param("pk")],
            "get": {
                "parameters": [
                    _query("sk"),
                    _query("sk_prefix"),
                    _query("sk_start"),
                    _query("sk_end"),
                    *_READ,
                ],
                "responses": _answers("RowReply", 404, 413, 429, 503, ok_headers=_STALENESS),
            },
        },
        "/v1/namespaces/{ns}/tables/{table}/get": {
            "parameters": [_NS, _TABLE],
            "post": {
                "parameters": [_ENCODING],
                "requestBody": _body("GetBody_str_"),
                "responses": _answers("MultiGetReply", 404, 413, 429, 503, ok_headers=_STALENESS),
            },
        },
        "/v1/namespaces/{ns}/tables/{table}/hotkeys": {
            "parameters": [_NS, _TABLE],
            "get": {
                "parameters": [_query("limit", "integer", minimum=1, maximum=1000), _ENCODING],
                "responses": _answers("HotKeysReply", 404),
            },
        },
        "/v1/namespaces/{ns}/tables/{table}/expire": {
            "parameters": [_NS, _TABLE],
            "post": {"responses": _answers("ExpireReply", 404, 503, ok_status=202)},
        },
        "/v1/namespaces/{ns}/tables/{table}/scan": {
            "parameters": [_NS, _TABLE],
            "get": {
                "parameters": [_query("pk_start"), _query("pk_end"), _query("pk_prefix"), *_READ],
                "responses": _answers("ScanReply", 404, 413, 429, 503, ok_headers=_STALENESS),
            },
        },
    }
    job_answers = _answers("JobReply", 404)
    paths["/v1/namespaces/{ns}/tables/{table}/bulkloads"] = {
        "parameters": [_NS, _TABLE],
        "post": {
            "requestBody": _body("BulkLoadBody"),
            "responses": {
                "202": {"description": "Accepted", "content": _content(_ref("JobReply"))},
                **{
                    k: v
                    for k, v in _answers("JobReply", 404, 409, 413, 503, 507).items()
                    if k != "200"
                },
            },
        },
    }
    paths["/v1/jobs"] = {
        "get": {"parameters": [_query("namespace")], "responses": _answers("JobsReply")}
    }
    paths["/v1/jobs/{id}"] = {"parameters": [_path_param("id")], "get": {"responses": job_answers}}
    paths["/v1/jobs/{id}/cancel"] = {
        "parameters": [_path_param("id")],
        "post": {"responses": job_answers},
    }
    paths["/v1/tokens"] = {
        "get": {"responses": _answers("TokensReply")},
        "post": {
            "requestBody": _body("TokenBody"),
            "responses": _answers("TokenCreated", 413, ok_status=201),
        },
    }
    paths["/v1/tokens/{id}"] = {
        "parameters": [_path_param("id")],
        "delete": {"responses": _answers("Revoked", 404)},
    }
    html = {"text/html": {"schema": {"type": "string"}}}
    paths["/dashboard"] = {
        "get": {
            "description": "The web dashboard (HTML). With --auth token, a browser without "
            "the sign-in cookie gets the sign-in form (401, HTML) when it accepts text/html.",
            "parameters": [
                _query(
                    "refresh",
                    "number",
                    minimum=0.5,
                    maximum=3600,
                    description=("how often the page updates, in seconds (default 2)"),
                )
            ],
            "responses": {
                "200": {"description": "the page", "content": html},
                **{k: v for k, v in _answers("ErrorBody").items() if k == "400"},
            },
        }
    }
    paths["/dashboard/data.json"] = {
        "get": {
            "description": "Everything the dashboard shows; it polls this.",
            "responses": _answers("DashboardReply"),
        }
    }
    paths["/dashboard/static/{name}"] = {
        "parameters": [_path_param("name")],
        "get": {
            "responses": {
                "200": {
                    "description": "a file of the dashboard",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                },
                "404": {"description": "no such file", "content": _content(_ref("ErrorBody"))},
            }
        },
    }
    paths["/dashboard/login"] = {
        "post": {
            "description": "The dashboard's sign-in form: a valid admin token is set as an "
            "HttpOnly cookie scoped to /dashboard, then 303 to /dashboard.",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"token": {"type": "string", "minLength": 1}},
                            "required": ["token"],
                        }
                    }
                },
            },
            "responses": {
                "303": {
                    "description": "signed in: go to /dashboard",
                    "headers": {
                        "Location": {"required": True, "schema": {"type": "string"}},
                        "Set-Cookie": {"required": True, "schema": {"type": "string"}},
                    },
                },
                "400": {"description": "error (SPEC §5)", "content": _content(_ref("ErrorBody"))},
                "401": {"description": "the token is not valid: the form again", "content": html},
                "403": {
                    "description": "the token is not an admin's: the form again",
                    "content": html,
                },
            },
        }
    }
    paths["/v1/admin/backup"] = {
        "post": {
            "description": "Embedded mode: back up the store, while it serves, into a new "
            "directory under the server's --backup-dir (400 without one, for a path outside "
            "it, and in distributed mode; 409 if the directory is not empty). Needs admin.",
            "requestBody": _body("BackupBody"),
            "responses": _answers("BackupReply", 409, 413, 503),
        }
    }
    # --auth token: every operation but the open ones may answer 401 and 403
    open_paths = {"/healthz", "/readyz", "/openapi.json", "/dashboard/login"}
    for path, item in paths.items():
        if path in open_paths:
            continue
        for method, op in item.items():
            if method == "parameters":
                continue
            op["security"] = [{}, {"bearer": []}]
            for status in ("401", "403"):
                answer = {
                    "description": "error (SPEC §5, §6)",
                    "content": _content(_ref("ErrorBody")),
                }
                if status == "401":
                    answer["headers"] = {
                        "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
                    }
                op["responses"].setdefault(status, answer)
    for status in ("401", "403"):  # a browser (Accept: text/html) gets the sign-in form
        paths["/dashboard"]["get"]["responses"][status]["content"].update(html)
    _summarise(paths)
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "Mussel HTTP API",
            "version": "1",
            "description": "Key-value store for derived data. See SPEC.md for semantics.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    return msgspec.json.encode(doc)
