"""``make bench``: run the benchmarks side by side and write bench/results/.

Results: ``bench/results/<name>.json`` (raw figures) and ``bench/results/latest.md``
(a Markdown table). Figures from one run on one machine; compare ratios, not
absolute numbers, across machines.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import core

RESULTS = Path(__file__).parent / "results"


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def core_table(r: dict[str, Any]) -> list[str]:
    pg = r.get("postgres") or {}
    lag = r["replay_lag"]
    pg_raw = r["point_get"]["raw_rocksdict_gets_per_s"]
    rows = [
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| raw rocksdict get/s (same data) | {_fmt(pg_raw)} | |",
        f"| embedded get/s, eventual | {_fmt(r['point_get']['eventual_gets_per_s'])} "
        f"({r['point_get']['eventual_vs_raw']:.2f}x raw) | >= 0.5x raw |",
        f"| embedded get/s, strong | {_fmt(r['point_get']['strong_gets_per_s'])} "
        f"({r['point_get']['strong_vs_raw']:.2f}x raw) | >= 0.5x raw |",
        f"| durable writes/s, 8 threads x batches of 100 | "
        f"{_fmt(r['durable_writes']['records_per_s'])} | >= 200,000 |",
    ]
    if pg:
        rows.append(
            f"| PostgreSQL 100-row upserts, 8 threads, records/s | {_fmt(pg['records_per_s'])} | |"
        )
        rows.append(
            f"| durable writes vs PostgreSQL upserts | {r['writes_vs_postgres']:.1f}x | >= 5x |"
        )
    rows.append(
        f"| replay lag p99 at {_fmt(lag['records_per_s'])} records/s (half rate) | "
        f"{lag.get('replay_lag_p99_ms', float('nan')):.1f} ms | < 50 ms |"
    )
    return rows


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 5.0
    RESULTS.mkdir(exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results = core.run(seconds)
    meta = {"started": started, "python": sys.version.split()[0], "machine": platform.machine()}
    (RESULTS / "core.json").write_text(json.dumps({"meta": meta, **results}, indent=2))
    lines = [f"# Benchmarks ({started}, Python {meta['python']})", "", "## Core engine", ""]
    lines += core_table(results)
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
