from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mussel.clock import ManualClock
from mussel.engine import Store, StoreConfig
from mussel.storage.rocksdb import RocksConfig

CONFIG = StoreConfig(
    partitions=4,
    rocks=RocksConfig(block_cache_bytes=8 << 20, write_buffer_bytes=4 << 20),
    strong_read_timeout_s=2.0,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    if request.param == "memory":
        s = Store.memory(CONFIG, clock=clock)
    else:
        s = Store.open(tmp_path / "store", CONFIG, clock=clock)
    s.put_namespace("ns")
    yield s
    s.close()
