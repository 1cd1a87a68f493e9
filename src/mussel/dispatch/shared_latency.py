"""The online read latency of a distributed deployment, for the workers' batch work.

Batch priority (SPEC §7) slows bulk loads and expiration sweeps while online reads
are slow. In embedded mode they run in the process that serves the reads and ask its
metrics; in distributed mode they run in worker processes that serve none. So each
dispatcher publishes its recent read p99 in the database's metadata
(``meta_key("latency", <process id>)``) every ``period_s``, and a worker's
``cluster_p99`` is the highest p99 published in the last ``fresh_s`` by any
dispatcher: the slowest dispatcher is the one batch work must not hurt. None (no
holding back) when no dispatcher published a figure lately, or none had enough reads
to tell. Items older than ``forget_s`` (a dispatcher gone without ``stop``) are
removed by the reader that meets them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import msgspec

from mussel.codec.keys import meta_key
from mussel.errors import MusselError
from mussel.storage.base import Backend

__all__ = ["SharedReadLatency"]

log = logging.getLogger("mussel.latency")

_PREFIX = meta_key("latency", "")


class _Item(msgspec.Struct):
    at: float
    p99_s: float | None


class SharedReadLatency:
    """``start`` publishes ``p99_s()`` (a dispatcher); ``cluster_p99`` reads (a worker)."""

    def __init__(
        self,
        backend: Backend,
        p99_s: Callable[[], float | None] | None = None,
        *,
        period_s: float = 0.5,
        fresh_s: float = 5.0,
        forget_s: float = 3600.0,
    ) -> None:
        self._backend = backend
        self._p99 = p99_s
        self._period_s = period_s
        self._fresh_s = fresh_s
        self._forget_s = forget_s
        self._key = meta_key("latency", f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cached: tuple[float, float | None] = (float("-inf"), None)
        self._lock = threading.Lock()

    # -- a dispatcher ---------------------------------------------------------------

    def start(self) -> None:
        if self._p99 is None:
            raise ValueError("only a publisher (p99_s given) starts")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mussel-latency", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop publishing and remove this process's item."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            try:
                self._backend.meta_write({self._key: None})
            except MusselError as exc:
                log.warning("cannot remove this dispatcher's read latency: %s", exc)

    def publish(self) -> None:
        assert self._p99 is not None
        item = _Item(time.time(), self._p99())
        self._backend.meta_write({self._key: msgspec.msgpack.encode(item)})

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.publish()
            except MusselError as exc:
                log.debug("cannot publish the read latency: %s", exc)

    # -- a worker -------------------------------------------------------------------

    def cluster_p99(self) -> float | None:
        """The highest read p99 (seconds) any dispatcher published lately, or None.
        Reads the database at most once per ``period_s``; a database error reads as
        None (batch work then goes on: it has its own errors to meet)."""
        now = time.monotonic()
        with self._lock:
            at, value = self._cached
            if now - at < self._period_s:
                return value
            try:
                value = self._read()
            except MusselError as exc:
                log.debug("cannot read the dispatchers' read latency: %s", exc)
                value = None
            self._cached = (now, value)
            return value

    def _read(self) -> float | None:
        now = time.time()
        worst: float | None = None
        stale: list[bytes] = []
        for key, raw in self._backend.meta_scan(_PREFIX):
            try:
                item = msgspec.msgpack.decode(raw, type=_Item)
            except msgspec.DecodeError:
                stale.append(key)  # not ours to read: a damaged or foreign item
                continue
            if now - item.at > self._forget_s:
                stale.append(key)
            elif now - item.at <= self._fresh_s and item.p99_s is not None:
                worst = item.p99_s if worst is None else max(worst, item.p99_s)
        if stale:
            self._backend.meta_write(dict.fromkeys(stale, None))
        return worst
