"""Core-engine benchmarks (issue: core engine), side by side in one run.

* point get through the embedded API vs raw rocksdict ``get`` on the same data;
* durable writes, batches of 100 from 8 threads, vs PostgreSQL batched upserts;
* replay lag p99 at half the measured durable write rate.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mussel import Put, Store
from mussel.codec.keys import data_key
from mussel.engine import StoreConfig
from mussel.storage.rocksdb import RocksConfig

CONFIG = StoreConfig(rocks=RocksConfig(block_cache_bytes=2 << 30))
VALUE = b"v" * 100


def _load(store: Store, n: int) -> None:
    t = store.put_table("bench", "reads")
    batch: list[Put] = []
    for i in range(n):
        batch.append(Put(b"user%09d" % i, b"profile", VALUE, 1))
        if len(batch) == 1000:
            t.write(batch)
            batch = []
    if batch:
        t.write(batch, ack="applied")
    else:
        t.put(b"user%09d" % 0, b"profile", VALUE, ts=1, ack="applied")


def point_gets(root: Path, n_keys: int = 200_000, n_gets: int = 200_000) -> dict[str, Any]:
    """Gets/s: raw rocksdict, the Store (eventual), the Store (strong)."""
    with Store.open(root / "reads", CONFIG) as store:
        store.put_namespace("bench")
        _load(store, n_keys)
        store.backend.db.flush()  # type: ignore[attr-defined]
        rng = random.Random(7)
        pks = [b"user%09d" % rng.randrange(n_keys) for _ in range(n_gets)]
        table_id = store.table_info("bench", "reads").id
        raw_keys = [data_key(table_id, pk, b"profile", 1) for pk in pks]
        db = store.backend.db  # type: ignore[attr-defined]
        for k in raw_keys[:20000]:  # warm the block cache
            db.get(k)
        out: dict[str, Any] = {"keys": n_keys, "gets": n_gets}
        for _ in range(2):  # interleave to share the machine's noise
            t0 = time.perf_counter()
            for k in raw_keys:
                db.get(k)
            raw = n_gets / (time.perf_counter() - t0)
            for level in ("eventual", "strong"):
                t0 = time.perf_counter()
                for pk in pks:
                    store.get("bench", "reads", pk, b"profile", consistency=level)  # type: ignore[arg-type]
                out.setdefault(f"{level}_gets_per_s", []).append(
                    n_gets / (time.perf_counter() - t0)
                )
            out.setdefault("raw_rocksdict_gets_per_s", []).append(raw)
        for key in ("raw_rocksdict_gets_per_s", "eventual_gets_per_s", "strong_gets_per_s"):
            out[key] = max(out[key])
        out["eventual_vs_raw"] = out["eventual_gets_per_s"] / out["raw_rocksdict_gets_per_s"]
        out["strong_vs_raw"] = out["strong_gets_per_s"] / out["raw_rocksdict_gets_per_s"]
        # sanity: the data is really there
        assert store.get("bench", "reads", pks[0], b"profile")[0].value == VALUE
    return out


def durable_writes(
    root: Path,
    *,
    threads: int = 8,
    batch: int = 100,
    seconds: float = 5.0,
    rate: float | None = None,
) -> dict[str, Any]:
    """Records/s acknowledged durable, from ``threads`` writers; optional total rate cap.

    With ``rate`` set, also measures replay lag: a prober notes the log's end offsets
    every 2 ms and how long the replayer takes to apply up to them.
    """
    path = root / f"writes-{time.monotonic_ns()}"
    with Store.open(path, CONFIG) as store:
        store.put_namespace("bench")
        table = store.put_table("bench", "writes")
        stop = time.perf_counter() + seconds
        counts = [0] * threads
        lags_ms: list[float] = []

        def writer(w: int) -> None:
            seq = 0
            per_thread = None if rate is None else rate / threads
            start = time.perf_counter()
            while time.perf_counter() < stop:
                table.write([Put(b"w%d-%d" % (w, seq + i), b"s", VALUE) for i in range(batch)])
                seq += batch
                counts[w] = seq
                if per_thread is not None:
                    ahead = seq / per_thread - (time.perf_counter() - start)
                    if ahead > 0:
                        time.sleep(ahead)

        def prober() -> None:
            wm = store.replayer.watermark
            while time.perf_counter() < stop:
                target = store.log.end_offsets()
                t0 = time.perf_counter()
                if wm.wait(target, 10.0):
                    lags_ms.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.002)

        workers = [threading.Thread(target=writer, args=(w,)) for w in range(threads)]
        probe = threading.Thread(target=prober) if rate is not None else None
        t0 = time.perf_counter()
        for th in workers:
            th.start()
        if probe:
            probe.start()
        for th in workers:
            th.join()
        elapsed = time.perf_counter() - t0
        if probe:
            probe.join()
        total = sum(counts)
        out: dict[str, Any] = {
            "threads": threads,
            "batch": batch,
            "records": total,
            "records_per_s": total / elapsed,
        }
        if lags_ms:
            lags_ms.sort()
            out["replay_lag_p50_ms"] = statistics.median(lags_ms)
            out["replay_lag_p99_ms"] = lags_ms[int(len(lags_ms) * 0.99) - 1]
            out["lag_samples"] = len(lags_ms)
    shutil.rmtree(path, ignore_errors=True)
    return out


def run(seconds: float = 5.0) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="mussel-bench-"))
    try:
        results: dict[str, Any] = {"point_get": point_gets(root)}
        writes = durable_writes(root, seconds=seconds)
        results["durable_writes"] = writes
        results["replay_lag"] = durable_writes(
            root, seconds=seconds, rate=writes["records_per_s"] / 2
        )
        try:
            from bench.peers.postgres import PostgresPeer
        except ImportError:
            results["postgres"] = None
        else:
            with PostgresPeer(root / "pg") as pg:
                pg.setup_cells_table()
                results["postgres"] = pg.upsert_rate(threads=8, batch=100, seconds=seconds)
            results["writes_vs_postgres"] = (
                writes["records_per_s"] / results["postgres"]["records_per_s"]
            )
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import json

    root = Path(tempfile.mkdtemp(prefix="mussel-bench-"))
    print(json.dumps(point_gets(root), indent=2))
    print(json.dumps(durable_writes(root, seconds=3), indent=2))
    shutil.rmtree(root, ignore_errors=True)
