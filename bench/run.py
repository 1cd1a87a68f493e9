"""``make bench``: run the benchmarks side by side and write bench/results/.

Sections, one after the other: the core engine (``bench/core.py``, in process), HTTP
side by side with PostgreSQL and Redis (``bench/http.py``), distributed mode side by side
with embedded mode and PostgreSQL (``bench/distributed.py``), bulk load vs PostgreSQL
``COPY`` (``bench/bulk.py``, in a child process so that its peak RSS is its own) and
expiration (``bench/expire.py``). ``python -m bench.run [seconds]``: seconds per figure
(default: 5 for the core section; ``$BENCH_SECONDS`` or 10 for the others).
``--skip-http``, ``--skip-distributed``, ``--skip-bulk``, ``--skip-expire``,
``--skip-tenancy`` leave sections out (tenancy: ``bench/tenancy.py``, one namespace at 2x
its quota next to another at normal load).

Results: ``bench/results/<name>.json`` (raw figures: core.json, http.json, distributed.json) and
``bench/results/latest.md`` (Markdown tables). Figures from one run on one machine;
compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import bulk, core
from bench import distributed as distributed_bench
from bench import expire as expire_bench
from bench import http as http_bench
from bench import tenancy as tenancy_bench

RESULTS = Path(__file__).parent / "results"


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def _reps(values: list[float], fmt: str = "{:,.0f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def core_table(r: dict[str, Any]) -> list[str]:
    pg = r.get("postgres") or {}
    lag = r["replay_lag"]
    gets = r["point_get"]
    writes = r["durable_writes"]
    rows = [
        f"Medians of {gets.get('reps', 1)} rounds of {gets['gets']:,} gets (raw, eventual "
        "and strong one after the other in each round, in a rotating order; each ratio is "
        f"the median of the rounds' own ratios) and of {len(writes.get('reps', [1]))} pairs "
        "of durable-write and PostgreSQL-upsert runs (alternating which goes first; the "
        "ratio is the median of the pairs' ratios). Per-round figures in `core.json`.",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| raw rocksdict get/s (same data) | {_fmt(gets['raw_rocksdict_gets_per_s'])} | |",
        f"| embedded get/s, eventual | {_fmt(gets['eventual_gets_per_s'])} "
        f"({gets['eventual_vs_raw']:.2f}x raw) | >= 0.5x raw |",
        f"| embedded get/s, strong | {_fmt(gets['strong_gets_per_s'])} "
        f"({gets['strong_vs_raw']:.2f}x raw) | >= 0.5x raw |",
        f"| durable writes/s, 8 threads x batches of 100 | "
        f"{_fmt(writes['records_per_s'])} ({_reps(writes.get('reps', []))}) | >= 200,000 |",
    ]
    if pg:
        rows.append(
            f"| PostgreSQL 100-row upserts, 8 threads, records/s | {_fmt(pg['records_per_s'])} "
            f"({_reps(pg.get('reps', []))}) | |"
        )
        rows.append(
            f"| durable writes vs PostgreSQL upserts | {r['writes_vs_postgres']:.1f}x "
            f"({_reps(r.get('writes_vs_postgres_reps', []), '{:.1f}x')}) | >= 5x |"
        )
    rows.append(
        f"| replay lag p99 at {_fmt(lag['records_per_s'])} records/s (half rate) | "
        f"{lag.get('replay_lag_p99_ms', float('nan')):.1f} ms | < 50 ms |"
    )
    return rows


def _append(lines: list[str]) -> None:
    latest = RESULTS / "latest.md"
    latest.write_text(latest.read_text().rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    skips = {a for a in argv if a.startswith("--skip-")}
    skip_http = "--skip-http" in skips
    argv = [a for a in argv if a not in skips]
    seconds = float(argv[0]) if argv else 5.0
    RESULTS.mkdir(exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results = core.run(seconds)
    meta = {"started": started, "python": sys.version.split()[0], "machine": platform.machine()}
    (RESULTS / "core.json").write_text(json.dumps({"meta": meta, **results}, indent=2))
    section = ["## Core engine", "", f"{started}, Python {meta['python']}.", ""]
    section += core_table(results)
    if skips:  # a partial run: replace the core section, keep the other sections' figures
        http_bench.write_section(RESULTS / "latest.md", "## Core engine", section)
    else:
        lines = [f"# Benchmarks ({started}, Python {meta['python']})", "", *section]
        (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(section))
    if not skip_http:
        settings = http_bench.settings_from(argv)
        print(f"\n{http_bench.SECTION}: running ({settings.seconds:g} s per figure)", flush=True)
        http_lines = http_bench.write_results(http_bench.run(settings))
        print("\n" + "\n".join(http_lines))
    if "--skip-distributed" not in skips:
        dist_settings, _ = distributed_bench.parse_args(argv)
        print(
            f"\n{distributed_bench.SECTION}: running ({dist_settings.seconds:g} s per figure)",
            flush=True,
        )
        dist_lines = distributed_bench.write_results(distributed_bench.run(dist_settings))
        print("\n" + "\n".join(dist_lines))
    if "--skip-bulk" not in skips:
        print("\nbulk load: running (10M cells, then PostgreSQL COPY)", flush=True)
        bulk_lines = bulk.table_lines(bulk.run())
        _append(bulk_lines)
        print("\n" + "\n".join(bulk_lines))
    if "--skip-expire" not in skips:
        print("\n## Expiration: running", flush=True)
        settings = http_bench.settings_from(argv)
        cells = int(os.environ.get("BENCH_EXPIRE_CELLS", "10000000"))
        result = expire_bench.run(cells, 2_000_000, 200_000.0, settings)
        print("\n".join(expire_bench.write_results(result)))
    if "--skip-tenancy" not in skips:
        print(f"\n{tenancy_bench.SECTION}: running", flush=True)
        print(
            "\n".join(
                tenancy_bench.write_results(tenancy_bench.run(tenancy_bench.TenancySettings()))
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
