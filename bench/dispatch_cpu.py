"""CPU per request of the dispatcher's request pipeline, in one process, no network.

Drives ``HttpServerProtocol`` (the parser, the ``App`` pipeline, the encoder) with the
raw bytes wrk sends for a point read and a 10-key multi-get, against a real RocksDB
store, and reports ``time.process_time`` per request. What it leaves out is the kernel's
share (sockets, epoll) and wrk itself, so it isolates the Python cost of the pipeline:
the figure to compare between two versions of the code, back to back.

Run: ``python -m bench.dispatch_cpu [--keys N] [--requests N] [--profile]`` (``--profile``
prints the top cProfile entries of each case instead of timing it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from mussel.dispatch.app import App
from mussel.dispatch.http import HttpServerProtocol
from mussel.dispatch.metrics import ServerMetrics
from mussel.dispatch.quotas import RateBuckets
from mussel.engine import Store, StoreConfig
from mussel.model import Put

NS, TABLE, SK = "bench", "kv", "v"


class _Sink:
    """A transport that counts what it is given."""

    def __init__(self) -> None:
        self.answers = 0
        self.bad = 0

    def write(self, data: bytes) -> None:
        self.answers += 1
        if not data.startswith(b"HTTP/1.1 200"):
            self.bad += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def _key(i: int) -> str:
    return f"key:{i:012d}"


def point(n: int, consistency: str) -> bytes:
    path = f"/v1/namespaces/{NS}/tables/{TABLE}/rows/{_key(random.randrange(n))}"
    return (
        f"GET {path}?sk={SK}&consistency={consistency} HTTP/1.1\r\nHost: 127.0.0.1:7070\r\n\r\n"
    ).encode()


def mget(n: int, consistency: str, k: int = 10) -> bytes:
    keys = ",".join(f'{{"pk":"{_key(random.randrange(n))}","sk":"{SK}"}}' for _ in range(k))
    body = f'{{"keys":[{keys}],"consistency":"{consistency}"}}'.encode()
    head = (
        f"POST /v1/namespaces/{NS}/tables/{TABLE}/get HTTP/1.1\r\nHost: 127.0.0.1:7070\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _open(root: Path, keys: int) -> Store:
    store = Store.open(root / "data", StoreConfig())
    store.put_namespace(NS)
    table = store.put_table(NS, TABLE)
    value = b"x" * 100
    for start in range(0, keys, 5000):
        end = min(keys, start + 5000)
        batch = [Put(_key(i).encode(), SK.encode(), value, 1) for i in range(start, end)]
        table.write(batch, ack="applied" if end == keys else "durable")
    return store


async def _drive(app: App, requests: Sequence[bytes], conns: int = 32) -> tuple[float, int]:
    """Answer ``requests`` over ``conns`` connections, in rounds of one request per
    connection (as 32 wrk connections do); (CPU seconds per request of the
    20th-percentile round, requests answered). A low percentile of many short rounds is
    what the code costs with the least interference from other work on a shared
    machine."""
    sinks = [_Sink() for _ in range(conns)]
    protos = []
    for sink in sinks:
        proto = HttpServerProtocol(app, 64 << 20)
        proto.connection_made(sink)  # type: ignore[arg-type]
        protos.append(proto)
    per_round: list[float] = []
    answered = 0
    for at in range(0, len(requests), conns):
        part = requests[at : at + conns]
        started = time.process_time()
        for proto, raw in zip(protos, part, strict=False):
            proto.data_received(raw)
        answered += len(part)
        while sum(s.answers for s in sinks) < answered:  # the round's answers are written
            await asyncio.sleep(0)
        per_round.append((time.process_time() - started) / len(part))
    if any(s.bad for s in sinks):
        raise RuntimeError(f"{sum(s.bad for s in sinks)} answers were not 200")
    per_round.sort()
    return per_round[len(per_round) // 5], answered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="mussel-cpu-") as tmp:
        store = _open(Path(tmp), args.keys)
        metrics = ServerMetrics(store)
        app = App(store, metrics)
        app.rates = RateBuckets.create(Path(tmp) / "buckets")
        cases = {
            "get strong": [point(args.keys, "strong") for _ in range(args.requests)],
            "get eventual": [point(args.keys, "eventual") for _ in range(args.requests)],
            "mget10 strong": [mget(args.keys, "strong") for _ in range(args.requests // 4)],
            "mget10 eventual": [mget(args.keys, "eventual") for _ in range(args.requests // 4)],
        }
        loop = uvloop.new_event_loop()
        try:
            for name, reqs in cases.items():
                if args.only and args.only not in name:
                    continue
                loop.run_until_complete(_drive(app, reqs[:1000]))  # warm up
                if args.profile:
                    prof = cProfile.Profile()
                    prof.enable()
                    loop.run_until_complete(_drive(app, reqs))
                    prof.disable()
                    print(f"== {name}")
                    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
                    continue
                best = min(
                    loop.run_until_complete(_drive(app, reqs))[0] for _ in range(args.rounds)
                )
                print(f"{name:16s} {best * 1e6:7.1f} µs CPU per request")
        finally:
            loop.close()
            app.close()
            store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
