"""``Replayer``: one thread that applies the write log to the backend.

It polls the log from the positions stored in the backend, applies each batch
with the new positions in one atomic backend write (so a crash at any moment
replays exactly what was not applied: nothing lost, nothing doubled), then
publishes the positions on the ``Watermark``. Every ``sync_interval_s`` (and on
stop) it makes the backend durable and only then lets the log drop what is
applied, so after a crash the log still holds everything not yet durable.

Per-partition order is the log's order; batches mix partitions freely since
writes to one (table, pk) always share a partition.

With ``group`` (distributed mode) the replayer is one member of a consumer group
of the log (``KafkaLog.group_consumer``): it applies only the partitions the group
gives it, starting each one from the offset stored in the backend. Each batch is
applied with ``expect`` = its first offset per partition, so a replayer that lost a
partition in a rebalance, and applies a batch late, is refused by the backend
(``ConflictError``) instead of applying it twice; it then seeks back to the stored
offsets. Records of a table the local catalog does not know make it refresh the
catalog first (another process created the table).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from mussel.catalog import Catalog
from mussel.clock import Clock
from mussel.errors import ConflictError, MusselError, UnavailableError
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
        group: str | None = None,
        group_options: Mapping[str, float] | None = None,
    ) -> None:
        self._log = wlog
        self._backend = backend
        self._catalog = catalog
        self._clock = clock
        self._batch_records = batch_records
        self._sync_interval_s = sync_interval_s
        self._poll_timeout_s = poll_timeout_s
        self._group = group
        self._group_options = dict(group_options or {})
        self.revoked = 0
        """Rebalances that took this member's partitions away (group mode)."""
        self._consumer: Any = None
        self.fenced = 0
        """Batches refused because another replayer had applied past them."""
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

    def _positions_of(self, partitions: list[int]) -> dict[int, int]:
        stored = self._backend.applied_positions()
        positions = {p: stored.get(p, 0) for p in partitions}
        self.watermark.advance(positions, False)
        return positions

    def _open_consumer(self) -> Any:
        if self._group is None:
            return self._log.consumer(self._backend.applied_positions())
        group_consumer = getattr(self._log, "group_consumer", None)
        if group_consumer is None:
            raise ConflictError("this write log has no consumer groups")
        consumer = group_consumer(self._group, self._positions_of, **self._group_options)
        consumer.on_revoke = self._on_revoke
        return consumer

    def assigned_partitions(self) -> list[int]:
        """The partitions this replayer applies now: every one without a group; in
        group mode its share (empty while the group rebalances)."""
        if self._group is None:
            return list(range(self._log.partitions))
        consumer = self._consumer
        return [] if consumer is None else sorted(consumer.assignment())

    def _on_revoke(self, partitions: list[int]) -> None:
        self.revoked += 1
        log.info("partitions %s taken away by a rebalance", partitions)

    def _run(self) -> None:
        try:
            consumer = self._consumer = self._open_consumer()
        except MusselError as exc:
            self.error = exc
            log.error("replayer cannot start: %s", exc)
            return
        last_sync = self._clock.monotonic()
        synced = self.watermark.applied()
        poll_delay = 0.0
        try:
            while True:
                stopping = self._stop.is_set()
                try:
                    parts, offsets, records = self._poll(
                        consumer, 0.0 if stopping else self._poll_timeout_s
                    )
                except UnavailableError as exc:  # broker or backend away: wait, ask again
                    if stopping:
                        raise
                    poll_delay = self._unavailable(exc, poll_delay)
                    continue
                if poll_delay:
                    log.info("the log answers again")
                    self.error = None
                    poll_delay = 0.0
                if records:
                    # the last offset of each partition wins (a C-level dict build)
                    last = dict(zip(parts, offsets, strict=True))
                    positions = {p: o + 1 for p, o in last.items()}
                    if not self._apply(records, positions, parts, offsets):
                        continue
                    caught_up = len(records) < self._batch_records and self._caught_up()
                    self.watermark.advance(positions, caught_up)
                    self.applied_records += len(records)
                    if self.on_applied is not None:
                        self.on_applied(positions)
                elif self._caught_up():
                    self.watermark.mark_caught_up()
                now = self._clock.monotonic()
                if (stopping and not records) or now - last_sync >= self._sync_interval_s:
                    applied = self.watermark.applied()
                    if applied != synced:
                        self._backend.sync()
                        self._log.release(applied)
                        synced = applied
                    last_sync = now
                if stopping and not records:
                    return
        except MusselError as exc:  # the log itself is damaged: nothing more can be applied
            self.error = exc
            log.error("replayer stopped: %s", exc)
        finally:
            consumer.close()

    def _unavailable(self, exc: UnavailableError, delay: float) -> float:
        """Wait after a failed poll (the broker, or the backend asked for the positions
        of newly assigned partitions, is unavailable); the next, longer delay."""
        if delay == 0.0:
            log.warning("cannot read the log (%s); retrying", exc)
        self.error = exc
        self._stop.wait(delay or 0.05)
        return min(max(delay * 2, 0.05), 2.0)

    def _caught_up(self) -> bool:
        return self.watermark.reached(self._log.end_offsets())

    def _poll(self, consumer: Any, timeout_s: float) -> tuple[Any, Any, list[Mutation]]:
        """The next entries as columns (partitions, offsets, records): from
        ``poll_columns`` when the consumer has it (the local log's: no per-record
        tuples), else from ``poll``'s entries."""
        poll_columns = getattr(consumer, "poll_columns", None)
        if poll_columns is not None:
            return poll_columns(self._batch_records, timeout_s)  # type: ignore[no-any-return]
        entries = consumer.poll(self._batch_records, timeout_s)
        return (
            list(map(_PARTITION, entries)),
            list(map(_OFFSET, entries)),
            list(map(_RECORD, entries)),
        )

    def _first_offsets(self, parts: Sequence[int], offsets: Sequence[int]) -> dict[int, int]:
        """The first offset of each partition (the last one of the reversed columns wins)."""
        return dict(zip(reversed(parts), reversed(offsets), strict=True))

    def _epochs(self, records: list[Mutation]) -> Mapping[int, int]:
        """The live tables' epochs. With a shared catalog, records of a table created
        since this process last read it (an id at or past ``next_table_id``) make it
        read the catalog again first; an id still unknown then is ``UnavailableError``
        (the batch is retried, never applied as if the table were dropped). An unknown
        lower id is a dropped table's: its records are skipped."""
        epochs = self._catalog.epochs()
        if not self._catalog.shared:
            return epochs
        unknown = {m.table_id for m in records if m.table_id not in epochs}
        if unknown and max(unknown) >= self._catalog.next_table_id:
            self._catalog.refresh()
            epochs = self._catalog.epochs()
            if max(unknown) >= self._catalog.next_table_id:
                raise UnavailableError(
                    f"the log names table id {max(unknown)}, which the catalog does not hold yet"
                )
        return epochs

    def _apply(
        self,
        records: list[Mutation],
        positions: dict[int, int],
        parts: Sequence[int],
        offsets: Sequence[int],
    ) -> bool:
        """Apply one batch, retrying while the backend is unavailable. False when the
        batch was fenced off (another replayer applied past it): the consumer then
        continues from the stored offsets."""
        delay = 0.01
        while True:
            try:
                with self._catalog.apply_lock:
                    epochs = self._epochs(records)
                    if self._group is None:
                        self._backend.apply(records, epochs, positions)
                    else:
                        self._backend.apply(
                            records, epochs, positions, expect=self._first_offsets(parts, offsets)
                        )
                return True
            except ConflictError as exc:
                self.fenced += 1
                log.warning("batch fenced off (%s); continuing from the stored offsets", exc)
                stored = self._backend.applied_positions()
                # (a rebalance during the retries below may have taken partitions away)
                held = self._consumer.assignment()
                self._consumer.seek({p: stored.get(p, 0) for p in positions if p in held})
                return False
            except MusselError as exc:
                if self._stop.is_set() and delay > 1.0:
                    raise
                log.warning("apply failed (%s); retrying in %.2fs", exc, delay)
                self._wait_alive(delay)
                delay = min(delay * 2, 2.0)

    def _wait_alive(self, delay: float) -> None:
        """Sleep ``delay`` between apply attempts; a group member keeps serving its
        group meanwhile (``keepalive``), so a long backend outage does not drop it
        from the group and move its partitions for nothing."""
        deadline = time.monotonic() + delay
        while True:
            try:
                self._consumer.keepalive()
            except MusselError as exc:
                log.debug("keepalive failed: %s", exc)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))
