"""Sweep scans answered by another process's RocksDB secondary (``expire/remote.py``)."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mussel.engine import Store, StoreConfig
from mussel.expire import ExpirationService, ExpireConfig, RemoteScanner, ScanServer
from mussel.log.shared import SharedState
from mussel.model import Put
from mussel.storage.base import SweepPage
from mussel.storage.rocksdb import RocksConfig

CFG = StoreConfig(partitions=2, rocks=RocksConfig(wal=True))


@pytest.fixture
def scan_server(tmp_path: Path) -> Iterator[tuple[Store, Store, str]]:
    owner = Store.open(tmp_path, CFG)
    state = SharedState.create(tmp_path / "run" / "state", 2, 1)
    owner.publish_to(state)
    owner.put_namespace("ns")
    owner.put_table("ns", "t", {"max_versions": 1})
    follower = Store.open_follower(tmp_path, SharedState.attach(state.path), 0, CFG)
    follower.replayer.start()
    address = f"\0mussel-test-{secrets.token_hex(4)}"
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            loop.create_unix_server(lambda: ScanServer(follower.backend), address)
        )
        started.set()
        loop.run_forever()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait()
    yield owner, follower, address
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    follower.close()
    owner.close()


def test_a_sweep_whose_scans_run_in_the_follower(
    scan_server: tuple[Store, Store, str],
) -> None:
    owner, _follower, address = scan_server
    owner.write(
        "ns",
        "t",
        [Put(f"k{i:03d}", "s", "v", ts=ts) for i in range(200) for ts in (1, 2, 3)],
        ack="applied",
    )
    local: list[SweepPage] = []

    def fallback(*args: object, **kw: object) -> SweepPage:
        page = owner.backend.sweep_scan(*args, **kw)  # type: ignore[arg-type]
        local.append(page)
        return page

    scanner = RemoteScanner([address], fallback)
    svc = ExpirationService(owner, ExpireConfig(interval_s=None, step_versions=97), scan=scanner)
    try:
        stats = svc.run("ns", "t")
    finally:
        svc.stop()
    assert (stats.examined, stats.removed) == (600, 400)
    assert scanner.remote_scans > 3 and scanner.local_scans == 0 and not local
    assert owner.table_stats("ns", "t").approx_cells == 200


def test_the_owner_scans_itself_when_no_follower_answers(tmp_path: Path) -> None:
    with Store.open(tmp_path, CFG) as owner:
        owner.put_namespace("ns")
        owner.put_table("ns", "t", {"max_versions": 1})
        owner.write("ns", "t", [Put("a", "s", "v", ts=ts) for ts in (1, 2)], ack="applied")
        scanner = RemoteScanner(["\0mussel-nobody-listens"], owner.backend.sweep_scan)
        svc = ExpirationService(owner, ExpireConfig(interval_s=None), scan=scanner)
        try:
            assert svc.run("ns", "t").removed == 1
        finally:
            svc.stop()
        assert scanner.local_scans == 1 and scanner.remote_scans == 0
