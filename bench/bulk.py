"""Bulk-load benchmark (issue 4): Parquet on local disk -> queryable, cells/s.

``python -m bench.bulk [--cells N] [--no-postgres]``: writes N cells (default 10M) of
100-byte values as Spark-style Parquet (10 ``part-*`` files, rows in random key
order), loads them into a fresh embedded store with a ``replace`` job, checks a sample
with point reads, and reports cells/s end to end (submission to committed), the
phases, the peak RSS of this process (the store runs in it) and, sampled every 50 ms,
of it plus its children (the SST builder processes), and the latency of point
reads of another table (1-2k reads/s from a thread of the same process) without and
during the load. Then PostgreSQL
``COPY`` of the same rows (read from the same Parquet files) into a table with the
cells schema and its primary key, on the same machine, in the same run.

Results: ``bench/results/bulk.json`` (``bulk-<cells>.json`` for other sizes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mussel.bulkload import JobManager
from mussel.engine import Store, StoreConfig
from mussel.model import Put

RESULTS = Path(__file__).parent / "results"
VALUE_BYTES = 100
FILES = 10


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_source(root: Path, cells: int, seed: int = 7) -> int:
    """Spark-like output: part files + _SUCCESS, keys in random order."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    per_file = -(-cells // FILES)
    order = rng.permutation(cells)
    total = 0
    for f in range(FILES):
        ids = order[f * per_file : (f + 1) * per_file]
        if len(ids) == 0:
            break
        pk = pc.binary_join_element_wise(
            "user", pc.utf8_lpad(pa.array(ids).cast(pa.string()), 10, "0"), ""
        )
        raw = rng.integers(0, 256, size=len(ids) * VALUE_BYTES, dtype=np.uint8).tobytes()
        values = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(VALUE_BYTES), len(ids), [None, pa.py_buffer(raw)]
        ).cast(pa.binary())
        table = pa.table({"pk": pk, "sk": pa.array(["f"] * len(ids)), "value": values})
        pq.write_table(table, root / f"part-{f:05d}.snappy.parquet", row_group_size=500_000)
        total += len(ids)
    (root / "_SUCCESS").write_bytes(b"")
    return total


READ_KEYS = 100_000


def _point_reads(store: Store, stop: threading.Event, seconds: float | None) -> list[float]:
    """Latencies (s) of point reads of random keys of ``bench/reads`` until ``stop``."""
    rng = np.random.default_rng(5)
    out: list[float] = []
    end = None if seconds is None else time.perf_counter() + seconds
    while not stop.is_set() and (end is None or time.perf_counter() < end):
        k = f"r{int(rng.integers(0, READ_KEYS)):08d}"
        t = time.perf_counter()
        store.get("bench", "reads", k, "v")
        out.append(time.perf_counter() - t)
        time.sleep(0.0005)  # a steady read rate (~1-2k/s), not a saturating loop
    return out


def _tree_rss_sampler(stop: threading.Event, peak: list[int]) -> None:
    """``peak[0]``: the largest RSS (bytes) of this process plus its children (the SST
    builder processes) seen every 50 ms until ``stop``."""
    import psutil

    me = psutil.Process()
    while not stop.wait(0.05):
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        peak[0] = max(peak[0], total)


def _p(lat: list[float], q: float) -> float:
    return round(float(np.quantile(np.array(lat), q)) * 1e3, 3) if lat else float("nan")


def bench_mussel(source: Path, workdir: Path, cells: int) -> dict[str, Any]:
    store = Store.open(workdir / "store", StoreConfig())
    try:
        store.put_namespace("bench")
        store.put_table("bench", "bulk")
        store.put_table("bench", "reads")
        for i in range(0, READ_KEYS, 1000):
            batch = [Put(f"r{j:08d}", "v", b"x" * VALUE_BYTES) for j in range(i, i + 1000)]
            store.write("bench", "reads", batch, ack="applied")
        _point_reads(store, threading.Event(), 2.0)  # warm-up
        idle = _point_reads(store, threading.Event(), 5.0)
        jobs = JobManager(store, workdir / "bulk")
        stop = threading.Event()
        during: list[float] = []
        reader = threading.Thread(target=lambda: during.extend(_point_reads(store, stop, None)))
        reader.start()
        tree_peak = [0]
        sampler = threading.Thread(target=_tree_rss_sampler, args=(stop, tree_peak))
        sampler.start()
        t0 = time.perf_counter()
        job = jobs.submit("bench", "bulk", str(source), mode="replace")
        phases: dict[str, float] = {}
        last = None
        while True:
            info = jobs.get(job.id)
            if info.progress.phase != last:
                phases[info.progress.phase] = time.perf_counter() - t0
                last = info.progress.phase
            if info.state in ("committed", "failed", "cancelled"):
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        stop.set()
        reader.join()
        sampler.join()
        assert info.state == "committed", info.error
        rng = np.random.default_rng(1)
        sample = rng.integers(0, cells, 1000)
        for i in sample:
            got = store.get("bench", "bulk", f"user{int(i):010d}", "f")
            assert len(got) == 1 and len(got[0].value) == VALUE_BYTES, i
        jobs.close()
        return {
            "cells": cells,
            "seconds": round(seconds, 2),
            "cells_per_s": round(cells / seconds),
            "phase_started_at_s": {k: round(v, 2) for k, v in phases.items()},
            "peak_rss_mib": round(peak_rss_mib()),
            "peak_rss_with_builders_mib": round(tree_peak[0] / 2**20),
            "duplicates_dropped": info.progress.duplicates_dropped,
            "point_read_ms_idle": {"p50": _p(idle, 0.5), "p99": _p(idle, 0.99), "n": len(idle)},
            "point_read_ms_during_load": {
                "p50": _p(during, 0.5),
                "p99": _p(during, 0.99),
                "n": len(during),
            },
        }
    finally:
        store.close()


def bench_postgres(source: Path, workdir: Path, cells: int) -> dict[str, Any]:
    from bench.peers.postgres import PostgresPeer

    with PostgresPeer(workdir / "pg") as pg, pg.connect() as conn:
        conn.execute("SET statement_timeout = 0")  # COPY of 10M rows outlasts the peer's default
        conn.execute("DROP TABLE IF EXISTS bulk")
        conn.execute(
            "CREATE TABLE bulk (pk bytea NOT NULL, sk bytea NOT NULL, ts bigint NOT NULL,"
            " value bytea)"
        )
        t0 = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy("COPY bulk (pk, sk, ts, value) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["bytea", "bytea", "int8", "bytea"])
            ts = 1
            for part in sorted(source.glob("part-*")):
                for rb in pq.ParquetFile(part).iter_batches(batch_size=65_536):
                    pks = rb.column("pk").cast(pa.binary()).to_pylist()
                    sks = rb.column("sk").cast(pa.binary()).to_pylist()
                    for pk, sk, value in zip(pks, sks, rb.column("value").to_pylist(), strict=True):
                        copy.write_row((pk, sk, ts, value))
        copy_s = time.perf_counter() - t0
        conn.execute("ALTER TABLE bulk ADD PRIMARY KEY (pk, sk, ts)")
        seconds = time.perf_counter() - t0
        return {
            "cells": cells,
            "copy_seconds": round(copy_s, 2),
            "copy_rows_per_s": round(cells / copy_s),
            "seconds_with_primary_key": round(seconds, 2),
            "rows_per_s_with_primary_key": round(cells / seconds),
        }


def run(
    cells: int = 10_000_000, postgres: bool = True, workdir: Path | None = None
) -> dict[str, Any]:
    """The bulk section: Mussel, then PostgreSQL COPY, from the same Parquet files."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="mussel-bench-bulk-"))
    try:
        source = workdir / "source"
        t0 = time.perf_counter()
        # in a child process, so that this process's peak RSS is the load's alone
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            cells = pool.apply(write_source, (source, cells))
        gen_s = time.perf_counter() - t0
        src_bytes = sum(p.stat().st_size for p in source.iterdir())
        print(f"source: {cells:,} cells, {src_bytes / 2**20:.0f} MiB, written in {gen_s:.1f}s")
        mussel = bench_mussel(source, workdir, cells)
        print(f"mussel: {json.dumps(mussel)}", flush=True)
        result: dict[str, Any] = {"source_mib": round(src_bytes / 2**20), "mussel": mussel}
        if postgres:
            pg = bench_postgres(source, workdir, cells)
            print(f"postgres: {json.dumps(pg)}", flush=True)
            result["postgres"] = pg
            result["mussel_vs_copy"] = round(mussel["cells_per_s"] / pg["copy_rows_per_s"], 2)
        RESULTS.mkdir(exist_ok=True)
        name = "bulk.json" if cells == 10_000_000 else f"bulk-{cells}.json"
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def table_lines(r: dict[str, Any]) -> list[str]:
    m = r["mussel"]
    lines = [
        f"## Bulk load ({m['cells']:,} cells of {VALUE_BYTES}-byte values, "
        f"{r['source_mib']} MiB of Parquet)",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| Parquet to queryable (replace job), cells/s | {m['cells_per_s']:,} | >= 1,000,000 |",
        f"| peak RSS during the load (the process; with the SST builder processes, "
        f"sampled) | {m['peak_rss_mib']:,} MiB; {m.get('peak_rss_with_builders_mib', 0):,} MiB "
        "| < 2,048 MiB |",
        f"| point-read p99 (in process), idle / during the load | "
        f"{m['point_read_ms_idle']['p99']} ms / {m['point_read_ms_during_load']['p99']} ms | "
        "<= 1.5x |",
    ]
    pg = r.get("postgres")
    if pg:
        lines += [
            f"| PostgreSQL COPY (no index), rows/s | {pg['copy_rows_per_s']:,} | |",
            f"| PostgreSQL COPY + primary key, rows/s | {pg['rows_per_s_with_primary_key']:,} | |",
            f"| Mussel vs COPY | {r['mussel_vs_copy']:.2f}x | >= 3x |",
        ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000_000)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    result = run(args.cells, not args.no_postgres, args.workdir)
    print("\n".join(table_lines(result)))


if __name__ == "__main__":
    main()
