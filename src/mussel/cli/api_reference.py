"""docs/api.md, generated from the server's own ``/openapi.json``.

One section per path: each operation's summary, description, query parameters,
request body schema and answers (status, schema). The document is what
``openapi_document()`` returns, so docs/api.md describes what the server really
accepts and answers; a test keeps the file equal to ``render()``.
"""

from __future__ import annotations

import json
from typing import Any

from mussel.dispatch.openapi import openapi_document

__all__ = ["render"]

_HEAD = """# HTTP API v1 reference

Generated from the server's `GET /openapi.json` (`mussel.cli.api_reference`; a test
keeps this file equal to it). Semantics are SPEC.md's: §4 for the API, §5 for errors.
Bodies are JSON, or msgpack with `Content-Type`/`Accept: application/msgpack`. Every
error is `{"error": {"code": ..., "message": ...}}` (`ErrorBody`). With `--auth token`
every operation but the health endpoints, `/openapi.json` and the dashboard's sign-in
takes a bearer token and may answer 401 or 403.
"""


def _schema_name(content: dict[str, Any] | None) -> str:
    if not content:
        return ""
    for media, body in content.items():
        schema = body.get("schema", {})
        ref = schema.get("$ref")
        if ref:
            return f"`{ref.rsplit('/', 1)[-1]}`"
        return f"`{media}`"
    return ""


def _param(p: dict[str, Any]) -> str:
    schema = p.get("schema", {})
    kind = schema.get("type", "")
    if "enum" in schema:
        kind = " \\| ".join(f"`{v}`" for v in schema["enum"])
    desc = " ".join(str(p.get("description", "")).split()).replace("|", "\\|")
    return f"| `{p['name']}` | {p['in']} | {kind} | {desc} |"


def render() -> str:
    """docs/api.md's text."""
    doc = json.loads(openapi_document())
    out = [_HEAD]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            out += [f"## `{method.upper()} {path}`", "", op["summary"], ""]
            if op.get("description"):
                out += [" ".join(op["description"].split()), ""]
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            if params:
                out += ["| parameter | in | type | meaning |", "| --- | --- | --- | --- |"]
                out += [_param(p) for p in params] + [""]
            body = op.get("requestBody")
            if body:
                out += [f"Body: {_schema_name(body.get('content'))}", ""]
            out += ["| answer | body | meaning |", "| --- | --- | --- |"]
            for status, answer in sorted(op["responses"].items()):
                meaning = " ".join(str(answer.get("description", "")).split())
                out.append(f"| {status} | {_schema_name(answer.get('content'))} | {meaning} |")
            out.append("")
    names = sorted(doc["components"]["schemas"])
    out += ["## Schemas", "", "The bodies' JSON schemas are in `/openapi.json` under"]
    out += ["`components.schemas`: " + ", ".join(f"`{n}`" for n in names) + ".", ""]
    return "\n".join(out)
