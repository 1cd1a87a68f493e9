"""A follower process of ``mussel serve`` (see ``server.py``): serves reads, hands the rest over.

Started by the owner as ``python -m mussel.dispatch.follower`` with its arguments
pickled on stdin: ``(ServerConfig, slot, port, address, owner_pid)``. It writes
``ready`` on stdout once it listens. It dies with the owner (Linux
``PR_SET_PDEATHSIG``), and on SIGTERM or SIGINT drains its connections and exits.

Unix sockets (abstract namespace): the owner listens on ``<address>-owner`` for
the requests followers hand over; follower i answers ``<address>-f<i>`` with its
request metrics, which the owner adds to its ``/metrics``, and ``<address>-s<i>`` with
expiration sweep scans (``expire/remote.py``).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import pickle
import signal
import sys

import msgspec
import uvloop

from mussel.dispatch.app import App
from mussel.dispatch.auth import Authorizer
from mussel.dispatch.proxy import OwnerProxy
from mussel.dispatch.quotas import RateBuckets
from mussel.dispatch.server import (
    ServerConfig,
    apply_logging,
    apply_shedding,
    checked_log_format,
    tls_context,
)
from mussel.dispatch.serving import (
    RUN_DIR,
    Connections,
    SnapshotServer,
    protocol_factory,
    stop_event,
)
from mussel.engine import Store
from mussel.errors import MusselError
from mussel.expire import ScanServer
from mussel.log.shared import SharedState
from mussel.observability.logging import configure_logging

__all__ = ["main"]

log = logging.getLogger("mussel.follower")

_PR_SET_PDEATHSIG = 1


def _die_with_owner(owner_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != owner_pid:  # the owner died before prctl took effect
        os._exit(1)


async def _serve(cfg: ServerConfig, slot: int, port: int, address: str, ready: bool = True) -> None:
    run = cfg.data_dir / RUN_DIR
    state = SharedState.attach(run / "state")
    store = Store.open_follower(cfg.data_dir, state, slot, cfg.store)
    store.replayer.start()
    proxy = OwnerProxy(f"{address}-owner")
    app = App(store, proxy=proxy)
    if cfg.auth == "token":
        app.auth = Authorizer(store.catalog)
    app.rates = RateBuckets.attach(run / "buckets")
    apply_shedding(app, cfg)
    apply_logging(app, cfg)
    conns = Connections()
    loop = asyncio.get_running_loop()
    protocol = protocol_factory(app, conns, cfg.max_body_bytes)
    server = await loop.create_server(
        protocol,
        cfg.host,
        port,
        backlog=2048,
        reuse_address=True,
        reuse_port=True,
        ssl=tls_context(cfg),
    )
    stop = stop_event(loop)
    outlet = await loop.create_unix_server(
        lambda: SnapshotServer(lambda: msgspec.msgpack.encode(app.metrics.snapshot())),
        f"{address}-f{slot}",
    )
    scans = await loop.create_unix_server(lambda: ScanServer(store.backend), f"{address}-s{slot}")
    if ready:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    await stop.wait()
    app.ready = False
    server.close()
    await conns.drain(cfg.drain_timeout_s)
    outlet.close()
    scans.close()
    proxy.close()
    await loop.run_in_executor(None, store.close)
    state.close()


def main() -> int:
    cfg, slot, port, address, owner_pid = pickle.loads(sys.stdin.buffer.read())
    assert isinstance(cfg, ServerConfig)
    _die_with_owner(owner_pid)
    configure_logging(checked_log_format(cfg), f"follower-{slot}")
    try:
        uvloop.run(_serve(cfg, slot, port, address))
    except MusselError as exc:
        print(f"mussel: follower {slot}: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
