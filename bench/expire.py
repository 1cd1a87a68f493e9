"""Expiration benchmark (issue 5): sweep rates, space returned, read p99 during a sweep.

Set-up (not measured): a table of N cells (``--cells``, default 10M) with 100-byte
random values, half of them past the table's TTL, written straight into RocksDB
through the backend (as the replayer would), then flushed and compacted.

Measured, against ``mussel serve`` with its default processes:

1. point-read p99 (``wrk -t2 -c32``, eventual reads of random live keys) without a
   sweep, then while a sweep of the table runs (``POST .../expire``);
2. the sweep's figures from the server (versions examined and removed per second);
3. the database directory's size before and after the run (the run compacts): the
   share of the expired bytes returned to the file system; and the run's own figures
   (logical bytes removed, SST bytes returned, range deletes);
4. the same on a smaller table (``--budget-cells``) with a deletes-per-second budget
   (``[expire] deletes_per_s``), to show the budget holds.

Run alone: ``python -m bench.expire [--cells N] [--seconds S]``. Results:
``bench/results/expire.json`` and the expiration section of ``bench/results/latest.md``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.http import MusselServer, Settings, wrk
from bench.peers.redis import key_name
from mussel import Client
from mussel.engine import Store
from mussel.model import OP_PUT, Mutation

RESULTS = Path(__file__).parent / "results"
SECTION = "## Expiration"
NS, TABLE, SK = "bench", "exp", "v"
TTL_S = 3600


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def load(data: Path, cells: int) -> dict[str, Any]:
    """``cells`` cells; keys ``key_name(0..cells/2-1)`` live, the rest expired."""
    started = time.perf_counter()
    store = Store.open(data)
    try:
        store.put_namespace(NS)
        info = store.put_table(NS, TABLE, {"ttl_seconds": TTL_S}).info
        now = store.clock.now_us()
        old = now - 2 * TTL_S * 1_000_000
        live = cells // 2
        batch = 20_000
        epochs = {info.id: info.epoch}
        sk = SK.encode()
        for start in range(0, cells, batch):
            # random text (JSON answers carry values as UTF-8): as incompressible as
            # base64 gets
            values = base64.b64encode(os.urandom(75 * batch))
            muts = [
                Mutation(
                    info.id,
                    OP_PUT,
                    key_name(i).encode(),
                    sk,
                    now if i < live else old,
                    values[(i - start) * 100 : (i - start + 1) * 100],
                )
                for i in range(start, min(cells, start + batch))
            ]
            with store.catalog.apply_lock:
                store.backend.apply(muts, epochs, {})
        store.backend.sync()
        store.backend.compact(info.id, None, None)  # a settled table, as in production
    finally:
        store.close()
    return {"cells": cells, "live": cells // 2, "seconds": time.perf_counter() - started}


def _wait_done(client: Client, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        exp = client.table(NS, TABLE).expiration
        if exp.state == "idle" and exp.last_run is not None:
            run = exp.last_run
            return {
                "state": run.state,
                "examined": run.examined,
                "removed": run.removed,
                "removed_bytes": run.removed_bytes,
                "range_deletes": run.range_deletes,
                "disk_bytes_before": run.disk_bytes_before,
                "disk_bytes_after": run.disk_bytes_after,
                "disk_reclaimed": run.disk_reclaimed,
                "seconds": (run.ended_us - run.started_us) / 1e6 if run.ended_us else None,
                "subtasks": run.subtasks,
                "throttled_steps": run.throttled_steps,
                "started_us": run.started_us,
                "ended_us": run.ended_us,
            }
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sweep did not end in {timeout:g} s")
        time.sleep(0.2)


def _reads(url: str, read: tuple[object, ...], s: Settings, seconds: float | None = None):  # type: ignore[no-untyped-def]
    """wrk point reads; every answer must be a 200 (else the figure means nothing)."""
    r = wrk(url, "get.lua", read, s, seconds)
    bad = {k: v for k, v in r["errors"].items() if v}
    if bad:
        raise RuntimeError(f"point reads failed during the benchmark: {bad}")
    return r


def _config(root: Path, deletes_per_s: float | None) -> Path:
    path = root / f"mussel-{deletes_per_s}.toml"
    lines = ["[expire]", "interval_s = 86400.0"]
    if deletes_per_s is not None:
        lines.append(f"deletes_per_s = {deletes_per_s}")
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep(root: Path, name: str, cells: int, s: Settings, deletes_per_s: float | None,
          measure_reads: bool) -> dict[str, Any]:  # fmt: skip
    data = root / name
    out: dict[str, Any] = {"load": load(data, cells), "deletes_per_s": deletes_per_s}
    before = _dir_bytes(data / "db")
    out["db_bytes_before"] = before
    server = MusselServer(
        data, root / f"{name}.log", extra=["--config", str(_config(root, deletes_per_s))]
    )
    try:
        with Client(server.url, timeout=60) as client:
            read = (NS, TABLE, cells // 2, SK, "eventual")
            if measure_reads:
                _reads(server.url, read, s, 3)  # warm-up
                out["reads_without_sweep"] = _reads(server.url, read, s)
            client.expire(NS, TABLE)
            during: dict[str, Any] = {}
            if measure_reads:
                window = (time.time(), 0.0)
                during = _reads(server.url, read, s)
                window = (window[0], time.time())
            run = _wait_done(client, 3600)
            out["sweep"] = run
            if measure_reads:
                ended = (run["ended_us"] or 0) / 1e6
                overlap = max(0.0, min(window[1], ended) - window[0]) / (window[1] - window[0])
                during["overlap_with_sweep"] = round(overlap, 3)
                out["reads_during_sweep"] = during
    finally:
        server.close()
    after = _dir_bytes(data / "db")
    out["db_bytes_after"] = after
    expired_share = (cells - cells // 2) / cells
    out["expired_bytes_estimate"] = before * expired_share
    out["returned_fraction"] = (before - after) / (before * expired_share)
    secs = out["sweep"]["seconds"] or float("nan")
    out["examined_per_s"] = out["sweep"]["examined"] / secs
    out["removed_per_s"] = out["sweep"]["removed"] / secs
    return out


def run(cells: int, budget_cells: int, budget: float, s: Settings) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="mussel-expire-bench-") as tmp:
        root = Path(tmp)
        free = sweep(root, "free", cells, s, None, measure_reads=True)
        budgeted = sweep(root, "budget", budget_cells, s, budget, measure_reads=False)
    load_after = [round(x, 2) for x in os.getloadavg()]
    return {
        "no_budget": free,
        "budget": budgeted,
        "settings": s.__dict__,
        "load_average": {"start": load_before, "end": load_after},
    }


def write_results(r: dict[str, Any]) -> list[str]:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "expire.json").write_text(json.dumps(r, indent=2, default=str))
    f, b = r["no_budget"], r["budget"]
    base = f["reads_without_sweep"]["p99_ms"]
    during = f["reads_during_sweep"]["p99_ms"]
    lines = [
        SECTION,
        "",
        f"{f['load']['cells']:,} cells with 100-byte random text values, half past the TTL; "
        f"`mussel serve` with its default processes; reads: wrk, 32 connections, eventual "
        f"point reads of live keys. Read window overlapped the sweep "
        f"{f['reads_during_sweep']['overlap_with_sweep']:.0%}."
        + (
            f" Load average (1, 5, 15 min) {r['load_average']['start']} at the start, "
            f"{r['load_average']['end']} at the end (2 cores, shared: other engineers' "
            "work included)."
            if "load_average" in r
            else ""
        ),
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| versions examined per s (no budget) | {f['examined_per_s']:,.0f} | |",
        f"| versions removed per s (no budget) | {f['removed_per_s']:,.0f} | |",
        f"| sweep of {f['sweep']['examined']:,} versions, {f['sweep']['subtasks']} subtasks | "
        f"{f['sweep']['seconds']:.1f} s | |",
        f"| expired bytes returned to the file system | {f['returned_fraction']:.0%} "
        f"({f['db_bytes_before'] / 2**20:,.0f} MiB -> {f['db_bytes_after'] / 2**20:,.0f} MiB) "
        f"| >= 80% |",
        f"| the run's own figures: logical bytes removed / returned to the file system "
        f"(SST files, measured) | {f['sweep']['removed_bytes'] / 2**20:,.0f} MiB / "
        f"{(f['sweep']['disk_reclaimed'] or 0) / 2**20:,.0f} MiB | |",
        f"| runs removed by one range delete each | {f['sweep']['range_deletes']:,} | |",
        f"| point-read p99 without / during a sweep | {base:.2f} / {during:.2f} ms "
        f"({during / base:.2f}x) | <= 1.2x |",
        f"| point reads/s without / during a sweep | "
        f"{f['reads_without_sweep']['req_per_s']:,.0f} / "
        f"{f['reads_during_sweep']['req_per_s']:,.0f} | |",
        f"| with a budget of {b['deletes_per_s']:,.0f} deletes/s ({b['load']['cells']:,} "
        f"cells): removed per s | {b['removed_per_s']:,.0f} | <= budget |",
        f"| with that budget: examined per s | {b['examined_per_s']:,.0f} | |",
        "",
    ]
    latest = RESULTS / "latest.md"
    text = latest.read_text() if latest.exists() else ""
    section = "\n".join(lines)
    if SECTION in text:  # replace this section only: the ones after it stay
        head, rest = text.split(SECTION, 1)
        nxt = rest.find("\n## ")
        tail = "" if nxt < 0 else rest[nxt + 1 :]
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    latest.write_text(text)
    return lines


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.expire", description=__doc__)
    cells = int(os.environ.get("BENCH_EXPIRE_CELLS", "10000000"))
    p.add_argument("--cells", type=int, default=cells)
    p.add_argument("--budget-cells", type=int, default=2 * 10**6)
    p.add_argument("--budget", type=float, default=200_000.0)
    p.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "10")))
    a = p.parse_args(argv)
    s = Settings(seconds=a.seconds)
    lines = write_results(run(a.cells, a.budget_cells, a.budget, s))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
