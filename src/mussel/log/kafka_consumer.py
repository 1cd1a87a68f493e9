"""Readers of a :class:`mussel.log.kafka.KafkaLog`: the assigned consumer and the
consumer-group member (``docs/log_format.md``, "The Kafka log").

A poll returns whole Kafka messages only: the records of one message (one or more
append calls' groups of one partition) all come in the same poll, because the replayer
stores offset + 1 of what a poll returned as applied. Every message is decoded and
CRC-checked by :func:`decode_message`; a bad one is ``CorruptionError`` at every poll
that reaches it, never skipped. Positions are tracked here (the next offset to hand out
per partition), not by librdkafka: a seek or a new assignment re-assigns from them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from mussel.errors import CorruptionError, InvalidRequestError, MusselError, UnavailableError
from mussel.log import format as fmt
from mussel.log.base import LogEntry

if TYPE_CHECKING:
    from mussel.log.kafka import KafkaLog

__all__ = ["KafkaGroupConsumer", "KafkaLogConsumer", "decode_message", "unavailable"]

logger = logging.getLogger("mussel.log.kafka")

SLICE_S = 0.1
"""A consumer's longest wait inside librdkafka: a closed log is seen this fast."""
_COMMIT_EVERY_S = 1.0


def unavailable(what: str, exc: BaseException) -> UnavailableError:
    """``UnavailableError`` for a librdkafka error (chained)."""
    err = UnavailableError(f"{what}: {exc}")
    err.__cause__ = exc
    return err


class _Msg(NamedTuple):
    """One fetched Kafka message, decoded; ``error`` instead of entries if it is bad."""

    partition: int
    offset: int
    entries: list[LogEntry]
    error: MusselError | None


def decode_message(topic: str, partition: int, offset: int, value: bytes | None) -> list[LogEntry]:
    """The entries of one Kafka message; ``CorruptionError`` unless it is one intact
    BATCH frame of ``partition``'s records (module docstring)."""
    where = f"Kafka message at offset {offset} of partition {partition} of topic {topic}"
    if value is None:
        raise CorruptionError(f"{where} has no value")
    try:
        kind, payload, end = fmt.decode_frame(value, 0)
        if kind != fmt.FRAME_BATCH:
            raise fmt.FrameError(f"frame type {kind} is not a batch")
        if end != len(value):
            raise fmt.FrameError(f"{len(value) - end} bytes after the frame")
        batch = fmt.decode_batch(payload)
    except fmt.FrameError as exc:
        raise CorruptionError(f"{where} is damaged: {exc.reason}") from None
    n = len(batch.records)
    if n == 0 or batch.partitions != [partition] * n or batch.offsets != list(range(n)):
        raise CorruptionError(f"{where} is damaged: its columns do not describe this message")
    return [LogEntry(partition, offset, r) for r in batch.records]


class KafkaLogConsumer:
    """Reads a :class:`KafkaLog` from given positions; one thread polls a consumer.

    A poll returns whole messages only (module docstring): whole messages while they fit
    in ``max_records``, and always at least one when any is ready.
    """

    def __init__(self, log: KafkaLog, conf: dict[str, Any]) -> None:
        self._log = log
        self._topic = log.topic
        self._lock = threading.Lock()  # held by poll, seek and close
        self._closed = False
        self._next: dict[int, int] = {}  # partition -> next offset to hand out
        self._fetched: dict[int, int] = {}  # partition -> offset after the last buffered
        self._buffer: deque[_Msg] = deque()
        try:
            self._c = Consumer(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise InvalidRequestError(f"bad Kafka consumer configuration: {exc}") from exc

    def poll(self, max_records: int, timeout_s: float) -> list[LogEntry]:
        """Whole messages' entries (at least one message if any is ready, then more while
        the total stays within ``max_records``); waits up to ``timeout_s`` for one.

        Raises ``CorruptionError`` at a damaged message or a position outside the
        partition's retained offsets (again at every poll: nothing is skipped).
        """
        self._check_open()
        if max_records <= 0:
            return []
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                self._check_open()
                self._before_fetch()
                out = self._take(max_records)
                if out:
                    self._taken()
                    return out
                remaining = deadline - time.monotonic()
                self._fetch(max_records, remaining)
                if remaining <= 0 and not self._buffer:  # (what came may all be stale)
                    return []

    def _fetch(self, n: int, wait_s: float) -> None:
        """Move up to ``n`` ready messages into the buffer, waiting up to ``wait_s`` (at
        most one slice) for the first. ``consume`` waits for a full batch, ``poll``
        returns at the first message: poll, then take what else is ready at once."""
        try:
            msgs: list[Message] = self._c.consume(n, 0)
            if not msgs and wait_s > 0:
                first = self._c.poll(min(wait_s, SLICE_S))
                if first is not None:
                    msgs = [first, *self._c.consume(n, 0)]
        except KafkaException as exc:
            raise unavailable(f"cannot read Kafka topic {self._topic}", exc) from exc
        for m in msgs:
            self._ingest(m)

    def _ingest(self, m: Message) -> None:
        err = m.error()
        p, o = m.partition(), m.offset()
        if err is not None:
            code = err.code()
            if code == KafkaError._PARTITION_EOF:
                return
            if code in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
                where = self._next.get(p) if p is not None else None
                self._buffer.append(
                    _Msg(
                        p if p is not None else -1,
                        -1,
                        [],
                        CorruptionError(
                            f"offset {where} of partition {p} of Kafka topic {self._topic} is "
                            f"not in the log (deleted by retention, or past its end): {err.str()}"
                        ),
                    )
                )
                return
            if err.fatal():
                raise UnavailableError(f"Kafka consumer of {self._topic} failed: {err.str()}")
            logger.warning("Kafka consumer of %s: %s", self._topic, err.str())
            return
        if p is None or o is None or p not in self._fetched or o < self._fetched[p]:
            return  # not assigned any more, or before a seek: stale
        self._fetched[p] = o + 1
        try:
            entries = decode_message(self._topic, p, o, m.value())
        except CorruptionError as exc:
            self._buffer.append(_Msg(p, o, [], exc))
            return
        self._buffer.append(_Msg(p, o, entries, None))

    def _take(self, max_records: int) -> list[LogEntry]:
        out: list[LogEntry] = []
        buf = self._buffer
        while buf:
            msg = buf[0]
            if msg.error is not None:
                if out:
                    break
                raise msg.error  # left in the buffer: every later poll raises it too
            if out and len(out) + len(msg.entries) > max_records:
                break
            buf.popleft()
            out.extend(msg.entries)
            self._next[msg.partition] = msg.offset + 1
        return out

    def _before_fetch(self) -> None:
        """Hook: a group consumer finishes a pending assignment here."""

    def _taken(self) -> None:
        """Hook: called after a poll returned entries."""

    def _assign_positions(self, positions: Mapping[int, int]) -> None:
        """Read exactly ``positions``' partitions from there on (drops the buffer)."""
        self._buffer.clear()
        self._next = dict(positions)
        self._fetched = dict(positions)
        tps = [TopicPartition(self._topic, p, o) for p, o in sorted(positions.items())]
        try:
            self._c.assign(tps)
        except KafkaException as exc:
            raise unavailable(
                f"cannot assign partitions of Kafka topic {self._topic}", exc
            ) from exc

    def positions(self) -> dict[int, int]:
        """Per assigned partition, the next offset a poll will hand out."""
        return dict(self._next)

    def keepalive(self) -> None:
        """Nothing to keep: this consumer belongs to no group."""

    def close(self) -> None:
        """Idempotent; afterwards ``poll`` raises ``UnavailableError``. A group member
        leaves the group (its partitions move at once)."""
        with self._lock:
            self._close_handle()

    def _close_for_log(self) -> None:
        """The log closed: close now unless a poll holds the consumer (it will raise)."""
        if self._lock.acquire(timeout=2 * SLICE_S):
            try:
                self._close_handle()
            finally:
                self._lock.release()

    def _close_handle(self) -> None:
        """REQUIRES: ``_lock`` held."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        try:
            self._c.close()
        except (KafkaException, RuntimeError) as exc:
            logger.warning("closing a Kafka consumer of %s: %s", self._topic, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("this Kafka log consumer is closed")
        self._log._check_open()


class KafkaGroupConsumer(KafkaLogConsumer):
    """A member of a consumer group reading the log's topic (replayers share partitions).

    On every assignment it calls ``positions_of(newly_assigned_partitions)`` (in the
    polling thread) and reads each from there; with the eager protocol used here every
    rebalance revokes everything first, so "newly assigned" is the member's whole new
    assignment. If ``positions_of`` raises, the partitions are held (nothing is read)
    and the poll asks once more; if that fails too the poll raises (``UnavailableError``
    unless ``positions_of`` raised a ``MusselError``) and the next poll asks again.
    ``on_revoke`` (optional) is called in the polling thread with the partitions taken
    away, before the group gives them to another member (eager protocol: at the start
    of every rebalance, with everything). Offsets are committed to Kafka asynchronously,
    at most once a second, for monitoring only.
    """

    def __init__(
        self,
        log: KafkaLog,
        conf: dict[str, Any],
        positions_of: Callable[[list[int]], Mapping[int, int]],
    ) -> None:
        super().__init__(log, conf)
        self._positions_of = positions_of
        self.on_revoke: Callable[[list[int]], None] | None = None
        self._assignment: frozenset[int] = frozenset()
        self._pending: list[int] | None = None
        self._last_commit = 0.0
        try:
            self._c.subscribe(
                [self._topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
        except KafkaException as exc:
            raise unavailable(f"cannot subscribe to Kafka topic {self._topic}", exc) from exc

    def assignment(self) -> frozenset[int]:
        """The partitions this member reads now."""
        return self._assignment

    def seek(self, positions: Mapping[int, int]) -> None:
        """Read the given assigned partitions from ``positions`` on (e.g. to rewind after
        another replayer fenced this one); other partitions keep their place."""
        positions = dict(positions)
        with self._lock:
            self._check_open()
            for p, o in positions.items():
                if p not in self._assignment or o < 0:
                    raise InvalidRequestError(
                        f"cannot seek partition {p} to {o}: assigned are {sorted(self._assignment)}"
                    )
            if self._pending is not None:
                return  # positions_of decides where a pending assignment starts
            self._assign_positions({**self._next, **positions})

    def keepalive(self) -> None:
        """Serve the group without handing out records, for a caller that cannot poll
        for a while (its apply keeps failing): heartbeats, rebalance callbacks, and
        librdkafka's ``max.poll.interval`` clock, so the member is not dropped from the
        group. Assigned partitions are paused meanwhile; a message that still arrives
        is buffered for the next ``poll``, never dropped."""
        with self._lock:
            self._check_open()
            try:
                held = self._c.assignment()
                if held:
                    self._c.pause(held)
                try:
                    msg = self._c.poll(0)
                    if msg is not None:
                        self._ingest(msg)
                finally:
                    now_held = self._c.assignment()  # a callback may have changed it
                    if now_held:
                        self._c.resume(now_held)
            except KafkaException as exc:
                raise unavailable(
                    f"cannot reach the group of Kafka topic {self._topic}", exc
                ) from exc

    def _on_assign(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        parts = sorted(tp.partition for tp in tps)
        self._pending = parts
        try:
            self._finish_assignment()
        except Exception as exc:  # a raise inside librdkafka's callback would be lost
            logger.warning("positions of partitions %s unknown yet: %s", parts, exc)
            consumer.assign([])  # hold them (nothing read) until a poll resolves them

    def _on_revoke(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        revoked = sorted(tp.partition for tp in tps)
        self._pending = None
        self._assignment = frozenset()
        self._buffer.clear()
        self._next = {}
        self._fetched = {}
        with_hook = self.on_revoke
        if with_hook is not None and revoked:
            try:
                with_hook(revoked)
            except Exception:
                logger.exception("on_revoke hook failed")
        try:
            consumer.unassign()
        except KafkaException as exc:
            logger.warning("unassign of %s failed: %s", self._topic, exc)

    def _finish_assignment(self) -> None:
        parts = self._pending
        if parts is None:
            return
        try:
            got = self._positions_of(list(parts))
        except MusselError:
            raise
        except Exception as exc:
            raise unavailable(f"positions_of({parts}) failed", exc) from exc
        want = {p: int(got.get(p, 0)) for p in parts}
        for p, o in want.items():
            if o < 0:
                raise InvalidRequestError(f"positions_of gave offset {o} for partition {p}")
        self._log.check_positions(want)
        self._assign_positions(want)
        self._assignment = frozenset(parts)
        self._pending = None

    def _before_fetch(self) -> None:
        if self._pending is not None:
            self._finish_assignment()

    def _taken(self) -> None:
        now = time.monotonic()
        if now - self._last_commit < _COMMIT_EVERY_S or not self._next:
            return
        self._last_commit = now
        tps = [TopicPartition(self._topic, p, o) for p, o in self._next.items()]
        try:
            self._c.commit(offsets=tps, asynchronous=True)
        except KafkaException as exc:  # monitoring only
            logger.debug("offset commit of %s failed: %s", self._topic, exc)
