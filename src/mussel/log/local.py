"""``LocalLog``: the embedded durable write log (one directory, CRC-framed, group commit).

One physical log serves every partition, so one fsync covers a group of appends to
many partitions. It is a directory of segment files ``NNNNNNNNNNNNNNNNNNNN.log``
(sequence number zero-padded to 20 digits, from 1), each a sequence of frames laid out
as :mod:`mussel.log.format` says; ``docs/log_format.md`` gives the recovery rules and
the segment lifecycle. Sections of this module: the file layer (injectable, for fault
tests), the log, and its consumer.

Write path: ``append_async`` checks and encodes the records, then under one lock
assigns their offsets, frames the batch and queues it (queue order = file order =
offset order). One flusher thread takes everything queued, writes it with one
``write`` and one ``fdatasync``, publishes the batches to consumers in memory and
only then completes the futures. A failed write or sync breaks the log (as leveldb's
``bg_error``): the waiting futures and every later append fail with
``UnavailableError`` until the log is reopened.

Locks: ``_lock`` guards the append side (next offsets, queue, error); ``_cond``
guards what is durable (segments, durable position, acknowledged end offsets, the
in-memory tail) and wakes consumers. Never take ``_lock`` while holding ``_cond``.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Final, Protocol

from mussel.errors import CorruptionError, InvalidRequestError, UnavailableError
from mussel.log import format as fmt
from mussel.log.base import LogEntry, partition_for
from mussel.model import Mutation

__all__ = [
    "Closeable",
    "FileSystem",
    "LocalLog",
    "LocalLogConsumer",
    "LogStats",
    "OsFileSystem",
    "ReadableFile",
    "WritableFile",
]

logger = logging.getLogger("mussel.log")

_SEGMENT_RE: Final = re.compile(r"[0-9]{20}\.log")
_FIRST_SEQUENCE: Final = 1
_READ_BYTES: Final = 1 << 20

# ------------------------------------------------------------------ the file layer


class Closeable(Protocol):
    def close(self) -> None: ...


class WritableFile(Protocol):
    def write(self, data: bytes) -> None:
        """Append all of ``data`` (the file is open in append mode)."""
        ...

    def sync(self) -> None:
        """Make everything written durable (fdatasync)."""
        ...

    def truncate(self, size: int) -> None: ...

    def close(self) -> None: ...


class ReadableFile(Protocol):
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer only at the end of the file)."""
        ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    """The file operations the log uses; tests inject one that fails or counts."""

    def makedirs(self, path: str) -> None: ...

    def listdir(self, path: str) -> list[str]: ...

    def open_append(self, path: str) -> WritableFile:
        """Open ``path`` for appending, creating it if missing."""
        ...

    def open_read(self, path: str) -> ReadableFile: ...

    def remove(self, path: str) -> None: ...

    def sync_dir(self, path: str) -> None:
        """Make the directory's entries (created, removed files) durable."""
        ...

    def lock(self, path: str) -> Closeable:
        """Hold an exclusive lock on ``path`` until the returned file is closed; raise
        ``UnavailableError`` if another holder has it."""
        ...


_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class _OsFile:
    """A file descriptor, for writing (append mode) or reading."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def sync(self) -> None:
        _datasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read_at(self, offset: int, size: int) -> bytes:
        chunks = []
        while size > 0:
            chunk = os.pread(self._fd, size, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            size -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The real file system (POSIX)."""

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def open_append(self, path: str) -> WritableFile:
        return _OsFile(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))

    def open_read(self, path: str) -> ReadableFile:
        return _OsFile(os.open(path, os.O_RDONLY))

    def remove(self, path: str) -> None:
        os.remove(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> Closeable:
        f = _OsFile(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.close()
            raise UnavailableError(f"{path} is locked: the log is open elsewhere") from exc
        return f


# ------------------------------------------------------------------------ the log


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
    """One ``append`` call: queued with its frame, then (once durable) in the memory tail
    at bytes [start, end) of segment ``sequence``."""

    __slots__ = (
        "end",
        "future",
        "header",
        "next_after",
        "offsets",
        "partitions",
        "payload",
        "records",
        "sequence",
        "start",
    )

    def __init__(
        self,
        *,
        header: bytes,
        payload: bytes,
        future: Future[list[tuple[int, int]]] | None,
        partitions: list[int],
        offsets: list[int],
        records: list[Mutation],
        next_after: list[int],
    ) -> None:
        self.header = header
        self.payload = payload
        self.future = future
        self.partitions = partitions
        self.offsets = offsets
        self.records = records
        self.next_after = next_after  # every partition's next offset after this batch
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
        self._lock = threading.Lock()
        self._queue_ready = threading.Condition(self._lock)
        self._queue: list[_Batch] = []
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
        self._flusher = threading.Thread(target=self._flush_loop, name="mussel-log", daemon=True)
        self._flusher.start()

    @property
    def partitions(self) -> int:
        return self._partitions

    def append(self, records: Sequence[Mutation]) -> list[tuple[int, int]]:
        """Durably append ``records`` (atomically); return (partition, offset) of each."""
        return self.append_async(records).result()

    def append_async(self, records: Sequence[Mutation]) -> Future[list[tuple[int, int]]]:
        """Queue ``records`` as one atomic batch; the future completes once it is fsync'd.

        Raises ``InvalidRequestError`` at once for anything but valid ``Mutation``s and
        ``UnavailableError`` if the log is closed or broken. The future fails with
        ``UnavailableError`` if the write or fsync of its group fails.
        """
        recs = records if type(records) is list else list(records)
        fut: Future[list[tuple[int, int]]] = Future()
        fut.set_running_or_notify_cancel()  # an append in flight cannot be cancelled
        n = self._partitions
        try:
            parts = [partition_for(r.table_id, r.pk, n) for r in recs]
            body = fmt.encode_records(recs)
        except (AttributeError, TypeError, ValueError) as exc:
            raise InvalidRequestError(f"cannot log these records: {exc}") from exc
        if len(body) + 20 * len(recs) + 20 > fmt.MAX_PAYLOAD_BYTES:
            raise InvalidRequestError(f"a log batch is limited to {fmt.MAX_PAYLOAD_BYTES} bytes")
        with self._lock:
            self._check_appendable()
            if not recs:
                fut.set_result([])
                return fut
            nxt = self._next
            offsets = []
            for p in parts:
                o = nxt[p]
                nxt[p] = o + 1
                offsets.append(o)
            payload = fmt.encode_batch(parts, offsets, body)
            header = fmt.frame_header(fmt.FRAME_BATCH, payload)
            self._queue.append(
                _Batch(
                    header=header,
                    payload=payload,
                    future=fut,
                    partitions=parts,
                    offsets=offsets,
                    records=recs,
                    next_after=nxt.copy(),
                )
            )
            if len(self._queue) == 1:
                self._queue_ready.notify()
        return fut

    def end_offsets(self) -> dict[int, int]:
        """For each partition, one past its last acknowledged (fsync'd) offset."""
        with self._cond:
            self._check_open()
            return dict(enumerate(self._segments[-1].end))

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

    def close(self) -> None:
        """Flush and acknowledge everything queued, stop the flusher, close the files.

        Idempotent; afterwards every method (and every consumer's ``poll``) raises
        ``UnavailableError``.
        """
        with self._close_lock:
            with self._lock:
                self._closing = True
                self._queue_ready.notify()
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
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._queue_ready.wait()
                group, self._queue = self._queue, []
            if not group:
                return
            try:
                self._write_group(group)
            except BaseException as exc:
                self._fail(exc, group)
                return

    def _write_group(self, group: list[_Batch]) -> None:
        writer = self._writer
        assert writer is not None
        data = b"".join([part for b in group for part in (b.header, b.payload)])
        writer.write(data)
        self._sync(writer)
        active = self._segments[-1]  # only this thread adds segments
        pos = active.size
        records = 0
        for b in group:
            b.sequence = active.sequence
            b.start = pos
            pos += len(b.header) + len(b.payload)
            b.end = pos
            b.header = b.payload = b""
            records += len(b.records)
        stats = self.stats
        stats.groups += 1
        stats.appends += len(group)
        stats.records += records
        stats.bytes_written += len(data)
        with self._cond:
            active.size = self._durable_pos = pos
            active.end = group[-1].next_after
            self._tail.extend(group)
            self._tail_records += records
            while self._tail_records > self._memory_records and self._tail:
                self._tail_records -= len(self._tail.popleft().records)
                self._tail_first += 1
            self._cond.notify_all()
        for b in group:
            fut, b.future = b.future, None  # the memory tail need not keep results alive
            if fut is not None:
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
        message = (
            f"the write log at {self._dir} failed to write or fsync ({exc!r}); "
            "appends not yet acknowledged are lost; reopen the log"
        )
        logger.error("%s", message)
        with self._lock:
            self._error = message
            pending = group + self._queue
            self._queue = []
        for b in pending:
            if b.future is not None and not b.future.done():
                b.future.set_exception(UnavailableError(message))

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


# ------------------------------------------------------------------- the consumer

_new_tuple = tuple.__new__  # LogEntry(p, o, r) without the Python-level __new__: 2x faster


def _entries(partitions: list[int], offsets: list[int], records: list[Mutation]) -> list[LogEntry]:
    """``[LogEntry(p, o, r) ...]`` of the three columns, at C speed."""
    return list(
        map(_new_tuple, itertools.repeat(LogEntry), zip(partitions, offsets, records, strict=True))
    )


class LocalLogConsumer:
    """Reads every partition of a :class:`LocalLog` from given positions, in offset order
    per partition, never past what is durable. One thread polls a consumer.

    Recent batches come from the log's memory tail (published by the flusher after its
    fsync); older ones (after open, or when the consumer fell behind the tail) are read
    and decoded from the segment files.
    """

    def __init__(self, log: LocalLog, want: list[int], sequence: int, pos: int) -> None:
        self._log = log
        self._want = want  # per partition, the next offset to return
        self._sequence, self._pos = sequence, pos  # the next frame to read
        self._lsn: int | None = None  # the next memory-tail batch, when reading memory
        self._buf: list[LogEntry] = []
        self._taken = 0
        self._reader: ReadableFile | None = None
        self._reader_sequence = -1
        self._closed = False

    def poll(self, max_records: int, timeout_s: float) -> list[LogEntry]:
        """Up to ``max_records`` entries; waits up to ``timeout_s`` when none is ready."""
        log = self._log
        deadline: float | None = None
        while True:
            if self._closed:
                raise UnavailableError("this log consumer is closed")
            if max_records <= 0:
                return []
            while len(self._buf) - self._taken < max_records and self._fill(max_records):
                pass
            if len(self._buf) > self._taken:
                out = self._buf[self._taken : self._taken + max_records]
                self._taken += len(out)
                if self._taken == len(self._buf):
                    self._buf, self._taken = [], 0
                return out
            with log._cond:
                log._check_open()
                if self._more_durable():
                    continue
                now = time.monotonic()
                deadline = now + timeout_s if deadline is None else deadline
                if now >= deadline:
                    return []
                log._cond.wait(deadline - now)

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

    def _emit(self, partitions: list[int], offsets: list[int], records: list[Mutation]) -> None:
        """Buffer the entries at or past the wanted offset of their partition."""
        want = self._want
        # A batch holds consecutive offsets of each of its partitions: compare the first.
        firsts = dict(zip(reversed(partitions), reversed(offsets), strict=True))
        if all(o >= want[p] for p, o in firsts.items()):
            self._buf.extend(_entries(partitions, offsets, records))
            for p, o in dict(zip(partitions, offsets, strict=True)).items():
                want[p] = o + 1
            return
        buf = self._buf
        for p, o, r in zip(partitions, offsets, records, strict=True):
            if o >= want[p]:
                buf.append(_new_tuple(LogEntry, (p, o, r)))
                want[p] = o + 1
