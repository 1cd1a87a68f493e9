"""Distributed mode (SPEC §9): one process of a cluster, by role.

``mussel serve --role ROLE --log kafka://host:port/topic --backend postgresql://...``

* **dispatcher**: the HTTP API v1 (SPEC §4). Writes are validated, appended to the
  Kafka log and acknowledged once the broker confirmed them (``acks=all``); reads go
  to the database, strong ones after waiting until the replayers applied every write
  acknowledged before the read, by any dispatcher (``replay/remote.py``). It keeps
  no state: run as many as needed behind a load balancer. Database calls run in a
  thread pool (``App.offload``), off the event loop.
* **replayer**: a member of the consumer group ``--group``: applies its share of the
  log's partitions to the database, the applied offsets in the same transaction as
  the data. When one dies, the group gives its partitions to the others, which
  resume from the offsets stored in the database.
* **worker**: background work on the database: expiration sweeps (scheduled, and
  those ``POST .../expire`` asked a dispatcher for), the reclaiming of dropped
  tables' space, and bulk loads (``bulkload/worker.py``: jobs and their subtasks are
  claimed from the database, so any number of workers share them). Run one or more.
* **all**: the three in one process (a small deployment, a laptop).

Every role answers ``/healthz``, ``/readyz`` (503 while the database or the log is
unreachable) and ``/metrics`` on its port; replayers and workers answer 404 to the
data API. ``--processes N`` (default 1) runs N copies of the role on one port
(``SO_REUSEPORT``); each exports its own metrics.

The catalog (namespaces, tables, tokens) is in the database, shared by every
process (``Catalog(shared=True)``), and so are bulk-load jobs (any dispatcher
submits, lists, gets or cancels any job: ``bulkload/cluster.py``). Rate quotas are
counted per dispatcher process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import pickle
import signal
import sys
from dataclasses import replace

import uvloop

from mussel.bulkload.worker import BulkWorker
from mussel.dispatch.app import App
from mussel.dispatch.auth import Authorizer
from mussel.dispatch.follower import _die_with_owner
from mussel.dispatch.quotas import LeasedRateBuckets
from mussel.dispatch.server import (
    ServerConfig,
    apply_logging,
    apply_shedding,
    bootstrap_tokens,
    check_auth,
    checked_log_format,
    report_ready,
    tls_context,
)
from mussel.dispatch.serving import Connections, protocol_factory, stop_event
from mussel.dispatch.shared_hotkeys import SharedHotKeys
from mussel.dispatch.shared_latency import SharedReadLatency
from mussel.engine import Store
from mussel.errors import MusselError
from mussel.expire import ExpirationService
from mussel.observability.logging import configure_logging

__all__ = ["serve_distributed"]

log = logging.getLogger("mussel.cluster")

DISTRIBUTED_ROLES = ("dispatcher", "replayer", "worker", "all")


def check_distributed(cfg: ServerConfig) -> None:
    """``SystemExit`` with the reason unless ``cfg`` can run a distributed role."""
    if cfg.role not in DISTRIBUTED_ROLES:
        raise SystemExit(f"mussel: --role must be one of embedded, {', '.join(DISTRIBUTED_ROLES)}")
    if not cfg.log_url or not cfg.backend_url:
        raise SystemExit(
            f"mussel: --role {cfg.role} needs --log kafka://host:port/topic and --backend "
            "postgresql://user:password@host:port/database (or MUSSEL_LOG_URL and "
            "MUSSEL_BACKEND_URL)"
        )


class _Node:
    """The stores and services one process runs for its role."""

    def __init__(self, cfg: ServerConfig) -> None:
        assert cfg.log_url is not None and cfg.backend_url is not None
        self.cfg = cfg
        self.stores: list[Store] = []
        self.expiration: ExpirationService | None = None
        self.bulk: BulkWorker | None = None
        self.latency: SharedReadLatency | None = None
        try:
            if cfg.role in ("dispatcher", "worker", "all"):
                self.front = self._open("dispatcher")
            if cfg.role in ("replayer", "all"):
                replayer = self._open("replayer")
                if cfg.role == "replayer":
                    self.front = replayer
            if cfg.role in ("worker", "all"):  # batch work, paced by the dispatchers' reads
                self.latency = SharedReadLatency(self.front.backend)
                p99 = self.latency.cluster_p99
                self.expiration = ExpirationService(self.front, cfg.expire, read_p99_s=p99)
                self.bulk = BulkWorker(self.front, read_p99_s=p99)
        except BaseException:
            self.close()
            raise

    def _open(self, role: str) -> Store:
        assert self.cfg.log_url is not None and self.cfg.backend_url is not None
        store = Store.open_distributed(
            self.cfg.log_url,
            self.cfg.backend_url,
            "dispatcher" if role == "dispatcher" else "replayer",
            self.cfg.store,
            group=self.cfg.group,
        )
        self.stores.append(store)
        return store

    def healthy(self) -> bool:
        return all(s.replayer.error is None for s in self.stores)

    def close(self) -> None:
        if self.bulk is not None:
            self.bulk.stop()
        if self.expiration is not None:
            self.expiration.stop()
        for store in reversed(self.stores):
            store.close()


class _Children:
    """``--processes N``: N-1 more copies of this process on the same port."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, cfg: ServerConfig, port: int, count: int) -> None:
        child_cfg = replace(cfg, processes=1, port=port)
        for _ in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mussel.dispatch.cluster",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(pickle.dumps((child_cfg, os.getpid())))
            await proc.stdin.drain()
            proc.stdin.close()
            self.procs.append(proc)
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 60.0)
            except TimeoutError:
                line = b""
            if line.strip() != b"ready":
                raise SystemExit("mussel: a serving process failed to start (see above)")

    async def stop(self, timeout_s: float) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


async def serve_distributed(
    cfg: ServerConfig, ready_fd: int | None = None, *, child: bool = False
) -> None:
    """Run one process of ``cfg.role`` until SIGTERM/SIGINT (see the module docstring)."""
    check_distributed(cfg)
    check_auth(cfg)
    tls = tls_context(cfg)
    loop = asyncio.get_running_loop()
    node = await loop.run_in_executor(None, _Node, cfg)
    pool = concurrent.futures.ThreadPoolExecutor(cfg.offload_threads, "mussel-db")
    app = App(node.front)  # its bulk-load jobs: ClusterJobs (in the database)
    app.offload = pool
    app.data_api = cfg.role in ("dispatcher", "all")
    app.ready_check = node.healthy
    if cfg.auth == "token" and app.data_api:
        try:
            bootstrap_tokens(node.front)
        except SystemExit:
            node.close()
            raise
        app.auth = Authorizer(node.front.catalog)
    take_tokens = getattr(node.front.backend, "take_tokens", None)
    if take_tokens is not None:  # one budget for every dispatcher (the database's)
        app.rates = LeasedRateBuckets(take_tokens)
    apply_shedding(app, cfg)
    shared_hot = latency = None
    if app.data_api:  # hot keys counted by every dispatcher, read latency for the workers
        shared_hot = SharedHotKeys(app.metrics.hot, node.front.backend)
        app.metrics.remote_hotkeys = shared_hot.peers
        shared_hot.start()
        latency = SharedReadLatency(node.front.backend, app.metrics.recent_read_p99)
        latency.start()
    apply_logging(app, cfg)
    if node.expiration is not None:
        app.expiration = node.expiration
        app.metrics.add_expiration(node.expiration)
        node.expiration.start()
    if node.bulk is not None:
        node.bulk.start()
    elif app.data_api:  # runs happen in workers; a dispatcher asks for them
        app.expiration = ExpirationService(node.front, cfg.expire, remote=True)
        app.metrics.add_expiration(app.expiration)  # (the last runs are the database's)
    conns = Connections()
    protocol = protocol_factory(app, conns, cfg.max_body_bytes)
    try:
        server = await loop.create_server(
            protocol,
            cfg.host,
            cfg.port,
            backlog=2048,
            reuse_address=True,
            reuse_port=True,
            ssl=tls,
        )
    except OSError as exc:
        node.close()
        raise SystemExit(
            f"mussel: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}"
        ) from None
    port = server.sockets[0].getsockname()[1]
    stop = stop_event(loop)
    sampler = asyncio.create_task(app.dashboard.run(executor=pool)) if app.data_api else None
    children = _Children()
    if not child and cfg.processes > 1:
        try:
            await children.start(cfg, port, cfg.processes - 1)
        except SystemExit:
            await children.stop(5.0)
            server.close()
            node.close()
            raise
    if child:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    else:
        scheme = "https" if tls is not None else "http"
        log.info(
            "%s serving %s://%s:%d with %d process(es) (log %s, backend %s)",
            cfg.role,
            scheme,
            cfg.host,
            port,
            cfg.processes,
            _redact(cfg.log_url),
            _redact(cfg.backend_url),
        )
    report_ready(ready_fd, port)
    await stop.wait()
    log.info("stopping: no new connections; draining")
    app.ready = False
    server.close()
    if sampler is not None:
        sampler.cancel()
    await children.stop(cfg.drain_timeout_s + 5.0)
    await conns.drain(cfg.drain_timeout_s)
    if shared_hot is not None:
        await loop.run_in_executor(None, shared_hot.stop)
    if latency is not None:
        await loop.run_in_executor(None, latency.stop)
    await loop.run_in_executor(None, app.close)
    await loop.run_in_executor(None, node.close)
    pool.shutdown(wait=False)
    if app.rates is not None:
        app.rates.close()


def _redact(url: str | None) -> str:
    """A URL without its password (for logs)."""
    if url is None or "@" not in url or "://" not in url:
        return str(url)
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def main() -> int:
    """A child serving process: ``(ServerConfig, parent pid)`` pickled on stdin."""
    cfg, parent = pickle.loads(sys.stdin.buffer.read())
    assert isinstance(cfg, ServerConfig)
    _die_with_owner(parent)
    configure_logging(checked_log_format(cfg), f"{cfg.role}-child")
    try:
        uvloop.run(serve_distributed(cfg, child=True))
    except MusselError as exc:
        print(f"mussel: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
