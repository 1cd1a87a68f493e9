"""``LocalLogConsumer``: reads a :class:`mussel.log.local.LocalLog` from given positions.

A consumer returns each partition's records in offset order, each once, never a record
that is not durable (fsync'd). Recent batches come from the log's memory tail, which the
flusher publishes after its fsync, already decoded; older ones (after open, or when the
consumer fell behind the tail) are read and decoded from the segment files, up to the
log's durable position, and the consumer switches to memory when it reaches the batches
held there.

This is the log's other half: it reads the log's state (segments, durable position,
memory tail) under the log's ``_cond``, as the REQUIRES notes of ``LocalLog``'s helpers
say, and never takes the log's append lock.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from mussel.errors import CorruptionError, UnavailableError
from mussel.log import format as fmt
from mussel.log.base import LogEntry
from mussel.model import Mutation

if TYPE_CHECKING:
    from mussel.log.fsio import ReadableFile
    from mussel.log.local import LocalLog

__all__ = ["LocalLogConsumer"]

_READ_BYTES: Final = 1 << 20

_new_tuple = tuple.__new__  # LogEntry(p, o, r) without the Python-level __new__: 2x faster


def _entries(
    partitions: Sequence[int], offsets: Sequence[int], records: Sequence[Mutation]
) -> list[LogEntry]:
    """``[LogEntry(p, o, r) ...]`` of the three columns, at C speed."""
    return list(
        map(_new_tuple, itertools.repeat(LogEntry), zip(partitions, offsets, records, strict=True))
    )


class LocalLogConsumer:
    """Reads every partition of a :class:`LocalLog` from given positions, in offset order
    per partition, never past what is durable. One thread polls a consumer.

    Made by ``LocalLog.consumer``: ``want[p]`` is the next offset of partition p to
    return (records below it are skipped) and (``sequence``, ``pos``) the segment and byte
    position of the first frame to read, a frame boundary at or before every wanted record.
    """

    def __init__(self, log: LocalLog, want: list[int], sequence: int, pos: int) -> None:
        self._log = log
        self._want = want  # per partition, the next offset to return
        self._sequence, self._pos = sequence, pos  # the next frame to read
        self._lsn: int | None = None  # the next memory-tail batch, when reading memory
        # The buffered entries, column by column (partition, offset, record): batches are
        # appended with three C-level ``extend``s, and ``poll_columns`` hands out slices.
        self._parts: list[int] = []
        self._offsets: list[int] = []
        self._records: list[Mutation] = []
        self._taken = 0
        self._reader: ReadableFile | None = None
        self._reader_sequence = -1
        self._closed = False

    def poll(self, max_records: int, timeout_s: float) -> list[LogEntry]:
        """Up to ``max_records`` entries; waits up to ``timeout_s`` when none is ready."""
        return _entries(*self.poll_columns(max_records, timeout_s))

    def poll_columns(
        self, max_records: int, timeout_s: float
    ) -> tuple[list[int], list[int], list[Mutation]]:
        """``poll`` as three lists (partitions, offsets, records) of the same length,
        without making a ``LogEntry`` per record (what the replayer reads)."""
        log = self._log
        deadline: float | None = None
        while True:
            if self._closed:
                raise UnavailableError("this log consumer is closed")
            if max_records <= 0:
                return [], [], []
            while len(self._records) - self._taken < max_records and self._fill(max_records):
                pass
            if len(self._records) > self._taken:
                return self._take(max_records)
            with log._cond:
                log._check_open()
                if self._more_durable():
                    continue
                now = time.monotonic()
                deadline = now + timeout_s if deadline is None else deadline
                if now >= deadline:
                    return [], [], []
                log._cond.wait(deadline - now)

    def keepalive(self) -> None:
        """Nothing to keep: this consumer belongs to no group."""

    def _take(self, max_records: int) -> tuple[list[int], list[int], list[Mutation]]:
        """Up to ``max_records`` buffered entries, as columns."""
        i, n = self._taken, len(self._records)
        if i == 0 and n <= max_records:  # all of it: hand the lists over
            out = self._parts, self._offsets, self._records
            self._parts, self._offsets, self._records = [], [], []
            return out
        j = min(n, i + max_records)
        out = self._parts[i:j], self._offsets[i:j], self._records[i:j]
        if j == n:
            self._parts, self._offsets, self._records, self._taken = [], [], [], 0
        else:
            self._taken = j
        return out

    def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _more_durable(self) -> bool:
        """Whether a durable batch is past the cursor. REQUIRES: the log's ``_cond`` held."""
        log = self._log
        if self._lsn is not None:
            return self._lsn - log._tail_first < len(log._tail)
        return (self._sequence, self._pos) < (log._segments[-1].sequence, log._durable_pos)

    def _fill(self, need: int) -> bool:
        """Buffer the next batches (about ``need`` records); False if none is durable."""
        if self._lsn is not None:
            return self._fill_from_memory(need)
        return self._fill_from_file()

    def _fill_from_memory(self, need: int) -> bool:
        log = self._log
        assert self._lsn is not None
        with log._cond:
            log._check_open()
            tail, i = log._tail, self._lsn - log._tail_first
            if i < 0:  # fell behind the memory tail: read the files
                self._lsn = None
                return True
            batches = []
            while i < len(tail) and need > 0:
                batches.append(tail[i])
                need -= len(tail[i].records)
                i += 1
        if not batches:
            return False
        self._lsn += len(batches)
        self._sequence, self._pos = batches[-1].sequence, batches[-1].end
        for b in batches:
            self._emit(b.partitions, b.offsets, b.records)
        return True

    def _fill_from_file(self) -> bool:
        log = self._log
        with log._cond:
            log._check_open()
            lsn = log._tail_lsn(self._sequence, self._pos)
            if lsn is not None:
                self._lsn = lsn
                return True
            seg = log._segment(self._sequence)
            if seg is None:  # released under us: fine if all we still want is retained
                log._check_retained(self._want)
                seg = log._segments[0]
                self._sequence, self._pos = seg.sequence, seg.data_start
            active = seg is log._segments[-1]
            limit = log._durable_pos if active else seg.size
            if self._pos >= limit:
                if active:
                    return False
                nxt = log._segments[log._segments.index(seg) + 1]
                self._sequence, self._pos = nxt.sequence, nxt.data_start
                return True
        try:
            self._read_frames(seg.path, limit)
        except FileNotFoundError as exc:
            raise CorruptionError(f"log segment {seg.path} is gone: {exc}") from exc
        except OSError as exc:
            raise UnavailableError(f"cannot read log segment {seg.path}: {exc}") from exc
        return True

    def _read_frames(self, path: str, limit: int) -> None:
        """Decode the durable frames from the cursor (about ``_READ_BYTES`` of them)."""
        if self._reader is None or self._reader_sequence != self._sequence:
            if self._reader is not None:
                self._reader.close()
            self._reader = None
            self._reader = self._log._fs.open_read(path)
            self._reader_sequence = self._sequence
        pos = self._pos
        data = self._reader.read_at(pos, min(limit - pos, _READ_BYTES))
        if not data:
            raise CorruptionError(f"{path} at byte {pos}: the file ends before its durable end")
        i = 0
        while i < len(data):
            size = fmt.frame_size(data, i)
            if size is None or i + size > len(data):
                if i:
                    break
                if size is None or pos + size > limit:
                    raise CorruptionError(f"{path} at byte {pos}: frame past the durable end")
                data = self._reader.read_at(pos, size)  # one frame bigger than a read
                if len(data) < size:
                    raise CorruptionError(f"{path} at byte {pos}: short read")
            try:
                frame_type, payload, end = fmt.decode_frame(data, i)
                if frame_type != fmt.FRAME_BATCH:
                    raise fmt.FrameError(f"unexpected frame type {frame_type}")
                batch = fmt.decode_batch(payload)
            except fmt.FrameError as exc:
                raise CorruptionError(f"{path} at byte {pos + i}: {exc.reason}") from None
            self._emit(batch.partitions, batch.offsets, batch.records)
            i = end
        self._pos = pos + i

    def _emit(
        self, partitions: Sequence[int], offsets: Sequence[int], records: Sequence[Mutation]
    ) -> None:
        """Buffer the entries at or past the wanted offset of their partition."""
        want = self._want
        # A batch holds consecutive offsets of each of its partitions: compare the first.
        firsts = dict(zip(reversed(partitions), reversed(offsets), strict=True))
        if all(o >= want[p] for p, o in firsts.items()):
            self._parts.extend(partitions)
            self._offsets.extend(offsets)
            self._records.extend(records)
            for p, o in dict(zip(partitions, offsets, strict=True)).items():
                want[p] = o + 1
            return
        for p, o, r in zip(partitions, offsets, records, strict=True):
            if o >= want[p]:
                self._parts.append(p)
                self._offsets.append(o)
                self._records.append(r)
                want[p] = o + 1
