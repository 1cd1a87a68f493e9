from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mussel.storage.base import Backend
from mussel.storage.memory import MemoryBackend
from mussel.storage.rocksdb import RocksBackend, RocksConfig
from mussel.storage.sql import SqlBackend

SMALL = RocksConfig(block_cache_bytes=8 << 20, write_buffer_bytes=4 << 20)


def make_backend(kind: str, path: Path, pg_url: str | None = None) -> Backend:
    if kind == "memory":
        return MemoryBackend()
    if kind == "sql":
        assert pg_url is not None
        return SqlBackend(pg_url, pool_size=2)
    return RocksBackend(path / "db", SMALL)


@pytest.fixture(params=["memory", "rocks", "sql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = request.getfixturevalue("pg_url") if request.param == "sql" else None
    b = make_backend(request.param, tmp_path, url)
    yield b
    b.close()
