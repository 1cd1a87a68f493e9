"""``mussel serve``: the embedded server — one process, the engine and the HTTP API.

Start-up opens the store (recovering the log and replaying what was not applied),
then listens. SIGTERM or SIGINT: stop accepting, let in-flight requests finish (up
to ``drain_timeout_s``), close the store (the replayer applies everything durable,
RocksDB is flushed), exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from mussel.bulkload import JobManager
from mussel.dispatch.app import App
from mussel.dispatch.http import HttpServerProtocol
from mussel.engine import Store, StoreConfig

__all__ = ["ServerConfig", "run_server"]

log = logging.getLogger("mussel.server")


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 7070
    max_body_bytes: int = 64 << 20
    drain_timeout_s: float = 10.0
    store: StoreConfig = field(default_factory=StoreConfig)


class _Connections:
    def __init__(self) -> None:
        self.live: set[HttpServerProtocol] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def count(self) -> int:
        return len(self.live)

    def opened(self, proto: HttpServerProtocol) -> None:
        self.live.add(proto)
        self.idle.clear()

    def closed(self, proto: HttpServerProtocol) -> None:
        self.live.discard(proto)
        if not self.live:
            self.idle.set()

    def shutdown(self) -> None:
        """Close idle keep-alive connections; the others close after their answers."""
        for proto in list(self.live):
            proto.shutdown()


async def _serve(cfg: ServerConfig, ready_fd: int | None) -> None:
    store = Store.open(cfg.data_dir, cfg.store)
    app = App(store, jobs=JobManager(store, Path(cfg.data_dir) / "bulk"))
    conns = _Connections()
    loop = asyncio.get_running_loop()

    def protocol() -> HttpServerProtocol:
        proto = HttpServerProtocol(app, cfg.max_body_bytes, on_close=lambda: conns.closed(proto))
        conns.opened(proto)
        return proto

    try:
        server = await loop.create_server(
            protocol, cfg.host, cfg.port, backlog=2048, reuse_address=True
        )
    except OSError as exc:
        store.close()
        raise SystemExit(
            f"mussel: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}"
        ) from None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = server.sockets[0].getsockname()[1]
    print(
        f"mussel: serving http://{cfg.host}:{port} (data in {cfg.data_dir})",
        file=sys.stderr,
        flush=True,
    )
    if ready_fd is not None:
        with socket.socket(fileno=ready_fd) as s:
            s.sendall(str(port).encode())
    await stop.wait()
    log.info("stopping: no new connections; draining")
    app.ready = False
    server.close()
    conns.shutdown()
    try:
        await asyncio.wait_for(conns.idle.wait(), cfg.drain_timeout_s)
    except TimeoutError:
        log.warning("drain timed out with %d connections open", conns.count)
    await loop.run_in_executor(None, app.close)
    await loop.run_in_executor(None, store.close)


def run_server(cfg: ServerConfig, ready_fd: int | None = None) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvloop.run(_serve(cfg, ready_fd))
    return 0
