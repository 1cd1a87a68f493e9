"""A/B of ``mussel serve`` read costs between source trees, back to back.

For a noisy shared machine: absolute req/s moves with other work, so this alternates
the trees run by run and reports, per tree and workload, the server's CPU per request
(user + system seconds of the owner and its followers / requests wrk counted; of
one-second runs, the 20th percentile: the least disturbed) and the req/s, with the B/A
ratios of the medians.

Run: ``python -m bench.ab_reads SRC_A SRC_B [--pairs 3] [--seconds 5] [--keys 200000]``
where SRC_A and SRC_B are ``src`` directories (e.g. ``git archive main src | tar -x``
into a temporary directory, and this worktree's ``src``). The data (``--keys`` keys of
100 bytes, sk ``v``) is loaded once, by tree A, into ``--data`` (kept between runs when
given), and every server then opens it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.http import (
    NAMESPACE,
    READ_TABLE,
    SK,
    MusselServer,
    Settings,
    _cpu_seconds,
    load_mussel,
    wrk,
)
from mussel import Client

WORKLOADS = {
    "get strong": ("get.lua", "strong", 1),
    "get eventual": ("get.lua", "eventual", 1),
    "mget10 strong": ("mget.lua", "strong", 10),
    "mget10 eventual": ("mget.lua", "eventual", 10),
}


@contextlib.contextmanager
def _pythonpath(src: Path) -> Iterator[None]:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _server(src: Path, data: Path, log: Path) -> MusselServer:
    with _pythonpath(src):
        return MusselServer(data, log, extra=[])


def _measure(server: MusselServer, s: Settings, name: str) -> dict[str, Any]:
    """``s.seconds`` one-second wrk runs of the workload: the 20th-percentile CPU per
    request of the runs (the least disturbed by other work on the machine), and the
    median rate and p99."""
    script, consistency, k = WORKLOADS[name]
    args: list[object] = [NAMESPACE, READ_TABLE, s.keys, SK, consistency]
    if k > 1:
        args.append(k)
    runs = []
    for _ in range(max(1, round(s.seconds))):
        cpu0 = _cpu_seconds(server.proc.pid)
        r = wrk(server.url, script, args, s, 1)
        cpu = _cpu_seconds(server.proc.pid) - cpu0
        runs.append((cpu / max(1, r["requests"]) * 1e6, r["req_per_s"] * k, r["p99_ms"]))
    us = sorted(u for u, _, _ in runs)
    return {
        "us_per_req": us[len(us) // 5],
        "rps": statistics.median(rate for _, rate, _ in runs),
        "p99": statistics.median(p for _, _, p in runs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    s = Settings(seconds=args.seconds, keys=args.keys)
    names = [n for n in WORKLOADS if args.only in n]
    with tempfile.TemporaryDirectory(prefix="mussel-ab-") as tmp:
        root = Path(tmp)
        data = args.data or root / "data"
        if not (data / "run").exists():
            server = _server(args.a.resolve(), data, root / "load.log")
            try:
                with Client(server.url, timeout=120) as client:
                    client.put_namespace(NAMESPACE)
                    client.put_table(NAMESPACE, READ_TABLE)
                    load_mussel(client, s)
            finally:
                server.close()
        results: dict[str, dict[str, list[dict[str, Any]]]] = {"A": {}, "B": {}}
        for i in range(args.pairs):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            for side in order:
                src = (args.a if side == "A" else args.b).resolve()
                server = _server(src, data, root / f"{side}.log")
                try:
                    warm = [NAMESPACE, READ_TABLE, s.keys, SK, "eventual"]
                    wrk(server.url, "get.lua", warm, s, 2)  # warm up
                    for name in names:
                        m = _measure(server, s, name)
                        results[side].setdefault(name, []).append(m)
                        print(
                            f"{side} {name:16s} {m['rps']:9,.0f}/s {m['us_per_req']:6.1f} µs "
                            f"CPU/req p99 {m['p99']:.2f} ms",
                            flush=True,
                        )
                finally:
                    server.close()
    print("\nmedians (B/A)")
    for name in names:
        a, b = results["A"][name], results["B"][name]

        def med(rows: list[dict[str, Any]], key: str) -> float:
            return statistics.median(r[key] for r in rows)

        print(
            f"{name:16s} CPU/req {med(a, 'us_per_req'):6.1f} -> {med(b, 'us_per_req'):6.1f} µs "
            f"({med(b, 'us_per_req') / med(a, 'us_per_req'):.2f}x); "
            f"rate {med(a, 'rps'):9,.0f} -> {med(b, 'rps'):9,.0f}/s "
            f"({med(b, 'rps') / med(a, 'rps'):.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
