"""``RemoteProgress``: what replayers in other processes have applied, seen from a dispatcher.

In distributed mode a dispatcher applies nothing: replayer processes (a Kafka
consumer group) apply the log to the database and store the applied offsets in
the same transaction as the data. This thread keeps a ``Watermark`` equal to
those stored offsets, so the engine's read paths work unchanged: a strong read
waits on it for the log's end offsets (every write acknowledged before the read,
by any dispatcher), ``ack=applied`` waits on it for the write's own offsets, and
``staleness_ms`` bounds eventual reads.

It reads the stored offsets every ``idle_poll_s`` and every ``busy_poll_s`` while
someone waits (a blocked ``Watermark.wait`` wakes it at once). Every
``catalog_poll_s`` it also checks the shared catalog's version and reloads it
when another process changed it.
"""

from __future__ import annotations

import logging
import threading
import time

from mussel.catalog import Catalog
from mussel.clock import Clock
from mussel.errors import MusselError
from mussel.log.base import WriteLog
from mussel.replay.watermark import Watermark
from mussel.storage.base import Backend

__all__ = ["RemoteProgress"]

log = logging.getLogger("mussel.remote")


class RemoteProgress:
    """Same surface as ``Replayer`` (``watermark``, ``error``, ``applied_records``,
    ``start``, ``stop``) for a process whose log is applied elsewhere."""

    def __init__(
        self,
        backend: Backend,
        catalog: Catalog,
        wlog: WriteLog,
        clock: Clock,
        *,
        idle_poll_s: float = 0.05,
        busy_poll_s: float = 0.0005,
        catalog_poll_s: float = 0.25,
        ends_poll_s: float = 0.1,
    ) -> None:
        self._backend = backend
        self._catalog = catalog
        self._log = wlog
        self._clock = clock
        self._idle_poll_s = idle_poll_s
        self._busy_poll_s = busy_poll_s
        self._catalog_poll_s = catalog_poll_s
        self._ends_poll_s = ends_poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: MusselError | None = None
        self.applied_records = 0
        """Records applied (by any replayer) since this process started watching."""
        self.watermark = Watermark(backend.applied_positions(), clock)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mussel-remote", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.watermark.demand.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def poll(self) -> None:
        """Read the stored offsets now and publish them."""
        positions = self._backend.applied_positions()
        before = self.watermark.applied()
        self.applied_records += sum(max(0, o - before.get(p, 0)) for p, o in positions.items())
        self.watermark.advance(positions, False)

    def _mark_caught_up(self) -> None:
        """If every write acknowledged before now is applied, say so (staleness 0)."""
        started = self._clock.monotonic()
        ends = self._log.end_offsets()
        self.poll()
        if self.watermark.reached(ends):
            self.watermark.mark_caught_up(started)

    def _run(self) -> None:
        wm = self.watermark
        last_catalog = last_ends = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now - last_ends >= self._ends_poll_s:
                    self._mark_caught_up()
                    last_ends = now
                else:
                    self.poll()
                if now - last_catalog >= self._catalog_poll_s:
                    self._catalog.refresh()
                    last_catalog = now
                if self.error is not None:
                    log.info("the backend answers again")
                self.error = None
            except MusselError as exc:
                if self.error is None:
                    log.error("cannot read the applied offsets: %s", exc)
                self.error = exc
                self._stop.wait(0.1)
                continue
            if wm.waiters:
                self._stop.wait(self._busy_poll_s)
            else:
                wm.demand.clear()
                if not wm.waiters:
                    wm.demand.wait(self._idle_poll_s)
