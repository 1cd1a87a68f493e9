"""Core-engine benchmarks (issue: core engine), side by side in one run.

* point get through the embedded API vs raw rocksdict ``get`` on the same data;
* durable writes, batches of 100 from 8 threads, vs PostgreSQL batched upserts;
* replay lag p99 at half the measured durable write rate.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
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


def _median_of(reps: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in reps)


def point_gets(
    root: Path, n_keys: int = 200_000, n_gets: int = 20_000, reps: int = 15
) -> dict[str, Any]:
    """Gets/s: raw rocksdict, the Store (eventual), the Store (strong).

    ``reps`` rounds of ``n_gets`` random gets each, each round timing the three one
    after the other in a rotating order (so none is always first or last) on the same
    keys; every round reads other keys. The figures are the medians over the rounds and
    each ratio the median of the rounds' own ratios: a round's three figures, a fraction
    of a second apart, share the machine's state of the moment (the machine is shared),
    and a disturbed round moves a median little.
    """
    with Store.open(root / "reads", CONFIG) as store:
        store.put_namespace("bench")
        _load(store, n_keys)
        store.backend.db.flush()  # type: ignore[attr-defined]
        rng = random.Random(7)
        all_pks = [b"user%09d" % rng.randrange(n_keys) for _ in range(n_gets * reps)]
        table_id = store.table_info("bench", "reads").id
        all_raw = [data_key(table_id, pk, b"profile", 1) for pk in all_pks]
        db = store.backend.db  # type: ignore[attr-defined]
        for k in all_raw:  # warm the block cache: no round pays for the others' misses
            db.get(k)
        pks: list[bytes] = []
        raw_keys: list[bytes] = []

        def raw() -> None:
            get = db.get
            for k in raw_keys:
                get(k)

        def embedded(level: str) -> Callable[[], None]:
            def gets() -> None:
                get = store.get
                for pk in pks:
                    get("bench", "reads", pk, b"profile", consistency=level)  # type: ignore[arg-type]

            return gets

        figures = {"raw": raw, "eventual": embedded("eventual"), "strong": embedded("strong")}
        order = list(figures)
        rounds: list[dict[str, float]] = []
        for i in range(reps):
            pks[:] = all_pks[i * n_gets : (i + 1) * n_gets]
            raw_keys[:] = all_raw[i * n_gets : (i + 1) * n_gets]
            rates: dict[str, float] = {}
            for name in order[i % 3 :] + order[: i % 3]:
                t0 = time.perf_counter()
                figures[name]()
                rates[name] = n_gets / (time.perf_counter() - t0)
            rates["eventual_vs_raw"] = rates["eventual"] / rates["raw"]
            rates["strong_vs_raw"] = rates["strong"] / rates["raw"]
            rounds.append(rates)
        # sanity: the data is really there
        assert store.get("bench", "reads", pks[0], b"profile")[0].value == VALUE
    return {
        "keys": n_keys,
        "gets": n_gets,
        "reps": reps,
        "raw_rocksdict_gets_per_s": _median_of(rounds, "raw"),
        "eventual_gets_per_s": _median_of(rounds, "eventual"),
        "strong_gets_per_s": _median_of(rounds, "strong"),
        "eventual_vs_raw": _median_of(rounds, "eventual_vs_raw"),
        "strong_vs_raw": _median_of(rounds, "strong_vs_raw"),
        "rounds": rounds,
    }


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


def run(seconds: float = 5.0, reps: int = 3, only: str | None = None) -> dict[str, Any]:
    """The core section. Durable writes and PostgreSQL's upserts are measured in
    ``reps`` pairs, alternating which goes first; the figures are the medians and the
    ratio the median of the pairs' own ratios. Replay lag: once, at half the median rate.

    ``only="gets"`` runs only the point gets, ``only="writes"`` only the rest (for A/B
    runs of one part; the full section runs both).
    """
    if only not in (None, "gets", "writes"):
        raise ValueError(f"only must be 'gets' or 'writes', not {only!r}")
    root = Path(tempfile.mkdtemp(prefix="mussel-bench-"))
    try:
        results: dict[str, Any] = {}
        if only != "writes":
            results["point_get"] = point_gets(root)
        if only == "gets":
            return results
        try:
            from bench.peers.postgres import PostgresPeer
        except ImportError:
            PostgresPeer = None  # type: ignore[assignment,misc]
        with contextlib.ExitStack() as stack:
            pg = None
            if PostgresPeer is not None:
                pg = stack.enter_context(PostgresPeer(root / "pg"))
                pg.setup_cells_table()
            pairs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
            for i in range(reps):
                ours: dict[str, Any] = {}
                theirs: dict[str, Any] | None = None
                for side in ("mussel", "postgres") if i % 2 == 0 else ("postgres", "mussel"):
                    if side == "mussel":
                        ours = durable_writes(root, seconds=seconds)
                    elif pg is not None:
                        theirs = pg.upsert_rate(threads=8, batch=100, seconds=seconds)
                pairs.append((ours, theirs))
        rates = [ours["records_per_s"] for ours, _ in pairs]
        writes = min(
            (ours for ours, _ in pairs),
            key=lambda w: abs(w["records_per_s"] - statistics.median(rates)),
        )
        results["durable_writes"] = {
            **writes,
            "reps": rates,
            "records_per_s": statistics.median(rates),
        }
        if pg is None:
            results["postgres"] = None
        else:
            pg_rates = [theirs["records_per_s"] for _, theirs in pairs if theirs is not None]
            results["postgres"] = {
                **pairs[0][1],
                "reps": pg_rates,
                "records_per_s": statistics.median(pg_rates),
            }
            results["writes_vs_postgres"] = statistics.median(
                ours["records_per_s"] / theirs["records_per_s"]
                for ours, theirs in pairs
                if theirs is not None
            )
            results["writes_vs_postgres_reps"] = [
                ours["records_per_s"] / theirs["records_per_s"]
                for ours, theirs in pairs
                if theirs is not None
            ]
        results["replay_lag"] = durable_writes(
            root, seconds=seconds, rate=results["durable_writes"]["records_per_s"] / 2
        )
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import json
    import sys

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n_reps = [int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--reps=")]
    parts = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--only=")]
    print(
        json.dumps(
            run(float(args[0]) if args else 5.0, *n_reps, only=parts[-1] if parts else None),
            indent=2,
        )
    )
