"""What the owner and follower processes of ``mussel serve`` share: listening and draining."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from mussel.dispatch.app import App
from mussel.dispatch.http import HttpServerProtocol
from mussel.dispatch.proxy import open_unix

__all__ = [
    "RUN_DIR",
    "Connections",
    "SnapshotServer",
    "fetch_snapshot",
    "protocol_factory",
    "stop_event",
    "write_atomic",
]

log = logging.getLogger("mussel.server")

RUN_DIR = "run"
"""Under the data directory: the shared state, follower secondaries, metrics, pids."""


class Connections:
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

    async def drain(self, timeout_s: float) -> None:
        self.shutdown()
        try:
            await asyncio.wait_for(self.idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("drain timed out with %d connections open", self.count)


def protocol_factory(
    app: App, conns: Connections, max_body_bytes: int, *, internal: bool = False
) -> Callable[[], HttpServerProtocol]:
    """Connections to ``app``; ``internal`` ones come from the server's own processes."""

    def protocol() -> HttpServerProtocol:
        # counted once connected: a TLS handshake that fails never connects the protocol
        proto = HttpServerProtocol(
            app,
            max_body_bytes,
            on_close=lambda: conns.closed(proto),
            internal=internal,
            on_open=lambda: conns.opened(proto),
        )
        return proto

    return protocol


def stop_event(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def write_atomic(path: Path, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` in one step (readers see old or new)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class SnapshotServer(asyncio.Protocol):
    """A follower's metrics outlet: writes ``snapshot()`` (msgpack) to whoever
    connects, then closes. The owner connects on every ``/metrics`` scrape."""

    def __init__(self, snapshot: Callable[[], bytes]) -> None:
        self._snapshot = snapshot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self._snapshot())  # type: ignore[attr-defined]  # uvloop's
        transport.close()


async def fetch_snapshot(address: str, timeout_s: float = 1.0) -> bytes | None:
    """What the ``SnapshotServer`` at ``address`` (abstract Unix socket) says; None
    if it does not answer in time."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await open_unix(address)
            try:
                return await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
