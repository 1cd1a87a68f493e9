"""``LocalLog``: the embedded durable write log (one directory, CRC-framed, group commit).

One physical log serves every partition, so one fsync covers a group of appends to
many partitions. It is a directory of segment files ``NNNNNNNNNNNNNNNNNNNN.log``
(sequence number zero-padded to 20 digits, from 1), each a sequence of frames laid out
as :mod:`mussel.log.format` says; ``docs/log_format.md`` gives the recovery rules and
the segment lifecycle. The log reaches the disk only through :mod:`mussel.log.fsio`
(injectable, for fault tests); its reader is :mod:`mussel.log.local_consumer`. Both
modules' public names are importable from here too.

Write path: ``append``/``append_async`` check the records (one pass that also computes
their partitions) and encode them, then under one lock assign their offsets, frame the
batch and queue it (queue order = file order = offset order). One flusher thread takes
everything queued (first waiting briefly for the threads whose appends the previous
group completed: ``_gather_returning``), writes it with one ``write`` and one
``fdatasync``, publishes the batches to consumers in memory and only then completes the
appends. A failed write or sync breaks the log (as leveldb's ``bg_error``): the waiting
appends and every later one fail with ``UnavailableError`` until the log is reopened.

Locks: ``_lock`` guards the append side (next offsets, queue, error, the threads the
flusher waits for); ``_cond`` guards what is durable (segments, durable position,
acknowledged end offsets, the in-memory tail) and wakes consumers. Never take ``_lock``
while holding ``_cond``. Once the log is open a segment's ``end`` list is replaced,
never changed in place, so ``end_offset`` may read it without a lock.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Final

from mussel.errors import CorruptionError, InvalidRequestError, UnavailableError
from mussel.log import format as fmt
from mussel.log.fsio import Closeable, FileSystem, OsFileSystem, ReadableFile, WritableFile
from mussel.log.local_consumer import LocalLogConsumer
from mussel.model import Mutation

__all__ = [
    "Closeable",
    "FileSystem",
    "LocalLog",
    "LocalLogConsumer",
    "LogStats",
    "SegmentCopy",
    "stored_partitions",
    "OsFileSystem",
    "ReadableFile",
    "WritableFile",
]

logger = logging.getLogger("mussel.log")

_SEGMENT_RE: Final = re.compile(r"[0-9]{20}\.log")
GATHER_FRACTION: Final = 0.5
"""Group commit waits for returning writers at most this fraction of the last group's
write and fsync time (see ``LocalLog._gather_returning``)."""
GATHER_MAX_S: Final = 0.002
"""... and at most this long."""
_FIRST_SEQUENCE: Final = 1


class LogStats:
    """Counters of one open log (for metrics and tests); written by the flusher only."""

    __slots__ = ("appends", "bytes_written", "fsyncs", "groups", "records", "segments_created")

    def __init__(self) -> None:
        self.appends = 0
        self.records = 0
        self.groups = 0
        self.fsyncs = 0
        self.bytes_written = 0
        self.segments_created = 0


class SegmentCopy:
    """A retained segment opened for a backup: ``name`` (its file name), ``size`` (its
    durable bytes when it was opened: whole frames only) and ``file``, an open handle
    that stays readable even if the log deletes the segment meanwhile. The first
    ``size`` bytes never change (segments are append-only). Close ``file`` when done.
    """

    __slots__ = ("file", "name", "size")

    def __init__(self, name: str, size: int, file: ReadableFile) -> None:
        self.name = name
        self.size = size
        self.file = file


class _Segment:
    """One segment file: its records of partition p have offsets in [base[p], end[p]);
    ``size`` is the length of its durable frames, ``data_start`` where its first BATCH is.
    """

    __slots__ = ("base", "data_start", "end", "path", "sequence", "size")

    def __init__(self, sequence: int, path: str, base: list[int], data_start: int) -> None:
        self.sequence = sequence
        self.path = path
        self.base = base
        self.end = list(base)
        self.data_start = data_start
        self.size = data_start


class _Batch:
    """One append call: ``size`` bytes of frame queued, then (once durable) in the memory
    tail at bytes [start, end) of segment ``sequence``.

    Until the flusher completes it, exactly one of ``future`` (``append_async``) and
    ``done`` (``append``: a lock its caller waits to acquire) is set; a failed batch gets
    ``error`` before ``done`` is released. Both are then cleared: the tail keeps only the
    columns. They are tuples of untracked objects (ints, ``gc=False`` records), which the
    garbage collector stops tracking: the tail costs later collections nothing per record.
    """

    __slots__ = (
        "done",
        "end",
        "error",
        "future",
        "offsets",
        "partitions",
        "records",
        "sequence",
        "size",
        "start",
        "thread",
    )

    def __init__(
        self,
        future: Future[list[tuple[int, int]]] | None,
        done: threading.Lock | None,
        *,
        partitions: tuple[int, ...],
        offsets: tuple[int, ...],
        records: tuple[Mutation, ...],
        size: int,
        thread: int,
    ) -> None:
        self.future = future
        self.thread = thread  # the appending thread (group commit waits for returning ones)
        self.done = done
        self.error: str | None = None
        self.partitions = partitions
        self.offsets = offsets
        self.records = records
        self.size = size
        self.sequence = self.start = self.end = 0


class LocalLog:
    """The durable local write log, a :class:`mussel.log.base.WriteLog`.

    Opening recovers: every segment is checked frame by frame; a torn or corrupt tail
    of the last segment is reported through ``reporter(reason, bytes_dropped)`` (and
    logged at WARNING) and truncated; damage anywhere else raises ``CorruptionError``.
    ``partitions`` is fixed when the log is created; reopening with another count
    raises ``InvalidRequestError``. A directory is open in one ``LocalLog`` at a time
    (``LOCK`` file), else ``UnavailableError``. ``memory_records`` bounds the recent
    durable records kept in memory for consumers.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        partitions: int = 8,
        *,
        segment_bytes: int = 64 << 20,
        fs: FileSystem | None = None,
        reporter: Callable[[str, int], None] | None = None,
        memory_records: int = 1 << 16,
    ) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidRequestError(f"partitions must be a positive integer, not {partitions!r}")
        if segment_bytes < 1:
            raise InvalidRequestError("segment_bytes must be positive")
        self._dir = os.fspath(directory)
        self._partitions = partitions
        self._segment_bytes = segment_bytes
        self._fs: FileSystem = fs if fs is not None else OsFileSystem()
        self._reporter = reporter
        self._memory_records = memory_records
        self.stats = LogStats()
        self.on_durable: Callable[[Sequence[int]], None] | None = None
        """Called by the flusher with the new end offsets (one per partition) after each
        fsync and before the appends it made durable complete. Must not raise."""
        self._lock = threading.Lock()
        # Held while the flusher has nothing to do; released (under _lock) by the append
        # that makes the queue non-empty, and by close.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._queue: list[_Batch] = []
        self._chunks: list[bytes] = []  # the frames of the queued batches, in order
        # Group commit gathering (see ``_gather_returning``): the threads whose appends the
        # last group completed, the threads the flusher still waits for (under _lock;
        # None when it waits for none) and ``_gather``, held except to wake it.
        self._returning: set[int] = set()
        self._awaited: set[int] | None = None
        self._gather = threading.Lock()
        self._gather.acquire()
        self._last_group_s = 0.0
        self._closing = False
        self._error: str | None = None
        self._cond = threading.Condition()
        self._segments: list[_Segment] = []
        self._durable_pos = 0
        self._closed = False
        self._tail: deque[_Batch] = deque()
        self._tail_first = 0  # lsn (batches committed since open) of _tail[0]
        self._tail_records = 0
        self._writer: WritableFile | None = None  # the flusher's, once open
        self._release_lock = threading.Lock()
        self._close_lock = threading.Lock()
        try:
            self._fs.makedirs(self._dir)
            self._dir_lock = self._fs.lock(os.path.join(self._dir, "LOCK"))
        except OSError as exc:
            raise UnavailableError(f"cannot open the write log at {self._dir}: {exc}") from exc
        try:
            self._recover()
        except BaseException:
            self._close_files()
            raise
        self._durable_pos = self._segments[-1].size
        self._next = list(self._segments[-1].end)
        self.acked_total = sum(self._next)
        """The sum of the end offsets (every partition's acknowledged records): set
        with them after each fsync, before the appends complete; a lock-free read.
        The ends only grow, so a reader that applies nothing before it is acknowledged
        (the replayer) has applied up to every end once the sum of its positions
        equals this total (``Store.get``'s strong check)."""
        self._flusher = threading.Thread(target=self._flush_loop, name="mussel-log", daemon=True)
        self._flusher.start()

    @property
    def partitions(self) -> int:
        return self._partitions

    def append(self, records: Sequence[Mutation]) -> list[tuple[int, int]]:
        """Durably append ``records`` (atomically); return (partition, offset) of each.

        Raises as ``append_async`` does, at once or once the group of the batch failed.
        """
        done = threading.Lock()
        done.acquire()
        batch = self._enqueue(records, None, done)
        if batch is None:
            return []
        done.acquire()  # released by the flusher once the batch is durable or failed
        if batch.error is not None:
            raise UnavailableError(batch.error)
        return list(zip(batch.partitions, batch.offsets, strict=True))

    def append_async(self, records: Sequence[Mutation]) -> Future[list[tuple[int, int]]]:
        """Queue ``records`` as one atomic batch; the future completes once it is fsync'd.

        Raises ``InvalidRequestError`` at once unless every record is a well-formed
        ``Mutation`` (:func:`mussel.log.format.well_formed`: exact ints and bytes, what
        the log reads back) or if the batch is over the frame size limit, and
        ``UnavailableError`` if the log is closed or broken. The future fails with
        ``UnavailableError`` if the write or fsync of its group fails.
        """
        fut: Future[list[tuple[int, int]]] = Future()
        fut.set_running_or_notify_cancel()  # an append in flight cannot be cancelled
        if self._enqueue(records, fut, None) is None:
            fut.set_result([])
        return fut

    def end_offsets(self) -> dict[int, int]:
        """For each partition, one past its last acknowledged (fsync'd) offset."""
        with self._cond:
            self._check_open()
            return dict(enumerate(self._segments[-1].end))

    def end_offset(self, partition: int) -> int:
        """``end_offsets()[partition]``, without a lock or a copy.

        Raises ``InvalidRequestError`` for a partition out of range and
        ``UnavailableError`` once the log is closed. Reads the active segment's ``end``
        list, which the flusher replaces whole after each fsync: the value is one the
        log acknowledged, never a partly updated one.
        """
        if self._closed:
            raise UnavailableError(f"the write log at {self._dir} is closed")
        if not 0 <= partition < self._partitions:
            raise InvalidRequestError(
                f"no partition {partition} (the log has partitions 0..{self._partitions - 1})"
            )
        return self._segments[-1].end[partition]

    def consumer(self, positions: Mapping[int, int]) -> LocalLogConsumer:
        """A consumer of every partition from ``positions`` (next offset to read; missing: 0).

        Raises ``CorruptionError`` if a position is below the oldest retained offset of
        its partition (its segment was released and deleted).
        """
        want = self._positions(positions)
        with self._cond:
            self._check_open()
            self._check_retained(want)
            start, pos = self._segments[-1], self._durable_pos
            for seg in self._segments:
                if any(e > w for e, w in zip(seg.end, want, strict=True)):
                    start, pos = seg, seg.data_start
                    break
            return LocalLogConsumer(self, want, start.sequence, pos)

    def release(self, positions: Mapping[int, int]) -> None:
        """Delete the oldest segments (never the active one) whose every record of every
        partition p has an offset below ``positions[p]``; then fsync the directory."""
        want = self._positions(positions)
        with self._release_lock:
            with self._cond:
                self._check_open()
                doomed: list[_Segment] = []
                while len(self._segments) > 1:
                    seg = self._segments[0]
                    if any(
                        e > b and e > w for b, e, w in zip(seg.base, seg.end, want, strict=True)
                    ):
                        break
                    doomed.append(self._segments.pop(0))
            if not doomed:
                return
            try:
                while doomed:
                    with contextlib.suppress(FileNotFoundError):
                        self._fs.remove(doomed[0].path)
                    doomed.pop(0)
                self._fs.sync_dir(self._dir)
            except OSError as exc:
                with self._cond:  # the files not deleted stay in the log, oldest first
                    self._segments[:0] = doomed
                raise UnavailableError(f"cannot delete released log segments: {exc}") from exc

    @contextlib.contextmanager
    def holding_segments(self) -> Iterator[None]:
        """Within the block, ``release`` deletes nothing (it waits for the block to end).

        A backup holds it while it checkpoints the backend and opens the segments it
        copies (``open_segments``), so that no record past the checkpoint's positions is
        deleted in between. Keep the block short: the replayer's ``release`` waits.
        """
        with self._release_lock:
            yield

    def open_segments(self, positions: Mapping[int, int]) -> tuple[list[SegmentCopy], list[int]]:
        """Open every retained segment holding a record at or past ``positions`` (and the
        active one); return them, oldest first, with the log's end offsets at that moment.

        Each copy's ``size`` is its durable length, so the copies end on whole,
        acknowledged frames and hold, per partition, every record from ``positions`` to
        the returned ends. Raises ``CorruptionError`` if a record at ``positions`` was
        already released. Call it inside ``holding_segments`` after taking what decides
        ``positions`` (a checkpoint), so nothing it needs is deleted in between.
        """
        want = self._positions(positions)
        with self._cond:
            self._check_open()
            self._check_retained(want)
            chosen: list[tuple[str, int]] = []
            for i, seg in enumerate(self._segments):
                active = i == len(self._segments) - 1
                if active or chosen or any(e > w for e, w in zip(seg.end, want, strict=True)):
                    chosen.append((seg.path, seg.size))  # durable: set with ``end``
            ends = list(self._segments[-1].end)
        copies: list[SegmentCopy] = []
        try:
            for path, size in chosen:
                copies.append(SegmentCopy(os.path.basename(path), size, self._fs.open_read(path)))
        except OSError as exc:
            for c in copies:
                c.file.close()
            raise UnavailableError(f"cannot open the write log's segments: {exc}") from exc
        return copies, ends

    def close(self) -> None:
        """Flush and acknowledge everything queued, stop the flusher, close the files.

        Idempotent; afterwards every method (and every consumer's ``poll``) raises
        ``UnavailableError``.
        """
        with self._close_lock:
            with self._lock:
                self._closing = True
                self._wake_flusher()
            self._flusher.join()
            with self._cond:
                if self._closed:
                    return
                self._closed = True
                self._cond.notify_all()
            self._close_files()

    def __enter__(self) -> LocalLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------- helpers (some for the consumer)

    def _enqueue(
        self,
        records: Sequence[Mutation],
        future: Future[list[tuple[int, int]]] | None,
        done: threading.Lock | None,
    ) -> _Batch | None:
        """Check, place, frame and queue ``records``; None (nothing queued) if empty.

        The records are copied: a caller reusing its list cannot change what the memory
        tail serves.
        """
        try:
            parts = fmt.partitions_of(records, self._partitions)
            recs = tuple(records)
            body = fmt.encode_records(recs)
        except ValueError as exc:
            raise InvalidRequestError(f"cannot log these records: {exc}") from None
        if len(body) + 20 * len(recs) + 20 > fmt.MAX_PAYLOAD_BYTES:  # 20: two ints + slack
            raise InvalidRequestError(f"a log batch is limited to {fmt.MAX_PAYLOAD_BYTES} bytes")
        with self._lock:
            self._check_appendable()
            if not recs:
                return None
            nxt = self._next
            offsets: list[int] = []
            add = offsets.append
            for p in parts:
                o = nxt[p]
                nxt[p] = o + 1
                add(o)
            head = fmt.batch_head(parts, offsets, body)
            batch = _Batch(
                future,
                done,
                partitions=tuple(parts),
                offsets=tuple(offsets),
                records=recs,
                size=len(head) + len(body),
                thread=threading.get_ident(),
            )
            self._queue.append(batch)
            self._chunks.append(head)
            self._chunks.append(body)
            if len(self._queue) == 1:
                self._wake_flusher()
            awaited = self._awaited
            if awaited is not None:
                awaited.discard(batch.thread)
                if not awaited:
                    self._awaited = None
                    self._gather.release()
        return batch

    def _wake_flusher(self) -> None:
        """REQUIRES: ``_lock`` held (so ``_wake`` cannot be released twice)."""
        if self._wake.locked():
            self._wake.release()

    def _check_open(self) -> None:
        """REQUIRES: ``_cond`` held."""
        if self._closed:
            raise UnavailableError(f"the write log at {self._dir} is closed")

    def _check_appendable(self) -> None:
        """REQUIRES: ``_lock`` held."""
        if self._error is not None:
            raise UnavailableError(self._error)
        if self._closing:
            raise UnavailableError(f"the write log at {self._dir} is closed")

    def _check_retained(self, want: list[int]) -> None:
        """Raise unless every offset ``>= want[p]`` is retained. REQUIRES: ``_cond`` held."""
        for p, (w, b) in enumerate(zip(want, self._segments[0].base, strict=True)):
            if w < b:
                raise CorruptionError(
                    f"log starts at offset {b} of partition {p}: offset {w} was released"
                )

    def _segment(self, sequence: int) -> _Segment | None:
        """Retained segment ``sequence``, or None. REQUIRES: ``_cond`` held."""
        i = sequence - self._segments[0].sequence
        return self._segments[i] if 0 <= i < len(self._segments) else None

    def _tail_lsn(self, sequence: int, pos: int) -> int | None:
        """The lsn of the first in-memory batch at or after (sequence, pos); None if that
        position is older than the memory tail. REQUIRES: ``_cond`` held."""
        tail = self._tail
        if not tail or (sequence, pos) < (tail[0].sequence, tail[0].start):
            return None
        return self._tail_first + bisect.bisect_left(
            tail, (sequence, pos), key=lambda b: (b.sequence, b.start)
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

    def _segment_path(self, sequence: int) -> str:
        return os.path.join(self._dir, f"{sequence:020d}.log")

    def _sync(self, f: WritableFile) -> None:
        f.sync()
        self.stats.fsyncs += 1

    def _report(self, reason: str, dropped: int) -> None:
        logger.warning("write log %s: dropping %d bytes: %s", self._dir, dropped, reason)
        if self._reporter is not None:
            self._reporter(reason, dropped)

    def _close_files(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._dir_lock.close()

    # ------------------------------------------------------------------ the flusher

    def _flush_loop(self) -> None:
        """Write groups until the log closes (having written all it queued) or breaks.

        A non-empty queue always has a wake-up pending: the append that made it non-empty
        released ``_wake``, and only this thread takes ``_wake`` and empties the queue.
        """
        while True:
            self._wake.acquire()
            if self._returning:
                self._gather_returning()
            with self._lock:
                group, self._queue = self._queue, []
                chunks, self._chunks = self._chunks, []
                end = self._next.copy()  # every partition's next offset after the group
                closing = self._closing  # then nothing more is queued
            if group:
                started = time.monotonic()
                try:
                    self._write_group(group, chunks, end)
                except BaseException as exc:
                    self._fail(exc, group)
                    return
                self._last_group_s = time.monotonic() - started
                self._returning = {b.thread for b in group}
            if closing:
                return

    def _gather_returning(self) -> None:
        """Before taking a group: wait a little for the threads whose appends the last
        group completed, if some of them have not appended again yet.

        Writers that each keep one append in flight (``append`` in a loop, as a thread
        pool of request handlers does) otherwise settle into two alternating halves,
        each group holding only the half that appended during the previous fsync: half
        the records per fsync. The wait is at most ``GATHER_FRACTION`` of the last
        group's write and fsync time (and ``GATHER_MAX_S``): a thread that does not come
        back costs its group that much latency, never more. A lone writer, or a thread
        that already appended again, costs nothing.
        """
        with self._lock:
            if self._closing:
                return
            queued = {b.thread for b in self._queue}
            missing = self._returning - queued
            self._returning = set()
            if not missing:
                return
            self._awaited = missing
        timeout = min(GATHER_MAX_S, self._last_group_s * GATHER_FRACTION)
        if not self._gather.acquire(timeout=timeout):
            with self._lock:
                if self._awaited is None:  # the last one appended just after the timeout
                    self._gather.acquire()  # released by it: take it back at once
                self._awaited = None

    def _write_group(self, group: list[_Batch], chunks: list[bytes], end: list[int]) -> None:
        """Write and fsync the frames of ``group``, publish it, complete its appends."""
        writer = self._writer
        assert writer is not None
        data = b"".join(chunks)
        writer.write(data)
        self._sync(writer)
        active = self._segments[-1]  # only this thread adds segments
        sequence, pos = active.sequence, active.size
        records = 0
        for b in group:
            b.sequence = sequence
            b.start = pos
            pos += b.size
            b.end = pos
            records += len(b.records)
        stats = self.stats
        stats.groups += 1
        stats.appends += len(group)
        stats.records += records
        stats.bytes_written += len(data)
        with self._cond:
            active.size = self._durable_pos = pos
            active.end = end
            self.acked_total = sum(end)
            self._tail.extend(group)
            self._tail_records += records
            while self._tail_records > self._memory_records and self._tail:
                self._tail_records -= len(self._tail.popleft().records)
                self._tail_first += 1
            self._cond.notify_all()
        if self.on_durable is not None:
            self.on_durable(end)
        for b in group:
            if b.done is not None:
                b.done.release()
                b.done = None
            elif b.future is not None:
                fut, b.future = b.future, None  # the memory tail need not keep results alive
                fut.set_result(list(zip(b.partitions, b.offsets, strict=True)))
        if pos >= self._segment_bytes:
            self._roll(active)

    def _roll(self, active: _Segment) -> None:
        """Start segment ``active.sequence + 1``; it becomes active once durable."""
        seg, writer = self._create_segment(active.sequence + 1, list(active.end))
        old, self._writer = self._writer, writer
        with self._cond:
            self._segments.append(seg)
            self._durable_pos = seg.size
            self._cond.notify_all()
        if old is not None:
            old.close()

    def _create_segment(self, sequence: int, base: list[int]) -> tuple[_Segment, WritableFile]:
        """(Re)write a segment holding only its header; fsync it and the directory."""
        path = self._segment_path(sequence)
        payload = fmt.encode_segment_header(self._partitions, sequence, base)
        header = fmt.encode_frame(fmt.FRAME_SEGMENT_HEADER, payload)
        writer = self._fs.open_append(path)
        try:
            writer.truncate(0)
            writer.write(header)
            self._sync(writer)
            self._fs.sync_dir(self._dir)
        except BaseException:
            writer.close()
            raise
        self.stats.segments_created += 1
        return _Segment(sequence, path, base, len(header)), writer

    def _fail(self, exc: BaseException, group: list[_Batch]) -> None:
        """Break the log: fail ``group`` and everything queued that is not completed."""
        message = (
            f"the write log at {self._dir} failed to write or fsync ({exc!r}); "
            "appends not yet acknowledged are lost; reopen the log"
        )
        logger.error("%s", message)
        with self._lock:
            self._error = message
            pending = group + self._queue
            self._queue, self._chunks = [], []
        for b in pending:
            if b.done is not None:
                b.error = message
                b.done.release()
                b.done = None
            elif b.future is not None and not b.future.done():
                b.future.set_exception(UnavailableError(message))
                b.future = None

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        names = sorted(n for n in self._fs.listdir(self._dir) if _SEGMENT_RE.fullmatch(n))
        sequences = [int(n[:20]) for n in names]
        if not sequences:
            seg, self._writer = self._create_segment(_FIRST_SEQUENCE, [0] * self._partitions)
            self._segments.append(seg)
            return
        for a, b in itertools.pairwise(sequences):
            if b != a + 1:
                raise CorruptionError(f"write log {self._dir}: segment {a + 1:020d}.log is missing")
        for i, sequence in enumerate(sequences):
            prev = self._segments[-1] if self._segments else None
            last = i == len(sequences) - 1
            self._segments.append(self._recover_segment(sequence, prev, last))

    def _recover_segment(self, sequence: int, prev: _Segment | None, last: bool) -> _Segment:
        path = self._segment_path(sequence)
        reader = self._fs.open_read(path)
        try:
            data = reader.read_at(0, reader.size())
        finally:
            reader.close()
        try:
            frame_type, payload, data_start = fmt.decode_frame(data, 0)
            if frame_type != fmt.FRAME_SEGMENT_HEADER:
                raise fmt.FrameError("the first frame is not a segment header")
            header = fmt.decode_segment_header(payload)
        except fmt.FrameError as exc:
            if not last or (prev is None and sequence != _FIRST_SEQUENCE):
                raise CorruptionError(f"{path} at byte 0: {exc.reason}") from None
            # A crash while this segment was being created: it holds nothing acknowledged.
            base = list(prev.end) if prev is not None else [0] * self._partitions
            self._report(f"torn segment header in {path}: {exc.reason}", len(data))
            seg, self._writer = self._create_segment(sequence, base)
            return seg
        self._check_header(header, path, sequence, prev)
        seg = _Segment(sequence, path, header.next_offsets, data_start)
        nxt, pos, n = seg.end, data_start, self._partitions
        while pos < len(data):
            try:
                frame_type, payload, end = fmt.decode_frame(data, pos)
                if frame_type != fmt.FRAME_BATCH:
                    raise fmt.FrameError(f"unexpected frame type {frame_type}")
                batch = fmt.decode_batch(payload)
                trial = nxt.copy()
                for p, o in zip(batch.partitions, batch.offsets, strict=True):
                    if not 0 <= p < n or o != trial[p]:
                        raise fmt.FrameError(f"offset {o} of partition {p} is out of sequence")
                    trial[p] = o + 1
            except fmt.FrameError as exc:
                if not last:
                    raise CorruptionError(f"{path} at byte {pos}: {exc.reason}") from None
                self._report(f"{exc.reason} in {path} at byte {pos}", len(data) - pos)
                break
            nxt[:] = trial
            pos = end
        seg.size = pos
        if last:
            self._writer = self._fs.open_append(path)
            if pos < len(data):
                self._writer.truncate(pos)
            # What a crashed process wrote may be only in the page cache: make it durable
            # before any of it is served or built upon.
            self._sync(self._writer)
            self._fs.sync_dir(self._dir)
        return seg

    def _check_header(
        self, header: fmt.SegmentHeader, path: str, sequence: int, prev: _Segment | None
    ) -> None:
        if header.partitions != self._partitions:
            raise InvalidRequestError(
                f"the write log at {self._dir} has {header.partitions} partitions, but it "
                f"was opened with partitions={self._partitions}; the partition count is "
                "fixed when a log is created"
            )
        if header.version != fmt.FORMAT_VERSION:
            raise CorruptionError(
                f"{path}: log format version {header.version} is not supported "
                f"(this version reads {fmt.FORMAT_VERSION})"
            )
        if header.sequence != sequence:
            raise CorruptionError(f"{path}: its header says it is segment {header.sequence}")
        if prev is not None and header.next_offsets != prev.end:
            raise CorruptionError(
                f"{path}: its header starts at offsets {header.next_offsets}, "
                f"but the previous segment ends at {prev.end}"
            )


def stored_partitions(directory: str | os.PathLike[str]) -> int | None:
    """The partition count of the log in ``directory``, from its oldest segment's header;
    None if the directory holds no segment. Reads only: the log may be open elsewhere.

    Raises ``CorruptionError`` if that header cannot be read.
    """
    path = os.fspath(directory)
    try:
        names = sorted(n for n in os.listdir(path) if _SEGMENT_RE.fullmatch(n))
    except FileNotFoundError:
        return None
    if not names:
        return None
    first = os.path.join(path, names[0])
    with open(first, "rb") as f:
        data = f.read(64 << 10)
    try:
        frame_type, payload, _ = fmt.decode_frame(data, 0)
        if frame_type != fmt.FRAME_SEGMENT_HEADER:
            raise fmt.FrameError("the first frame is not a segment header")
        return fmt.decode_segment_header(payload).partitions
    except fmt.FrameError as exc:
        raise CorruptionError(f"{first} at byte 0: {exc.reason}") from None
