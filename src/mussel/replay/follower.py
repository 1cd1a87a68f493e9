"""``Follower``: keeps a follower process's RocksDB secondary close behind the owner.

A follower process serves reads from a secondary instance of the owner's RocksDB
(``RocksBackend`` with ``secondary_path``). This thread is its replayer: it watches
the owner's ``SharedState`` and, when the owner has applied something new or
changed the catalog, calls ``catch_up()`` on the backend (at most once per
``interval_s``: a catch-up costs ~1 ms plus ~1 µs per new record, with the GIL;
the shared state is polled every ``poll_s`` while it changes or a strong read waits,
every ``idle_poll_s`` (default ``interval_s``) once it has been quiet for
``IDLE_AFTER_S``),
reloads the catalog when it changed, and advances the ``Watermark`` to the
positions the secondary now holds. Those positions are read from the database
itself (the replayer writes them in the same batch as the data), so they are
exactly what the view contains.

So the engine's read paths work unchanged on a follower: a strong read waits on
this watermark for the ends the owner published (every write acknowledged before
the read), and ``staleness_ms`` bounds eventual reads. The follower also
publishes its positions in its slot, so that the owner's ``ack=applied`` writes
return only once every live follower can read them.
"""

from __future__ import annotations

import logging
import threading
import time

from mussel.catalog import Catalog
from mussel.clock import Clock
from mussel.errors import MusselError
from mussel.log.shared import SharedState
from mussel.replay.watermark import Watermark
from mussel.storage.rocksdb import RocksBackend

__all__ = ["Follower"]

log = logging.getLogger("mussel.follower")

HEARTBEAT_S = 0.2
IDLE_AFTER_S = 0.05
"""Without a change of the owner's positions or catalog for this long (and no strong
read waiting), the thread polls every ``idle_poll_s`` instead of every ``poll_s``."""


class Follower:
    """Same surface as ``Replayer`` (``watermark``, ``error``, ``applied_records``,
    ``start``, ``stop``), plus ``ensure_catalog`` for request-time checks."""

    def __init__(
        self,
        backend: RocksBackend,
        catalog: Catalog,
        state: SharedState,
        slot: int,
        clock: Clock,
        *,
        interval_s: float = 0.005,
        poll_s: float = 0.001,
        idle_poll_s: float | None = None,
    ) -> None:
        self._backend = backend
        self._catalog = catalog
        self._state = state
        self._slot = slot
        self._clock = clock
        self._interval_s = interval_s
        self._poll_s = poll_s
        self._idle_poll_s = max(poll_s, interval_s if idle_poll_s is None else idle_poll_s)
        self._last_change = clock.monotonic()
        self._lock = threading.Lock()  # one catch-up at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_applied: tuple[int, ...] = ()
        self._catalog_version = -1
        self._last_catch_up = 0.0
        self.error: MusselError | None = None
        self.applied_records = 0
        self.catch_ups = 0
        self.watermark = Watermark(backend.applied_positions(), clock)
        self.catch_up()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mussel-follower", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.watermark.demand.set()  # wakes the thread now, even from an idle poll
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._state.clear_slot(self._slot)

    def catch_up(self) -> None:
        """Bring the view up to what the owner has applied and published, now."""
        with self._lock:
            started = self._clock.monotonic()
            ends = self._state.ends()  # acknowledged before this catch-up began
            applied = self._state.applied()
            version = self._state.catalog_version()
            self._backend.catch_up()
            if version != self._catalog_version:
                self._catalog.reload()
            positions = self._backend.applied_positions()
            if self._view_is_stale(positions, applied, version):
                self._backend.reopen_secondary()
                self._catalog.reload()
                positions = self._backend.applied_positions()
                log.info(
                    "follower %d: the RocksDB secondary kept values older than the owner's "
                    "(facebook/rocksdb#15051); reopened it (%d times so far)",
                    self._slot,
                    self._backend.reopens,
                )
            self._catalog_version = version
            before = self.watermark.applied()
            self.applied_records += sum(
                max(0, off - before.get(p, 0)) for p, off in positions.items()
            )
            caught_up = all(positions.get(p, 0) >= end for p, end in enumerate(ends))
            self.watermark.advance(positions, caught_up, at=started)
            self._state.publish_slot(
                self._slot, [positions.get(p, 0) for p in range(self._state.partitions)]
            )
            self._seen_applied = applied
            self._last_catch_up = started
            self.catch_ups += 1

    def _view_is_stale(
        self, positions: dict[int, int], applied: tuple[int, ...], version: int
    ) -> bool:
        """Whether the secondary, just caught up, shows less than the owner had applied
        and published before the catch-up began.

        After a catch-up it must show at least that: the owner publishes applied
        positions after RocksDB wrote them to its WAL, and catalog versions after the
        change is durable. Less means RocksDB's stale secondary memtable (see
        ``RocksBackend.reopen_secondary``): the applied positions, written in every
        replay batch, and the catalog's version key, written with every catalog
        change, are stale whenever anything written with them is.
        """
        if any(positions.get(p, 0) < off for p, off in enumerate(applied)):
            return True
        return self._catalog.version < version

    def ensure_catalog(self) -> None:
        """Catch up now if the owner's catalog changed since the view was last read
        (a request must not miss a table created before it was sent)."""
        if self._state.catalog_version() != self._catalog_version:
            self.catch_up()

    def poll_s(self) -> float:
        """How long the thread sleeps before it looks at the shared state again:
        ``poll_s`` while the owner's state changes or a strong read waits on the
        watermark, ``idle_poll_s`` once nothing changed for ``IDLE_AFTER_S``. An idle
        follower thus takes the GIL from the serving thread a few times less often, and
        a strong read that has to wait wakes it at once (``Watermark.demand``)."""
        if self.watermark.waiters:
            return self._poll_s
        if self._clock.monotonic() - self._last_change < IDLE_AFTER_S:
            return self._poll_s
        return self._idle_poll_s

    def _run(self) -> None:
        last_beat = 0.0
        demand = self.watermark.demand
        while True:
            demand.wait(self.poll_s())
            demand.clear()
            if self._stop.is_set():
                return
            try:
                now = self._clock.monotonic()
                changed = (
                    self._state.applied() != self._seen_applied
                    or self._state.catalog_version() != self._catalog_version
                )
                if changed:
                    self._last_change = now
                if changed and now - self._last_catch_up >= self._interval_s:
                    self.catch_up()
                    last_beat = now
                    self.error = None
                elif not changed and self.watermark.reached(dict(enumerate(self._state.ends()))):
                    self.watermark.mark_caught_up(now)
                if now - last_beat >= HEARTBEAT_S:
                    self._state.publish_slot(self._slot, None)
                    last_beat = now
            except MusselError as exc:
                if self.error is None:
                    log.error("follower cannot catch up with the owner: %s", exc)
                self.error = exc
                time.sleep(0.1)
