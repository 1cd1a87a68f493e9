"""``KafkaLog``: the write log of distributed mode, on any Kafka-protocol broker.

With its readers in :mod:`mussel.log.kafka_consumer` (whose public names are importable
from here too), the only module that imports ``confluent_kafka``; every library error
becomes a :class:`mussel.errors.MusselError` (``UnavailableError`` for a broker that is
down or a request that timed out).

Layout. One topic per cluster (``KafkaLog(bootstrap, topic)`` or
``kafka://host:port[,host:port]/topic?partitions=8``) holds every table's writes: its
partitions are the log's partitions, ``partition_for(table_id, pk, P)`` of
:mod:`mussel.log.base`, and the producer names the partition of every message itself
(no key hashing by the client). One topic rather than one per namespace: a replayer
group then covers every namespace with one subscription, and Kafka's per-partition cost
does not grow with tenants. The topic is created if missing (``create=True``) with
``cleanup.policy=delete`` and ``max.message.bytes`` large enough for the biggest write
batch; an existing topic must have exactly ``partitions`` partitions.

Messages. An ``append`` call's records are grouped by partition and each group goes
whole into ONE Kafka message whose value is one BATCH frame of :mod:`mussel.log.format`
(the LocalLog framing, CRC-checked): ``partitions`` column = that partition for every
record, ``offsets`` column = the record's index in the message (0, 1, ...; Kafka assigns
the real offset). No key, no headers. So a call is atomic per partition, and every
record of one call in one partition has that message's offset: offsets strictly
increase per partition but are not dense by one per record, and ``append`` returns the
message's offset for each of its records.

Group commit. Each partition has a lane with at most ``max_in_flight`` (default 1)
messages on their way to the broker. A call whose partition's lane is free is produced
at once (no added latency); otherwise its group waits, and when the message in flight
is acknowledged every waiting group of that partition goes out as one message (the
encoded records are concatenated, not encoded again). A message therefore holds one or
more calls' groups, never part of one. Groups of a call that already failed are
dropped from the lane, not sent.

Atomicity. A call that spans partitions is several messages and is NOT atomic across
partitions if the broker fails mid-way: some may be in the log and
others not (the call then fails with ``UnavailableError``, and a retry with explicit ts
is idempotent by SPEC §2). Kafka transactions would make it atomic, but Tansu (the
test broker) shows aborted records to read_committed consumers, so none is used.

Producer. Idempotent (``enable.idempotence``, ``acks=all``), so a broker retry never
duplicates or reorders a message. A call is acknowledged only once the broker confirmed
every one of its messages (delivery callbacks, served by a background thread that polls
the producer); any delivery error fails the whole call with ``UnavailableError``
("may or may not be in the log"). ``delivery_timeout_s`` (``message.timeout.ms``)
bounds how long an append waits for a broker that is down. The first append after
opening waits for the producer id of the idempotent producer (0.5-1 s on Tansu).

One message per Kafka record batch (``batch.num.messages=1``): Tansu reports a
partition's high watermark as the base offset of its last record batch plus one, so a
record batch of several messages would hide acknowledged messages from the end offsets
that strong reads wait for. The lanes above do the batching instead (and keep it
correct on every broker).

End offsets. ``end_offsets()``/``end_offset(p)`` are what strong reads wait for, so they
are fresh: the broker's high watermarks from one ListOffsets request that started after
the call began (of every partition for ``end_offsets``, of p alone for ``end_offset``),
max'd with this process's own acknowledged offsets + 1. A "read index": concurrent
callers share requests, a caller taking the answer only of a request that started after
it arrived.

Consumers. A poll never returns part of a Kafka message: the records of one message all
come in the same poll, because the replayer stores offset + 1 of what a poll returned as
applied. A poll returns whole messages while they fit in ``max_records``, and at least
one when any is ready (so one message bigger than ``max_records`` comes whole). Every
message is decoded and CRC-checked; a bad one is ``CorruptionError`` (never skipped).
``consumer(positions)`` assigns every partition; ``group_consumer(group_id,
positions_of)`` joins a consumer group (replayers sharing the partitions) and seeks
every newly assigned partition to ``positions_of(partitions)`` (the applied offsets
stored in the database). Offsets are committed to Kafka only asynchronously, for
monitoring (consumer-group lag); correctness never depends on them. ``release``
deletes nothing: the broker's retention does.

Tansu, the broker of the tests, as measured: high watermarks as above; ListOffsets
scans the stored messages (its latency grows with the topic: ~31 ms for 8 partitions of
20,000 messages in all); a fetch past a partition's end waits instead of failing
(positions are checked against the watermarks on assignment for that reason); a
metadata request for a missing topic creates it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from mussel.errors import (
    CorruptionError,
    InvalidRequestError,
    MusselError,
    TooLargeError,
    UnavailableError,
)
from mussel.log import format as fmt
from mussel.log.kafka_consumer import (
    KafkaGroupConsumer,
    KafkaLogConsumer,
    decode_message,
    unavailable,
)
from mussel.model import Mutation

__all__ = ["KafkaGroupConsumer", "KafkaLog", "KafkaLogConsumer", "decode_message"]

logger = logging.getLogger("mussel.log.kafka")

MAX_MESSAGE_BYTES = 48 << 20
"""The largest message the topic accepts: over the 32 MiB batch limit."""
_MAX_RECORDS_BYTES = MAX_MESSAGE_BYTES - (1 << 20)  # room for the frame and the columns

_MAYBE = (
    "the write may or may not be in the log; retrying it with explicit timestamps is idempotent"
)
_ALL = -1  # the read-index key of a request for every partition
_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

ConfigValue = str | int | float | bool


class _Call:
    """One append call in flight: one Kafka message per partition it touches."""

    __slots__ = ("error", "future", "lock", "offsets", "parts", "remaining")

    def __init__(self, future: Future[list[tuple[int, int]]], parts: list[int], n: int) -> None:
        self.future = future
        self.parts = parts
        self.remaining = n
        self.offsets: dict[int, int] = {}
        self.error: str | None = None
        self.lock = threading.Lock()


class _Group:
    """The records of one call in one partition, encoded (``count`` of them)."""

    __slots__ = ("body", "call", "count", "partition")

    def __init__(self, call: _Call, partition: int, body: bytes, count: int) -> None:
        self.call = call
        self.partition = partition
        self.body = body
        self.count = count


class _Lane:
    """A partition's write lane: messages in flight, groups waiting for the next one."""

    __slots__ = ("sending", "waiting")

    def __init__(self) -> None:
        self.sending = 0
        self.waiting: deque[_Group] = deque()


class _Fetch:
    """One ListOffsets request (of one partition or all); ``ticket`` orders requests."""

    __slots__ = ("done", "ends", "error", "ticket")

    def __init__(self, ticket: int) -> None:
        self.ticket = ticket
        self.done = threading.Event()
        self.ends: dict[int, int] | None = None
        self.error: MusselError | None = None


class KafkaLog:
    """A :class:`mussel.log.base.WriteLog` on a Kafka topic (module docstring).

    ``config`` is librdkafka configuration for every client (security settings, ...);
    ``producer_config`` and ``consumer_config`` override it for one kind.
    ``max_in_flight``: messages per partition on their way to the broker at once (the
    group commit of the module docstring). Raises
    ``UnavailableError`` if the broker cannot be reached within ``request_timeout_s``,
    ``InvalidRequestError`` for a topic with another partition count (or a missing one
    with ``create=False``).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        partitions: int = 8,
        create: bool = True,
        client_id: str = "mussel",
        replication_factor: int = -1,
        delivery_timeout_s: float = 10.0,
        request_timeout_s: float = 5.0,
        close_timeout_s: float = 5.0,
        max_in_flight: int = 1,
        config: Mapping[str, ConfigValue] | None = None,
        producer_config: Mapping[str, ConfigValue] | None = None,
        consumer_config: Mapping[str, ConfigValue] | None = None,
    ) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidRequestError(f"partitions must be a positive integer, not {partitions!r}")
        if not topic or len(topic) > 249 or not set(topic) <= _TOPIC_CHARS:
            raise InvalidRequestError(
                f"bad Kafka topic name {topic!r} (1 to 249 of a-z A-Z 0-9 . _ -)"
            )
        if not bootstrap:
            raise InvalidRequestError("no Kafka bootstrap servers given")
        if max_in_flight < 1:
            raise InvalidRequestError("max_in_flight must be at least 1")
        self._bootstrap = bootstrap
        self._topic = topic
        self._partitions = partitions
        self._request_timeout_s = request_timeout_s
        self._close_timeout_s = close_timeout_s
        self._common: dict[str, ConfigValue] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "socket.timeout.ms": max(1000, int(request_timeout_s * 1000)),
        }
        self._common.update(config or {})
        self._consumer_config = dict(consumer_config or {})
        self._closed = False
        self._fatal: str | None = None
        self._lock = threading.Lock()  # guards _inflight, _acked
        self._inflight: set[_Call] = set()
        self._lanes = [_Lane() for _ in range(partitions)]
        self._max_in_flight = max_in_flight
        self._acked = [0] * partitions
        self._consumers: weakref.WeakSet[KafkaLogConsumer] = weakref.WeakSet()
        # the end-offset "read index"
        self._fetch_cond = threading.Condition()
        self._fetch_tickets = 0  # requests started so far (all keys): a request's ticket
        self._fetching: dict[int, _Fetch] = {}  # key (partition or _ALL) -> request out
        self._fetched: dict[int, _Fetch] = {}  # key -> the last request that ended

        admin_conf: dict[str, Any] = {**self._common, "logger": logger}
        self._admin = AdminClient(admin_conf)
        self._ensure_topic(create, replication_factor)
        producer_conf: dict[str, ConfigValue | Any] = {
            **self._common,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "batch.num.messages": 1,
            "message.timeout.ms": max(1, int(delivery_timeout_s * 1000)),
            "message.max.bytes": MAX_MESSAGE_BYTES + 4096,
            "error_cb": self._on_error,
            "logger": logger,
        }
        producer_conf.update(producer_config or {})
        try:
            self._producer = Producer(producer_conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise InvalidRequestError(f"bad Kafka producer configuration: {exc}") from exc
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, name=f"mussel-kafka-{topic}", daemon=True
        )
        self._poller.start()

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> KafkaLog:
        """``kafka://host:port[,host:port...]/topic[?param=value&...]``.

        Parameters: ``partitions`` (default 8), ``create`` (``true``/``false``, default
        true), ``client_id``, ``replication_factor`` (default -1: the broker's default),
        ``delivery_timeout_s``, ``request_timeout_s``, ``close_timeout_s``,
        ``max_in_flight`` (the constructor's arguments); any parameter with a dot in its
        name is librdkafka configuration for every client (``security.protocol=SSL``).
        Keyword ``overrides`` win over the URL.
        """
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise InvalidRequestError(
                f"not a Kafka log URL: {url!r} (kafka://host:port[,host:port]/topic)"
            )
        topic = parts.path.lstrip("/")
        kwargs: dict[str, Any] = {}
        config: dict[str, ConfigValue] = {}
        try:
            for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
                if "." in key:
                    config[key] = value
                elif key in ("partitions", "replication_factor", "max_in_flight"):
                    kwargs[key] = int(value)
                elif key in ("delivery_timeout_s", "request_timeout_s", "close_timeout_s"):
                    kwargs[key] = float(value)
                elif key == "client_id":
                    kwargs[key] = value
                elif key == "create":
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(f"create={value}")
                    kwargs[key] = value.lower() in ("true", "1", "yes")
                else:
                    raise InvalidRequestError(f"unknown Kafka log URL parameter {key!r} in {url!r}")
        except ValueError as exc:
            raise InvalidRequestError(f"bad Kafka log URL {url!r}: {exc}") from None
        if config:
            kwargs["config"] = config
        kwargs.update(overrides)
        return cls(parts.netloc, topic, **kwargs)

    def _ensure_topic(self, create: bool, replication_factor: int) -> None:
        timeout = self._request_timeout_s
        if create:
            topic = NewTopic(
                self._topic,
                self._partitions,
                replication_factor=replication_factor,
                config={"cleanup.policy": "delete", "max.message.bytes": str(MAX_MESSAGE_BYTES)},
            )
            try:
                futures = self._admin.create_topics([topic], request_timeout=timeout)
                futures[self._topic].result(timeout + 1)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not (
                    isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    raise unavailable(f"cannot create Kafka topic {self._topic}", exc) from exc
            except Exception as exc:  # a timeout of the future
                raise unavailable(f"cannot create Kafka topic {self._topic}", exc) from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                meta = self._admin.list_topics(self._topic, timeout=timeout)
            except KafkaException as exc:
                raise unavailable(f"cannot reach the Kafka brokers {self._bootstrap}", exc) from exc
            info = meta.topics.get(self._topic)
            missing = info is None or info.error is not None or not info.partitions
            if missing and not create:
                raise InvalidRequestError(
                    f"Kafka topic {self._topic} does not exist (and create is false)"
                )
            if not missing and info is not None:
                count = len(info.partitions)
                if count != self._partitions:
                    raise InvalidRequestError(
                        f"Kafka topic {self._topic} has {count} partitions, not "
                        f"{self._partitions}: the partition count is fixed when the log is "
                        "created (use the same count, or another topic)"
                    )
                if all(p.leader >= 0 for p in info.partitions.values()):
                    return
            if time.monotonic() > deadline:
                raise UnavailableError(f"Kafka topic {self._topic} has no leader for a partition")
            time.sleep(0.05)

    # -- WriteLog -------------------------------------------------------------------

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    def append(self, records: Sequence[Mutation]) -> list[tuple[int, int]]:
        """Append ``records``; return once the broker confirmed every message of the call.

        Returns (partition, offset) per record in call order; the records of one
        partition share their message's offset. Raises as :meth:`append_async`.
        """
        fut = self.append_async(records)
        try:
            return fut.result()
        except MusselError:
            raise
        except Exception as exc:  # pragma: no cover - the future only holds MusselErrors
            raise unavailable("append failed", exc) from exc

    def append_async(self, records: Sequence[Mutation]) -> Future[list[tuple[int, int]]]:
        """Queue one group per partition of ``records``; the future completes (in the
        producer's poller thread) once the broker acknowledged the message of each.

        Raises ``InvalidRequestError`` at once unless every record is well formed
        (:func:`mussel.log.format.well_formed`), ``TooLargeError`` for a partition's
        group over ``MAX_MESSAGE_BYTES``, ``UnavailableError`` if the log is closed or
        its producer failed. The future fails with ``UnavailableError`` on any delivery
        error (timeout included).
        """
        self._check_open()
        fut: Future[list[tuple[int, int]]] = Future()
        fut.set_running_or_notify_cancel()
        try:
            parts = fmt.partitions_of(records, self._partitions)
        except ValueError as exc:
            raise InvalidRequestError(f"cannot log these records: {exc}") from None
        if not parts:
            fut.set_result([])
            return fut
        grouped: dict[int, list[Mutation]] = {}
        for p, r in zip(parts, records, strict=True):
            grouped.setdefault(p, []).append(r)
        call = _Call(fut, parts, len(grouped))
        groups: list[_Group] = []
        for p, recs in grouped.items():
            try:
                body = fmt.encode_records(recs)
            except ValueError as exc:
                raise InvalidRequestError(f"cannot log these records: {exc}") from None
            if len(body) > _MAX_RECORDS_BYTES:
                raise TooLargeError(
                    f"the records of partition {p} take {len(body)} bytes; a Kafka log "
                    f"message holds at most {_MAX_RECORDS_BYTES} bytes of records"
                )
            groups.append(_Group(call, p, body, len(recs)))
        send_now: list[_Group] = []
        with self._lock:
            self._check_open()
            self._inflight.add(call)
            for g in groups:
                lane = self._lanes[g.partition]
                if lane.sending < self._max_in_flight:
                    lane.sending += 1
                    send_now.append(g)
                else:  # group commit: it goes with the next message of its partition
                    lane.waiting.append(g)
        for g in send_now:
            self._send(g.partition, [g])
        return fut

    def _send(self, partition: int, groups: list[_Group]) -> None:
        """Produce ``groups`` (whole calls' groups of one partition) as ONE message.
        REQUIRES: a sending slot of the partition's lane is held for it."""
        n = sum(g.count for g in groups)
        body = fmt.join_records([(g.body, g.count) for g in groups])
        value = fmt.batch_head([partition] * n, list(range(n)), body) + body
        callback = functools.partial(self._delivered, groups, partition)
        deadline = time.monotonic() + self._request_timeout_s
        reason = ""
        while True:
            try:
                self._producer.produce(
                    self._topic, value, partition=partition, on_delivery=callback
                )
                return
            except BufferError:  # the local queue is full: the poller drains it
                if time.monotonic() > deadline:
                    reason = "the Kafka producer's queue stayed full"
                    break
                time.sleep(0.002)
            except KafkaException as exc:
                reason = f"the Kafka producer refused a message: {exc}"
                break
        for g in groups:
            self._fail(g.call, reason)
        self._next_message(partition)

    def _delivered(
        self, groups: list[_Group], partition: int, err: KafkaError | None, msg: Message
    ) -> None:
        """Delivery callback (poller thread, or the thread in ``close``'s flush)."""
        try:
            if err is not None:
                reason = f"a message of partition {partition} was not delivered: {err.str()}"
                for g in groups:
                    self._fail(g.call, reason)
                return
            offset = msg.offset()
            if offset is None:  # pragma: no cover - librdkafka gives one with acks=all
                offset = -1
            with self._lock:
                self._acked[partition] = max(self._acked[partition], offset + 1)
            for g in groups:
                self._group_done(g.call, partition, offset)
        finally:
            self._next_message(partition)

    def _group_done(self, call: _Call, partition: int, offset: int) -> None:
        with call.lock:
            if call.error is not None:
                return
            call.offsets[partition] = offset
            call.remaining -= 1
            done = call.remaining == 0
        if done:
            with self._lock:
                self._inflight.discard(call)
            offsets = call.offsets
            call.future.set_result([(p, offsets[p]) for p in call.parts])

    def _next_message(self, partition: int) -> None:
        """A message of ``partition`` is done: send what waits for it as one message, or
        free the slot. Groups of calls that already failed are dropped, not sent."""
        with self._lock:
            lane = self._lanes[partition]
            batch: list[_Group] = []
            size = 0
            while lane.waiting:
                g = lane.waiting[0]
                if g.call.error is not None:
                    lane.waiting.popleft()
                    continue
                if batch and size + len(g.body) > _MAX_RECORDS_BYTES:
                    break
                batch.append(lane.waiting.popleft())
                size += len(g.body)
            if not batch:
                lane.sending -= 1
                return
        self._send(partition, batch)

    def _fail(self, call: _Call, reason: str) -> None:
        with call.lock:
            if call.error is not None or call.remaining == 0:
                return
            call.error = reason
        with self._lock:
            self._inflight.discard(call)
        call.future.set_exception(
            UnavailableError(f"Kafka append to {self._topic} failed: {reason}; {_MAYBE}")
        )

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
            logger.error("Kafka producer failed for good: %s", err.str())
        else:
            logger.warning("Kafka producer: %s", err.str())

    def _poll_loop(self) -> None:
        producer, stop = self._producer, self._stop
        while not stop.is_set():
            try:
                producer.poll(0.05)
            except Exception:  # a callback raised: never let the poller die
                logger.exception("Kafka producer poll failed")

    def end_offsets(self) -> dict[int, int]:
        """Per partition, one past the last acknowledged offset: the high watermarks from
        a ListOffsets request that started after this call, max'd with this process's
        own acknowledged offsets + 1. ``UnavailableError`` if the broker does not answer
        within ``request_timeout_s``."""
        ends = self._fresh_ends(_ALL)
        with self._lock:
            acked = list(self._acked)
        return {p: max(ends[p], a) for p, a in enumerate(acked)}

    def end_offset(self, partition: int) -> int:
        """``end_offsets()[partition]``, from a request for this partition alone (or for
        all, if one started after this call): on some brokers (Tansu) a ListOffsets costs
        in proportion to the partitions it names."""
        if not 0 <= partition < self._partitions:
            self._check_open()
            raise InvalidRequestError(
                f"no partition {partition} (the log has partitions 0..{self._partitions - 1})"
            )
        end = self._fresh_ends(partition)[partition]
        return max(end, self._acked[partition])

    def _fresh_ends(self, key: int) -> dict[int, int]:
        """High watermarks of partition ``key`` (or of all, ``_ALL``) from a request that
        began after the caller arrived; concurrent callers share requests.

        The read index: a caller takes the answer of a request that started after it
        arrived (still out, or already ended; for one partition, a request for all
        partitions does too), else sends one if none of its key is out, else waits for
        the one that is out to end and looks again.
        """
        self._check_open()
        cond = self._fetch_cond
        keys = (key,) if key == _ALL else (key, _ALL)
        with cond:
            arrived = self._fetch_tickets
            while True:
                fetch = None
                for k in keys:
                    for f in (self._fetching.get(k), self._fetched.get(k)):
                        if f is not None and f.ticket > arrived:  # began after we arrived
                            fetch = f
                            break
                    if fetch is not None:
                        break
                if fetch is not None:
                    leader = False
                    break
                if key not in self._fetching:
                    self._fetch_tickets += 1
                    fetch = self._fetching[key] = _Fetch(self._fetch_tickets)
                    leader = True
                    break
                cond.wait()  # an older request of our key is out: wait for it to end
        if leader:
            try:
                parts = list(range(self._partitions)) if key == _ALL else [key]
                fetch.ends = self._list_offsets(parts)
            except MusselError as exc:
                fetch.error = exc
            finally:
                with cond:
                    del self._fetching[key]
                    self._fetched[key] = fetch
                    cond.notify_all()
                fetch.done.set()
        else:
            fetch.done.wait()
        if fetch.error is not None:
            raise fetch.error
        assert fetch.ends is not None
        return fetch.ends

    def _list_offsets(self, partitions: list[int]) -> dict[int, int]:
        """The high watermarks of ``partitions``: one ListOffsets round trip."""
        timeout = self._request_timeout_s
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(self._topic, p): latest for p in partitions}
        what = f"cannot read the end offsets of Kafka topic {self._topic}"
        try:
            futures = self._admin.list_offsets(request, request_timeout=timeout)
            return {tp.partition: f.result(timeout + 1).offset for tp, f in futures.items()}
        except KafkaException as exc:
            raise unavailable(what, exc) from exc
        except Exception as exc:  # a timeout of a future
            raise unavailable(what, exc) from exc

    def check_positions(self, positions: Mapping[int, int]) -> None:
        """``CorruptionError`` unless every ``positions[p]`` is within partition p's
        retained offsets (from its low to its high watermark): a broker may not say so
        itself (Tansu waits at a position past the end instead of failing the fetch)."""
        if not positions:
            return
        timeout = self._request_timeout_s
        spans: dict[int, list[int]] = {p: [0, 0] for p in positions}
        try:
            for i, spec in enumerate((OffsetSpec.earliest(), OffsetSpec.latest())):  # type: ignore[no-untyped-call]
                request = {TopicPartition(self._topic, p): spec for p in positions}
                for tp, f in self._admin.list_offsets(request, request_timeout=timeout).items():
                    spans[tp.partition][i] = f.result(timeout + 1).offset
        except Exception as exc:
            raise unavailable(f"cannot read the offsets of Kafka topic {self._topic}", exc) from exc
        for p, offset in positions.items():
            low, high = spans[p]
            high = max(high, self._acked[p])
            if offset < low:
                raise CorruptionError(
                    f"log starts at offset {low} of partition {p} of Kafka topic "
                    f"{self._topic}: offset {offset} was deleted (retention)"
                )
            if offset > high:
                raise CorruptionError(
                    f"offset {offset} of partition {p} of Kafka topic {self._topic} is not in "
                    f"the log: it ends at {high}"
                )

    def consumer(self, positions: Mapping[int, int]) -> KafkaLogConsumer:
        """A consumer assigned every partition from ``positions`` (missing: 0).

        ``CorruptionError`` at once for a position outside its partition's retained
        offsets (and from a poll, if retention deletes it later).
        """
        want = self._positions(positions)
        self._check_open()
        self.check_positions(dict(enumerate(want)))
        consumer = KafkaLogConsumer(self, self._consumer_conf(None))
        consumer._assign_positions(dict(enumerate(want)))
        self._consumers.add(consumer)
        return consumer

    def group_consumer(
        self,
        group_id: str,
        positions_of: Callable[[list[int]], Mapping[int, int]],
        *,
        session_timeout_s: float = 6.0,
        max_poll_interval_s: float = 10.0,
    ) -> KafkaGroupConsumer:
        """A member of consumer group ``group_id``: see :class:`KafkaGroupConsumer`.

        ``session_timeout_s``: how long after a member dies (no heartbeat) its
        partitions move. ``max_poll_interval_s``: a member that does not poll for that
        long is dropped from the group (its partitions move; its next poll rejoins).
        """
        if not group_id:
            raise InvalidRequestError("a consumer group needs a non-empty group id")
        self._check_open()
        conf = self._consumer_conf(group_id)
        conf.setdefault("session.timeout.ms", int(session_timeout_s * 1000))
        conf.setdefault("heartbeat.interval.ms", max(100, int(session_timeout_s * 1000) // 12))
        conf.setdefault("max.poll.interval.ms", int(max_poll_interval_s * 1000))
        conf.setdefault("partition.assignment.strategy", "roundrobin")
        consumer = KafkaGroupConsumer(self, conf, positions_of)
        self._consumers.add(consumer)
        return consumer

    def _consumer_conf(self, group_id: str | None) -> dict[str, Any]:
        conf: dict[str, Any] = {
            **self._common,
            "group.id": group_id if group_id is not None else f"mussel-reader-{id(self)}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "enable.partition.eof": False,
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": 100,
            "check.crcs": True,
            "logger": logger,
        }
        conf.update(self._consumer_config)
        if group_id is not None:
            conf["group.id"] = group_id
        return conf

    def release(self, positions: Mapping[int, int]) -> None:
        """Nothing to delete: the broker's retention removes old messages (set the
        topic's ``retention.ms``/``retention.bytes`` longer than a replayer may lag)."""
        self._positions(positions)
        self._check_open()

    def close(self) -> None:
        """Flush pending messages (up to ``close_timeout_s``), fail what is still in
        flight with ``UnavailableError``, close the consumers that are not polling (a
        polling one raises within ``0.1`` s and is closed then); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()  # the poller ends, so that one thread (this one) serves callbacks
        self._poller.join()
        try:
            self._producer.flush(self._close_timeout_s)
        except Exception:  # pragma: no cover
            logger.exception("flushing the Kafka producer failed")
        with self._lock:
            pending = list(self._inflight)
        for call in pending:
            self._fail(call, "the log was closed before the broker confirmed it")
        with self._fetch_cond:
            self._fetch_cond.notify_all()
        for consumer in list(self._consumers):
            consumer._close_for_log()

    def __enter__(self) -> KafkaLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError(f"the Kafka write log of topic {self._topic} is closed")
        if self._fatal is not None:
            raise UnavailableError(f"the Kafka producer failed: {self._fatal}")

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
