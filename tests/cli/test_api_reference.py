"""docs/api.md is the server's OpenAPI document rendered (``MUSSEL_UPDATE_DOCS=1``
rewrites it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mussel.cli.api_reference import render
from mussel.dispatch.openapi import openapi_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_docs_api_md_is_the_rendered_openapi_document() -> None:
    expected = render()
    if os.environ.get("MUSSEL_UPDATE_DOCS") and (not DOC.exists() or DOC.read_text() != expected):
        DOC.write_text(expected)
    assert DOC.read_text() == expected, (
        "docs/api.md is not what /openapi.json says; MUSSEL_UPDATE_DOCS=1 rewrites it"
    )


def test_every_operation_is_in_the_doc_with_its_summary() -> None:
    doc = json.loads(openapi_document())
    text = render()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                assert f"## `{method.upper()} {path}`" in text
                assert op["summary"].strip()
