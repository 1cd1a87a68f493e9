"""The log formatters, request ids and the access log's two paths."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

import mussel.observability.logging as mussel_logging
from mussel.observability.logging import AccessLog, RequestIds, configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    mussel_logging._direct.clear()  # the JSON fast path of configure_logging


def test_request_ids_keep_safe_client_ids_and_make_unique_ones() -> None:
    ids = RequestIds()
    assert ids.of("abc-1.2:x_Y") == "abc-1.2:x_Y"
    made = {ids.of(given) for given in (None, "", "has space", "x" * 129, "new\nline")}
    assert len(made) == 5 and all("-" in i and " " not in i for i in made)


@pytest.mark.parametrize("via_logging", [False, True])
def test_json_lines_are_the_same_through_both_paths(via_logging: bool) -> None:
    out = io.StringIO()
    configure_logging("json", "owner", out)
    log = logging.getLogger("mussel.access")
    if via_logging:  # a filter makes the access log go through logging itself
        log.addFilter(lambda r: True)
    try:
        AccessLog().request("rid-1", "GET", "read_row", "ns", "t", 200, 0.0012345)
    finally:
        log.filters.clear()
    line = json.loads(out.getvalue())
    assert line.pop("ts").endswith("Z") and isinstance(line.pop("pid"), int)
    assert line == {
        "level": "info",
        "logger": "mussel.access",
        "role": "owner",
        "msg": "request",
        "request_id": "rid-1",
        "method": "GET",
        "op": "read_row",
        "namespace": "ns",
        "table": "t",
        "status": 200,
        "latency_ms": 1.234,
    }


def test_text_lines_and_exceptions() -> None:
    out = io.StringIO()
    configure_logging("text", "follower-1", out)
    AccessLog().request("rid-2", "POST", "write", "ns", "t", 503, 0.5)
    assert "INFO mussel.access[follower-1] request request_id=rid-2" in out.getvalue()
    assert "status=503 latency_ms=500.0" in out.getvalue()
    out = io.StringIO()
    configure_logging("json", "owner", out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("mussel.x").exception("failed")
    line = json.loads(out.getvalue())
    assert line["level"] == "error" and "ValueError: boom" in line["exc"]
