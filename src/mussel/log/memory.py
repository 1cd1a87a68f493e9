"""``MemoryLog``: the in-memory reference implementation of the ``WriteLog`` protocol.

For tests and ``Store.memory()``. Offsets, partitions, consumers, release and close
behave as :class:`mussel.log.local.LocalLog`'s; an append is "durable" as soon as it
returns (nothing survives the process). ``release`` drops records one by one rather
than by segment, so a consumer asking for a released offset fails earlier than on a
LocalLog. Thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from threading import Condition
from types import TracebackType

from mussel.errors import CorruptionError, InvalidRequestError, UnavailableError
from mussel.log.base import LogEntry, partition_for
from mussel.model import Mutation

__all__ = ["MemoryLog", "MemoryLogConsumer"]


class MemoryLog:
    """A :class:`mussel.log.base.WriteLog` in memory. Partition p holds the records of
    offsets ``starts[p] .. starts[p] + len(records[p]) - 1``."""

    def __init__(self, partitions: int = 8) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidRequestError(f"partitions must be a positive integer, not {partitions!r}")
        self._partitions = partitions
        self._cond = Condition()
        self._records: list[list[Mutation]] = [[] for _ in range(partitions)]
        self._starts = [0] * partitions
        self._closed = False

    @property
    def partitions(self) -> int:
        return self._partitions

    def append(self, records: Sequence[Mutation]) -> list[tuple[int, int]]:
        """Append ``records`` atomically; return (partition, offset) of each, in order."""
        for r in records:
            if not isinstance(r, Mutation):
                raise InvalidRequestError(f"cannot log {type(r).__name__}: not a Mutation")
        n = self._partitions
        try:
            parts = [partition_for(r.table_id, r.pk, n) for r in records]
        except TypeError as exc:
            raise InvalidRequestError(f"cannot log these records: {exc}") from exc
        placed = []
        with self._cond:
            self._check_open()
            for p, r in zip(parts, records, strict=True):
                log = self._records[p]
                placed.append((p, self._starts[p] + len(log)))
                log.append(r)
            if placed:
                self._cond.notify_all()
        return placed

    def append_async(self, records: Sequence[Mutation]) -> Future[list[tuple[int, int]]]:
        """``append``, already done: the future is complete when returned."""
        fut: Future[list[tuple[int, int]]] = Future()
        fut.set_result(self.append(records))
        return fut

    def end_offsets(self) -> dict[int, int]:
        with self._cond:
            self._check_open()
            return {p: self._starts[p] + len(log) for p, log in enumerate(self._records)}

    def end_offset(self, partition: int) -> int:
        """``end_offsets()[partition]`` (under the lock: a release moves two values)."""
        with self._cond:
            self._check_open()
            if not 0 <= partition < self._partitions:
                raise InvalidRequestError(
                    f"no partition {partition} (the log has partitions 0..{self._partitions - 1})"
                )
            return self._starts[partition] + len(self._records[partition])

    def consumer(self, positions: Mapping[int, int]) -> MemoryLogConsumer:
        """A consumer of every partition from ``positions`` (missing: 0); raises
        ``CorruptionError`` for a position below a released offset."""
        want = self._positions(positions)
        with self._cond:
            self._check_open()
            self._check_retained(want)
        return MemoryLogConsumer(self, want)

    def release(self, positions: Mapping[int, int]) -> None:
        """Drop every record of partition p below ``positions[p]``."""
        want = self._positions(positions)
        with self._cond:
            self._check_open()
            for p, w in enumerate(want):
                drop = min(w - self._starts[p], len(self._records[p]))
                if drop > 0:
                    del self._records[p][:drop]
                    self._starts[p] += drop

    def close(self) -> None:
        """Idempotent; afterwards every method and every consumer's poll raise
        ``UnavailableError``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> MemoryLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        """REQUIRES: ``_cond`` held."""
        if self._closed:
            raise UnavailableError("the memory write log is closed")

    def _check_retained(self, want: list[int]) -> None:
        """REQUIRES: ``_cond`` held."""
        for p, (w, start) in enumerate(zip(want, self._starts, strict=True)):
            if w < start:
                raise CorruptionError(
                    f"log starts at offset {start} of partition {p}: offset {w} was released"
                )

    def _positions(self, positions: Mapping[int, int]) -> list[int]:
        want = [0] * self._partitions
        for p, offset in positions.items():
            if not 0 <= p < self._partitions or offset < 0:
                raise InvalidRequestError(
                    f"bad log position {offset} of partition {p} "
                    f"(the log has partitions 0..{self._partitions - 1})"
                )
            want[p] = offset
        return want

    def _take(self, want: list[int], max_records: int, first: int) -> list[LogEntry]:
        """Up to ``max_records`` entries from ``want``, advancing it; partitions in turn
        from ``first``. REQUIRES: ``_cond`` held."""
        self._check_retained(want)
        out: list[LogEntry] = []
        n = self._partitions
        for k in range(n):
            p = (first + k) % n
            log = self._records[p]
            i = want[p] - self._starts[p]
            take = log[i : i + max_records - len(out)]
            out.extend(LogEntry(p, want[p] + k, r) for k, r in enumerate(take))
            want[p] += len(take)
            if len(out) >= max_records:
                break
        return out


class MemoryLogConsumer:
    """Reads a :class:`MemoryLog` from given positions; one thread polls a consumer."""

    def __init__(self, log: MemoryLog, want: list[int]) -> None:
        self._log = log
        self._want = want
        self._first = 0  # the partition served first by the next poll (fairness)
        self._closed = False

    def poll(self, max_records: int, timeout_s: float) -> list[LogEntry]:
        """Up to ``max_records`` entries; waits up to ``timeout_s`` when none is ready."""
        if self._closed:
            raise UnavailableError("this log consumer is closed")
        log = self._log
        deadline = time.monotonic() + timeout_s
        with log._cond:
            while True:
                log._check_open()
                out = log._take(self._want, max_records, self._first)
                self._first = (self._first + 1) % log.partitions
                remaining = deadline - time.monotonic()
                if out or max_records <= 0 or remaining <= 0:
                    return out
                log._cond.wait(remaining)

    def keepalive(self) -> None:
        """Nothing to keep: this consumer belongs to no group."""

    def close(self) -> None:
        self._closed = True
