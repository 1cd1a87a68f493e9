from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mussel.storage.base import Backend
from mussel.storage.memory import MemoryBackend
from mussel.storage.rocksdb import RocksBackend, RocksConfig

SMALL = RocksConfig(block_cache_bytes=8 << 20, write_buffer_bytes=4 << 20)


def make_backend(kind: str, path: Path) -> Backend:
    if kind == "memory":
        return MemoryBackend()
    return RocksBackend(path / "db", SMALL)


@pytest.fixture(params=["memory", "rocks"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = make_backend(request.param, tmp_path)
    yield b
    b.close()
