"""``Replayer``: one thread that applies the write log to the backend.

It polls the log from the positions stored in the backend, applies each batch
with the new positions in one atomic backend write (so a crash at any moment
replays exactly what was not applied: nothing lost, nothing doubled), then
publishes the positions on the ``Watermark``. Every ``sync_interval_s`` (and on
stop) it makes the backend durable and only then lets the log drop what is
applied, so after a crash the log still holds everything not yet durable.

Per-partition order is the log's order; batches mix partitions freely since
writes to one (table, pk) always share a partition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from operator import itemgetter

from mussel.catalog import Catalog
from mussel.clock import Clock
from mussel.errors import MusselError
from mussel.log.base import WriteLog
from mussel.model import Mutation
from mussel.replay.watermark import Watermark
from mussel.storage.base import Backend

__all__ = ["Replayer"]

log = logging.getLogger("mussel.replay")

_PARTITION, _OFFSET, _RECORD = itemgetter(0), itemgetter(1), itemgetter(2)


class Replayer:
    def __init__(
        self,
        wlog: WriteLog,
        backend: Backend,
        catalog: Catalog,
        clock: Clock,
        *,
        batch_records: int = 10_000,
        sync_interval_s: float = 10.0,
        poll_timeout_s: float = 0.05,
    ) -> None:
        self._log = wlog
        self._backend = backend
        self._catalog = catalog
        self._clock = clock
        self._batch_records = batch_records
        self._sync_interval_s = sync_interval_s
        self._poll_timeout_s = poll_timeout_s
        self.watermark = Watermark(backend.applied_positions(), clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied_records = 0
        self.error: MusselError | None = None
        self.on_applied: Callable[[dict[int, int]], None] | None = None
        """Called with the new positions after each applied batch (must not raise)."""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mussel-replayer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Apply what is already in the log, sync, release, and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        consumer = self._log.consumer(self._backend.applied_positions())
        last_sync = self._clock.monotonic()
        synced = self.watermark.applied()
        try:
            while True:
                stopping = self._stop.is_set()
                entries = consumer.poll(
                    self._batch_records, 0.0 if stopping else self._poll_timeout_s
                )
                if entries:
                    # the last offset of each partition wins: C-speed column extraction
                    last = dict(zip(map(_PARTITION, entries), map(_OFFSET, entries), strict=True))
                    positions = {p: o + 1 for p, o in last.items()}
                    self._apply(list(map(_RECORD, entries)), positions)
                    caught_up = len(entries) < self._batch_records and self._caught_up()
                    self.watermark.advance(positions, caught_up)
                    self.applied_records += len(entries)
                    if self.on_applied is not None:
                        self.on_applied(positions)
                elif self._caught_up():
                    self.watermark.mark_caught_up()
                now = self._clock.monotonic()
                if (stopping and not entries) or now - last_sync >= self._sync_interval_s:
                    applied = self.watermark.applied()
                    if applied != synced:
                        self._backend.sync()
                        self._log.release(applied)
                        synced = applied
                    last_sync = now
                if stopping and not entries:
                    return
        except MusselError as exc:  # the log itself failed: nothing more can be applied
            self.error = exc
            log.error("replayer stopped: %s", exc)
        finally:
            consumer.close()

    def _caught_up(self) -> bool:
        return self.watermark.reached(self._log.end_offsets())

    def _apply(self, records: list[Mutation], positions: dict[int, int]) -> None:
        """Apply one batch, retrying while the backend is unavailable."""
        delay = 0.01
        while True:
            try:
                with self._catalog.apply_lock:
                    self._backend.apply(records, self._catalog.epochs(), positions)
                return
            except MusselError as exc:
                if self._stop.is_set() and delay > 1.0:
                    raise
                log.warning("apply failed (%s); retrying in %.2fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
