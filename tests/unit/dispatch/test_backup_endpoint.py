"""``POST /v1/admin/backup`` in the request pipeline (``App``), without a server
process: where a backup may go, and who may take one. The backup under load, over
real HTTP with follower processes, is ``tests/integration/test_backup.py``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mussel.dispatch.app import App
from mussel.dispatch.http import Request, Response
from mussel.engine import Store, StoreConfig
from mussel.engine.manifest import read_manifest
from mussel.log.memory import MemoryLog
from mussel.storage.memory import MemoryBackend

CONFIG = StoreConfig(partitions=2)


def call(app: App, body: Any, headers: dict[str, str] | None = None) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request("POST", "/v1/admin/backup", b"", dict(headers or {}), raw)
    result = app(request)
    if isinstance(result, Response):
        return result
    return asyncio.run(_wait(result))


async def _wait(pending: Any) -> Response:
    resp: Response = await pending
    return resp


def error(resp: Response) -> tuple[int, str, str]:
    err = json.loads(resp.body)["error"]
    return resp.status, err["code"], err["message"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    store = Store.open(tmp_path / "data", CONFIG)
    store.put_namespace("ns")
    store.put_table("ns", "t").put("k", "s", "v")
    app = App(store)
    yield app
    app.close()
    store.close()


def test_backups_over_http_are_off_without_a_backup_dir(app: App) -> None:
    status, code, message = error(call(app, {"path": "b"}))
    assert (status, code) == (400, "invalid_request")
    assert "--backup-dir" in message


def test_a_backup_goes_inside_the_backup_dir_only(app: App, tmp_path: Path) -> None:
    app.backup_dir = tmp_path / "backups"
    for outside in ("../escape", "/etc/mussel", "", ".", "a/../..", "x\u0000y"):
        resp = call(app, {"path": outside})
        assert resp.status == 400, (outside, resp.body)
    assert not (tmp_path / "escape").exists()

    resp = call(app, {"path": "nightly/1"}, {"x-request-id": "bk-1"})
    assert resp.status == 200, resp.body
    assert ("x-request-id", "bk-1") in resp.headers
    made = json.loads(resp.body)["backup"]
    target = (tmp_path / "backups" / "nightly" / "1").resolve()
    assert made["path"] == str(target)
    assert read_manifest(target).files and made["partitions"] == 2

    status, code, _ = error(call(app, {"path": str(target)}))  # absolute, inside, not empty
    assert (status, code) == (409, "conflict")


def test_bad_bodies_are_400(app: App, tmp_path: Path) -> None:
    app.backup_dir = tmp_path / "backups"
    for body in (b"{", {"path": 3}, {"path": "b", "extra": 1}, {}):
        assert call(app, body).status == 400, body


def test_distributed_mode_answers_400_saying_whose_job_it_is(tmp_path: Path) -> None:
    store = Store(MemoryBackend(), MemoryLog(2), config=CONFIG, role="dispatcher")
    app = App(store)
    app.backup_dir = tmp_path
    try:
        status, code, message = error(call(app, {"path": "b"}))
    finally:
        store.close()
    assert (status, code) == (400, "invalid_request")
    assert "distributed mode" in message and "Kafka" in message
