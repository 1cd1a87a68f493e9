"""``mussel serve``: the embedded server — an owner process and follower processes.

Python runs one thread at a time per process, so one process cannot use a second
core. ``processes=N`` runs N serving processes on one port (``SO_REUSEPORT``: the
kernel spreads connections over them):

* the **owner** (this process) opens the store: the write log, the replayer and
  the primary RocksDB. It answers every request it receives, and requests handed
  over by followers on a Unix socket. It publishes its progress (log ends before
  each acknowledgement, applied positions, catalog changes) in shared memory
  (``log/shared.py``).
* N-1 **followers** (``python -m mussel.dispatch.follower``) read from RocksDB
  secondaries kept close behind the owner (``replay/follower.py``). They answer
  reads (point, row, multi-get, scan; strong ones after waiting for the writes
  acknowledged before them) and hand everything else to the owner.

Only the owner writes anything durable, so kill -9 of any or all processes loses
no acknowledged write. Followers die with the owner (``PR_SET_PDEATHSIG``); one
that dies alone is started again.

Start-up opens the store (recovering the log and replaying what was not applied),
starts the followers, then reports ready. SIGTERM or SIGINT: stop accepting; the
followers drain and exit; in-flight requests finish (up to ``drain_timeout_s``);
the store is closed (the replayer applies everything durable, RocksDB is
flushed); exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import pickle
import secrets
import signal
import socket
import ssl
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from mussel.bulkload import JobManager
from mussel.dispatch.app import App
from mussel.dispatch.auth import Authorizer
from mussel.dispatch.metrics import ServerMetrics
from mussel.dispatch.quotas import RateBuckets
from mussel.dispatch.serving import (
    RUN_DIR,
    Connections,
    fetch_snapshot,
    protocol_factory,
    stop_event,
    write_atomic,
)
from mussel.engine import Store, StoreConfig
from mussel.expire import ExpirationService, ExpireConfig, RemoteScanner
from mussel.log.shared import SharedState
from mussel.observability.logging import LOG_FORMATS, AccessLog, LogFormat, configure_logging

__all__ = ["ROLES", "ServerConfig", "run_server"]

log = logging.getLogger("mussel.server")


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    """Listen address. Any other than a loopback one needs ``auth = "token"``."""
    port: int = 7070
    """Listen port (0: any free port)."""
    max_body_bytes: int = 64 << 20
    """Largest request body accepted (413 past it, refused before it is buffered)."""
    drain_timeout_s: float = 10.0
    """On SIGTERM: how long requests in flight may take to finish before the server exits."""
    processes: int = 1
    """Serving processes: the owner and ``processes - 1`` followers (``mussel serve``
    defaults to one per core in embedded mode, 1 in distributed mode)."""
    auth: str = "none"
    """``none`` (loopback listeners only) or ``token`` (SPEC §6)."""
    max_inflight: int = 4096
    """Requests waiting per process past which new ones are shed (503)."""
    online_latency_target_s: float = 0.05
    """While a process's recent read p99 is above it, batch requests get 503."""
    tls_cert: str | None = None
    """PEM certificate (chain) of the listener; with ``tls_key``, the server speaks HTTPS."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert``."""
    tls_client_ca: str | None = None
    """PEM CA bundle: clients must present a certificate it signed (mTLS)."""
    store: StoreConfig = field(default_factory=StoreConfig)
    expire: ExpireConfig = field(default_factory=ExpireConfig)
    role: str = "embedded"
    """``embedded`` (one machine, data under ``data_dir``) or, in distributed mode
    (SPEC §9), ``dispatcher``, ``replayer``, ``worker`` or ``all``: see ``cluster.py``."""
    log_url: str | None = None
    """Distributed mode: the write log, ``kafka://host:port[,host:port]/topic``."""
    backend_url: str | None = None
    """Distributed mode: the database, ``postgresql://user:password@host:port/db``."""
    group: str | None = None
    """Distributed mode: the replayers' Kafka consumer group (default
    ``mussel-replayers.<topic>``)."""
    offload_threads: int = 32
    """Distributed mode: threads per dispatcher process for database calls."""
    backup_dir: Path | None = None
    """Embedded mode: ``POST /v1/admin/backup`` writes backups inside this directory only
    (None: backups over HTTP are off)."""
    log_format: str = "auto"
    """``json`` (one object per line), ``text``, or ``auto``: JSON unless stderr is a
    terminal (``observability/logging.py``)."""
    access_log: bool = False
    """One structured log line per answered request (off by default: see
    docs/operations.md, "Logs")."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (a name other than localhost is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_auth(cfg: ServerConfig) -> None:
    """Refuse (``SystemExit`` with the reason) what SPEC §6 forbids."""
    if cfg.auth not in ("none", "token"):
        raise SystemExit(f"mussel: --auth must be none or token, not {cfg.auth!r}")
    if cfg.auth == "none" and not is_loopback(cfg.host):
        raise SystemExit(
            f"mussel: refusing to listen on {cfg.host} without authentication: anyone who "
            "can reach it could read and change every namespace. Listen on 127.0.0.1, or "
            "start with --auth token (and MUSSEL_ADMIN_TOKEN for the first admin token)."
        )


def tls_context(cfg: ServerConfig) -> ssl.SSLContext | None:
    """The listener's TLS context, or None for plain HTTP (``SystemExit`` if the files
    cannot be used)."""
    if cfg.tls_cert is None and cfg.tls_key is None and cfg.tls_client_ca is None:
        return None
    if cfg.tls_cert is None or cfg.tls_key is None:
        raise SystemExit("mussel: TLS needs both --tls-cert and --tls-key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        if cfg.tls_client_ca is not None:
            ctx.load_verify_locations(cfg.tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"mussel: cannot use the TLS files: {exc}") from None
    return ctx


def bootstrap_tokens(store: Store) -> None:
    """``--auth token``: the admin token from ``MUSSEL_ADMIN_TOKEN``; without it, at
    least one admin token must exist already."""
    secret = os.environ.get("MUSSEL_ADMIN_TOKEN", "")
    if secret:
        if len(secret) < 16:
            raise SystemExit("mussel: MUSSEL_ADMIN_TOKEN must be at least 16 characters")
        store.catalog.ensure_token("admin-env", "MUSSEL_ADMIN_TOKEN", secret, ["admin"])
    elif not any("admin" in t.scopes for t in store.catalog.list_tokens()):
        raise SystemExit(
            "mussel: --auth token needs an admin token: set MUSSEL_ADMIN_TOKEN to a secret "
            "of at least 16 characters for the first start"
        )


def apply_shedding(app: App, cfg: ServerConfig) -> None:
    """The configured shedding thresholds (SPEC §7), in every serving process."""
    app.max_inflight = cfg.max_inflight
    app.online_latency_target_s = cfg.online_latency_target_s


def apply_logging(app: App, cfg: ServerConfig) -> None:
    """The access log and the backup directory, in every serving process."""
    app.access_log = AccessLog() if cfg.access_log else None
    app.backup_dir = None if cfg.backup_dir is None else Path(cfg.backup_dir)


def report_ready(ready_fd: int | None, port: int) -> None:
    """Tell whoever started the server (``--ready-fd``) the port it listens on."""
    if ready_fd is not None:
        with socket.socket(fileno=ready_fd) as s:
            s.sendall(str(port).encode())


def default_processes() -> int:
    """One serving process per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


class _Followers:
    """The owner's follower processes: start, watch (restart the dead), stop."""

    def __init__(self, cfg: ServerConfig, port: int, address: str, state: SharedState):
        self._cfg = cfg
        self._port = port
        self._address = address  # the owner's is address + "-owner"; see follower.py
        self._state = state
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self._pids_path = cfg.data_dir / RUN_DIR / "pids"

    def write_pids(self) -> None:
        """``<data>/run/pids``: the owner's pid, then the followers' (for operators)."""
        pids = [os.getpid(), *(p.pid for p in self._procs.values())]
        write_atomic(self._pids_path, "".join(f"{p}\n" for p in pids).encode())

    async def start_all(self) -> None:
        await asyncio.gather(*(self._start(slot) for slot in range(self._state.slots)))

    async def _start(self, slot: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mussel.dispatch.follower",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        args = (self._cfg, slot, self._port, self._address, os.getpid())
        proc.stdin.write(pickle.dumps(args))
        await proc.stdin.drain()
        proc.stdin.close()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60.0)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise SystemExit(f"mussel: follower process {slot} failed to start (see above)")
        self._procs[slot] = proc

    async def watch(self) -> None:
        """Start again any follower that exits while the server runs."""
        while True:
            await asyncio.sleep(0.5)
            for slot, proc in list(self._procs.items()):
                if proc.returncode is None or self._stopping:
                    continue
                log.error("follower %d exited with %s; starting it again", slot, proc.returncode)
                self._state.clear_slot(slot)
                del self._procs[slot]
                try:
                    await self._start(slot)
                    self.write_pids()
                except SystemExit as exc:
                    log.error("%s", exc)
                    await asyncio.sleep(5.0)

    async def snapshots(self) -> list[dict[str, Any]]:
        """Every live follower's metrics snapshot, now."""
        answers = await asyncio.gather(
            *(fetch_snapshot(f"{self._address}-f{slot}") for slot in self._procs)
        )
        out = []
        for data in answers:
            if data:
                with contextlib.suppress(msgspec.DecodeError):
                    out.append(_SNAPSHOT.decode(data))
        return out

    async def refresh(self, app: App) -> None:
        """Fetch the followers' metrics into ``app.metrics.peers`` (before ``/metrics``
        or namespace usage is rendered)."""
        app.metrics.peers = await self.snapshots()

    async def stop(self, timeout_s: float) -> None:
        self._stopping = True
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for slot, proc in self._procs.items():
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                log.warning("follower %d did not stop in time; killing it", slot)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


_SNAPSHOT = msgspec.msgpack.Decoder(dict[str, Any])


async def _serve(cfg: ServerConfig, ready_fd: int | None) -> None:
    followers = cfg.processes - 1
    store_cfg = cfg.store
    if followers:  # followers see applies only through RocksDB's WAL
        store_cfg = replace(store_cfg, rocks=replace(store_cfg.rocks, wal=True))
    check_auth(cfg)
    tls = tls_context(cfg)
    store = Store.open(cfg.data_dir, store_cfg)
    if cfg.auth == "token":
        try:
            bootstrap_tokens(store)
        except SystemExit:
            store.close()
            raise
    run = cfg.data_dir / RUN_DIR
    metrics = ServerMetrics(store)  # bulk loads are batch work: they yield to slow reads
    jobs = JobManager(store, Path(cfg.data_dir) / "bulk", read_p99_s=metrics.recent_read_p99)
    app = App(store, metrics, jobs=jobs)
    if cfg.auth == "token":
        app.auth = Authorizer(store.catalog)
    app.rates = RateBuckets.create(run / "buckets")
    apply_shedding(app, cfg)
    apply_logging(app, cfg)
    conns = Connections()
    loop = asyncio.get_running_loop()
    protocol = protocol_factory(app, conns, cfg.max_body_bytes)
    try:
        server = await loop.create_server(
            protocol,
            cfg.host,
            cfg.port,
            backlog=2048,
            reuse_address=True,
            reuse_port=followers > 0,
            ssl=tls,
        )
    except OSError as exc:
        store.close()
        raise SystemExit(
            f"mussel: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}"
        ) from None
    port = server.sockets[0].getsockname()[1]
    stop = stop_event(loop)
    pool: _Followers | None = None
    owner_server: asyncio.Server | None = None
    tasks: list[asyncio.Task[None]] = []
    if followers:
        state = SharedState.create(run / "state", store_cfg.partitions, followers)
        store.publish_to(state)
        address = f"\0mussel-{os.getpid()}-{secrets.token_hex(6)}"
        internal = protocol_factory(app, conns, cfg.max_body_bytes, internal=True)
        owner_server = await loop.create_unix_server(internal, f"{address}-owner", backlog=2048)
        pool = _Followers(cfg, port, address, state)
        try:
            await pool.start_all()
        except SystemExit:
            await pool.stop(5.0)
            server.close()
            store.close()
            raise
        app.refresh_peers = functools.partial(pool.refresh, app)
        tasks = [asyncio.create_task(pool.watch())]
    scan = None
    if pool is not None:  # sweeps scan in the followers: the idle cores
        scan = RemoteScanner(
            [f"{address}-s{slot}" for slot in range(followers)], store.backend.sweep_scan
        )
    expiration = ExpirationService(
        store, cfg.expire, read_p99_s=app.metrics.recent_read_p99, scan=scan
    )
    app.expiration = expiration
    app.metrics.add_expiration(expiration)
    app.metrics.add_jobs(app.jobs)
    app.tls = tls is not None
    expiration.start()
    tasks.append(asyncio.create_task(app.dashboard.run(app.refresh_peers)))
    if pool is not None:
        pool.write_pids()
    else:
        run.mkdir(parents=True, exist_ok=True)
        write_atomic(run / "pids", f"{os.getpid()}\n".encode())
    scheme = "https" if tls is not None else "http"
    log.info(
        "serving %s://%s:%d with %d process(es) (data in %s)",
        scheme,
        cfg.host,
        port,
        cfg.processes,
        cfg.data_dir,
    )
    report_ready(ready_fd, port)
    await stop.wait()
    log.info("stopping: no new connections; draining")
    app.ready = False
    server.close()
    for task in tasks:
        task.cancel()
    if pool is not None:
        await pool.stop(cfg.drain_timeout_s + 5.0)  # they may still hand requests over
    await conns.drain(cfg.drain_timeout_s)
    if owner_server is not None:
        owner_server.close()
    await loop.run_in_executor(None, expiration.stop)
    await loop.run_in_executor(None, app.close)
    await loop.run_in_executor(None, store.close)


ROLES = ("embedded", "dispatcher", "replayer", "worker", "all")


def checked_log_format(cfg: ServerConfig) -> LogFormat:
    """``cfg.log_format``, or ``SystemExit`` if it is not one of ``LOG_FORMATS``."""
    if cfg.log_format not in LOG_FORMATS:
        raise SystemExit(f"mussel: log_format must be json, text or auto, not {cfg.log_format!r}")
    return cfg.log_format  # type: ignore[return-value]  # checked just above


def run_server(cfg: ServerConfig, ready_fd: int | None = None) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    configure_logging(checked_log_format(cfg), "owner" if cfg.role == "embedded" else cfg.role)
    if cfg.role == "embedded":
        uvloop.run(_serve(cfg, ready_fd))
    else:
        from mussel.dispatch.cluster import serve_distributed  # noqa: PLC0415 (cycle)

        uvloop.run(serve_distributed(cfg, ready_fd))
    return 0
