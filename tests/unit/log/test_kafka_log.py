"""KafkaLog against a real broker (Tansu): what the WriteLog contract suite does not cover.

Messages per partition, whole-message polls, the consumer group (a member that closes,
a member killed with SIGKILL), the shared fresh end-offset fetch, a broker that is down,
a damaged message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from mussel.errors import CorruptionError, InvalidRequestError, UnavailableError
from mussel.log import format as fmt
from mussel.log.base import LogEntry, partition_for
from mussel.log.kafka import KafkaGroupConsumer, KafkaLog, decode_message
from mussel.model import OP_PUT, Mutation
from tests.fixtures.kafka import TansuBroker

P = 4


def put(pk: bytes, sk: bytes = b"", ts: int = 1) -> Mutation:
    return Mutation(1, OP_PUT, pk, sk, ts, b"v")


def pk_in(partition: int, n: int = 1, prefix: str = "k") -> list[bytes]:
    """``n`` pks that land in ``partition``."""
    out, i = [], 0
    while len(out) < n:
        pk = f"{prefix}{i}".encode()
        if partition_for(1, pk, P) == partition:
            out.append(pk)
        i += 1
    return out


def raw_messages(bootstrap: str, topic: str, partition: int) -> list[bytes]:
    """Every message value of one partition, read by a plain librdkafka consumer."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw", "enable.auto.commit": False})
    try:
        end = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)[1]
        c.assign([TopicPartition(topic, partition, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(out) < end and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(m.value() or b"")
        return out
    finally:
        c.close()


@pytest.fixture
def klog(kafka_bootstrap: str, kafka_topic: str) -> Iterator[KafkaLog]:
    log = KafkaLog(kafka_bootstrap, kafka_topic, partitions=P)
    yield log
    log.close()


def poll_until(consumer: object, n: int, max_records: int = 1000, timeout: float = 5.0) -> list:
    out: list[LogEntry] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.poll(max_records, 0.2))  # type: ignore[attr-defined]
    return out


def test_an_append_is_one_message_per_partition(klog: KafkaLog, kafka_bootstrap: str) -> None:
    recs = [put(pk) for pk in pk_in(0, 5)] + [put(pk) for pk in pk_in(2, 3, prefix="x")]
    placed = klog.append(recs)
    assert placed == [(0, 0)] * 5 + [(2, 0)] * 3
    assert klog.end_offsets() == {0: 1, 1: 0, 2: 1, 3: 0}
    values = raw_messages(kafka_bootstrap, klog.topic, 0)
    assert len(values) == 1  # the five records of partition 0 are one message
    assert [e.record for e in decode_message(klog.topic, 0, 0, values[0])] == recs[:5]
    # a second call is a second message: offsets strictly increase per partition
    assert klog.append([put(pk_in(0, 1, prefix="y")[0])]) == [(0, 1)]


def test_calls_waiting_for_a_partition_share_its_next_message(klog: KafkaLog) -> None:
    """Group commit: while a partition's message is in flight, later calls wait and go
    out together as one message, in call order; each call still comes whole."""
    pks = pk_in(3, 200)
    futures = [klog.append_async([put(pk), put(pk, sk=b"2")]) for pk in pks]
    placed = [f.result(timeout=10) for f in futures]
    offsets = [o for call in placed for p, o in call]
    assert all(p == 3 for call in placed for p, _ in call)
    assert all(a == b for a, b in placed)  # a call's records share one message
    assert offsets == sorted(offsets)  # acknowledgement order is log order
    messages = klog.end_offset(3)
    assert messages == offsets[-1] + 1
    assert messages < len(pks)  # fewer messages than calls
    consumer = klog.consumer({})
    got = poll_until(consumer, 400)
    assert [e.record.pk for e in got] == [pk for pk in pks for _ in range(2)]
    assert [e.offset for e in got] == offsets
    consumer.close()


def test_messages_over_a_fetch_size_round_trip(klog: KafkaLog) -> None:
    """Values of 1 MiB, several in one message: bigger than librdkafka's default fetch
    size per partition (1 MiB), still read whole."""
    big = [
        Mutation(1, OP_PUT, b"big", f"{i}".encode(), 1, bytes([i]) * (1 << 20)) for i in range(5)
    ]
    klog.append(big)
    consumer = klog.consumer({})
    got = poll_until(consumer, 5, timeout=10)
    assert [e.record for e in got] == big
    consumer.close()


def test_a_poll_never_splits_a_message(klog: KafkaLog) -> None:
    big = [put(b"row", sk=f"{i:03}".encode()) for i in range(30)]  # one pk: one partition
    p = partition_for(1, b"row", P)
    small = [put(pk) for pk in pk_in(p, 2, prefix="s")]
    klog.append(small[:1])
    klog.append(big)
    klog.append(small[1:])
    consumer = klog.consumer({})
    polls: list[list[LogEntry]] = []
    while sum(map(len, polls)) < 32:
        got = consumer.poll(5, 2.0)
        assert got, "nothing more came"
        polls.append(got)
    # the 30-record message comes whole in one poll, over max_records
    assert [len(g) for g in polls if len(g) > 5] == [30]
    for got in polls:
        offsets = [e.offset for e in got]
        assert offsets == sorted(offsets)
    assert [e.record for got in polls for e in got] == small[:1] + big + small[1:]
    assert consumer.poll(5, 0.3) == []
    consumer.close()


def test_end_offset_sees_another_process_write_at_once(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    with (
        KafkaLog(kafka_bootstrap, kafka_topic, partitions=P) as a,
        KafkaLog(kafka_bootstrap, kafka_topic, partitions=P, create=False) as b,
    ):
        for i in range(20):
            ((p, o),) = a.append([put(f"k{i}".encode())])
            # B never wrote: only the broker's high watermark can tell it
            assert b.end_offset(p) == o + 1
        assert b.end_offsets() == a.end_offsets()


def test_concurrent_end_offset_callers_share_fresh_requests(klog: KafkaLog) -> None:
    """A caller joins only a request that started after it arrived; many callers that
    arrive while one request is out share the next one."""
    started = threading.Semaphore(0)
    release = threading.Event()
    calls: list[int] = []

    def slow_list_offsets(parts: list[int]) -> dict[int, int]:
        calls.append(len(calls))
        n = len(calls)
        started.release()
        release.wait(5)
        return dict.fromkeys(parts, n)

    klog._list_offsets = slow_list_offsets  # type: ignore[method-assign]
    results: dict[str, int] = {}

    def call(name: str) -> None:
        results[name] = klog.end_offset(0)

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert started.acquire(timeout=5)  # request 1 is out
    late = [threading.Thread(target=call, args=(f"late{i}",)) for i in range(8)]
    for t in late:
        t.start()
    time.sleep(0.1)
    release.set()  # request 1 ends; the late callers must not take its answer
    for t in [first, *late]:
        t.join(5)
    assert results["first"] == 1
    assert {results[f"late{i}"] for i in range(8)} == {2}  # all eight shared request 2
    assert len(calls) == 2

    # a request for every partition that began before a caller of one partition arrived
    # does not serve it: the caller sends its own (for its partition alone)
    release.clear()
    everything = threading.Thread(target=klog.end_offsets)
    everything.start()
    assert started.acquire(timeout=5)  # request 3, of all partitions, is out
    one = threading.Thread(target=call, args=("one",))
    one.start()
    time.sleep(0.1)
    release.set()
    everything.join(5)
    one.join(5)
    assert results["one"] == 4  # not request 3: it began before the caller arrived
    assert len(calls) == 4
    calls.clear()
    release.set()
    assert klog.end_offsets() == dict.fromkeys(range(P), 1)


def test_group_consumer_seeks_to_positions_of_and_hands_over_on_close(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    with KafkaLog(kafka_bootstrap, kafka_topic, partitions=P) as log:
        for i in range(3):
            log.append([put(pk) for p in range(P) for pk in pk_in(p, 1, prefix=f"{i}-")])
        stored = {p: 1 for p in range(P)}  # "applied" positions, as a database would hold
        asked: list[tuple[str, list[int]]] = []

        failures = {"b": 2}  # B's database is down the first two times it is asked

        def positions_of(name: str):  # type: ignore[no-untyped-def]
            def get(parts: list[int]) -> dict[int, int]:
                asked.append((name, parts))
                if failures.get(name):
                    failures[name] -= 1
                    raise UnavailableError("database down")
                return {p: stored[p] for p in parts}

            return get

        a = log.group_consumer("replayers", positions_of("a"))
        got = poll_until(a, 2 * P, timeout=15)
        assert a.assignment() == frozenset(range(P))
        assert asked == [("a", list(range(P)))]
        assert {(e.partition, e.offset) for e in got} == {(p, o) for p in range(P) for o in (1, 2)}

        revoked: list[list[int]] = []
        a.on_revoke = revoked.append
        b = log.group_consumer("replayers", positions_of("b"))
        b_errors = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            a.poll(100, 0.1)
            try:
                b.poll(100, 0.1)
            except UnavailableError:  # positions_of failed: the next poll asks again
                b_errors += 1
            if a.assignment() and b.assignment():
                break
        assert b_errors == 1
        assert revoked[0] == list(range(P))  # eager protocol: everything, then a new share
        assert a.assignment() | b.assignment() == frozenset(range(P))
        assert not a.assignment() & b.assignment()

        a.close()  # leaves the group: B gets everything, from the stored positions
        stored.update({p: 2 for p in range(P)})
        asked.clear()
        got = []
        deadline = time.monotonic() + 20
        while b.assignment() != frozenset(range(P)) and time.monotonic() < deadline:
            batch = b.poll(100, 0.1)
            if b.assignment() == frozenset(range(P)):  # not what its old half still read
                got.extend(batch)
        assert b.assignment() == frozenset(range(P))
        assert asked[-1] == ("b", list(range(P)))
        got.extend(poll_until(b, P - len(got), timeout=5))
        assert {(e.partition, e.offset) for e in got} == {(p, 2) for p in range(P)}
        b.seek({0: 0})  # rewind one partition (fenced by another replayer, say)
        again = poll_until(b, 3, timeout=5)
        assert sorted((e.partition, e.offset) for e in again) == [(0, 0), (0, 1), (0, 2)]
        with pytest.raises(InvalidRequestError):
            b.seek({P: 0})
        b.close()


_MEMBER = """
import json, sys, time
from mussel.log.kafka import KafkaLog
log = KafkaLog(sys.argv[1], sys.argv[2], partitions=int(sys.argv[3]), create=False)
c = log.group_consumer("killed-group", lambda parts: {p: 0 for p in parts},
                       session_timeout_s=float(sys.argv[4]))
last = None
while True:
    c.poll(100, 0.1)
    if c.assignment() != last:
        last = c.assignment()
        print(json.dumps(sorted(last)), flush=True)
"""


def test_group_member_killed_hands_its_partitions_over_after_the_session_timeout(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    session_s = 4.0
    with KafkaLog(kafka_bootstrap, kafka_topic, partitions=P) as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _MEMBER, kafka_bootstrap, kafka_topic, str(P), str(session_s)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            assert proc.stdout is not None
            while json.loads(proc.stdout.readline() or "null") != list(range(P)):
                assert proc.poll() is None
            b: KafkaGroupConsumer = log.group_consumer(
                "killed-group", lambda parts: {p: 0 for p in parts}, session_timeout_s=session_s
            )
            deadline = time.monotonic() + 20
            while not b.assignment() and time.monotonic() < deadline:
                b.poll(100, 0.1)
            assert b.assignment() and b.assignment() != frozenset(range(P))
            proc.send_signal(signal.SIGKILL)  # no LeaveGroup: only the session timeout tells
            killed = time.monotonic()
            while b.assignment() != frozenset(range(P)) and time.monotonic() < killed + 30:
                b.poll(100, 0.1)
            assert b.assignment() == frozenset(range(P))
            assert time.monotonic() - killed >= session_s * 0.5
            b.close()
        finally:
            proc.kill()
            proc.wait()


def test_positions_follow_what_polls_returned(klog: KafkaLog) -> None:
    recs = [put(pk) for pk in pk_in(1, 3)]
    for r in recs:
        klog.append([r])
    c = klog.consumer({})
    assert [e.offset for e in poll_until(c, 3)] == [0, 1, 2]
    assert c.positions()[1] == 3
    c.close()


def test_a_damaged_message_is_corruption_never_skipped(
    klog: KafkaLog, kafka_bootstrap: str
) -> None:
    good = put(pk_in(0, 1)[0])
    klog.append([good])
    frame = fmt.batch_head([0], [0], fmt.encode_records([good])) + fmt.encode_records([good])
    damaged = bytearray(frame)
    damaged[-1] ^= 0xFF  # the CRC no longer matches
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in (bytes(damaged), frame):
        producer.produce(klog.topic, value, partition=0)
    producer.flush(5)
    c = klog.consumer({})
    assert [e.record for e in poll_until(c, 1)] == [good]  # what precedes it still comes
    for _ in range(2):  # and every later poll raises again: nothing is skipped
        with pytest.raises(CorruptionError, match=r"offset 1 of partition 0.*checksum"):
            c.poll(10, 2.0)
    c.close()
    wrong_partition = fmt.batch_head([3], [0], fmt.encode_records([good]))
    with pytest.raises(CorruptionError, match="columns"):
        decode_message("t", 0, 5, wrong_partition + fmt.encode_records([good]))
    with pytest.raises(CorruptionError, match="no value"):
        decode_message("t", 0, 5, None)


def test_a_position_outside_the_log_is_corruption(klog: KafkaLog) -> None:
    klog.append([put(b"a")])
    with pytest.raises(CorruptionError, match="not in the log"):
        klog.consumer({p: 5 for p in range(P)})


def test_broker_down_fails_appends_and_end_offsets_within_bounds(
    kafka_broker: TansuBroker,
) -> None:
    log = KafkaLog(
        kafka_broker.bootstrap,
        "outage",
        partitions=P,
        delivery_timeout_s=1.5,
        request_timeout_s=1.0,
        close_timeout_s=0.5,
    )
    try:
        assert log.append([put(b"before")])
        kafka_broker.kill()
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="may or may not be in the log"):
            log.append([put(b"during")])
        assert time.monotonic() - started < 5
        fut = log.append_async([put(b"during2")])
        with pytest.raises(UnavailableError):
            fut.result(timeout=5)
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            log.end_offsets()
        assert time.monotonic() - started < 5
    finally:
        log.close()
    kafka_broker.start()  # the same port again (Tansu keeps nothing: a fresh, empty broker)
    with KafkaLog(kafka_broker.bootstrap, "outage", partitions=P) as again:
        assert again.append([put(b"after")]) == [(partition_for(1, b"after", P), 0)]


def test_topic_with_another_partition_count_is_refused(klog: KafkaLog) -> None:
    with pytest.raises(InvalidRequestError, match="has 4 partitions, not 8"):
        KafkaLog(klog.bootstrap, klog.topic, partitions=8)


def test_from_url(kafka_bootstrap: str, kafka_topic: str) -> None:
    url = f"kafka://{kafka_bootstrap}/{kafka_topic}?partitions=2&client_id=me&request_timeout_s=3"
    with KafkaLog.from_url(url) as log:
        assert (log.partitions, log.topic, log.bootstrap) == (2, kafka_topic, kafka_bootstrap)
        assert log.append([put(b"x")])[0][1] == 0
    for bad in (
        "http://h:1/t",
        f"kafka://{kafka_bootstrap}/",
        f"kafka://{kafka_bootstrap}/t?partitions=x",
        f"kafka://{kafka_bootstrap}/t?nope=1",
        f"kafka://{kafka_bootstrap}/bad topic",
    ):
        with pytest.raises(InvalidRequestError):
            KafkaLog.from_url(bad)


def test_close_flushes_and_fails_what_is_left(klog: KafkaLog) -> None:
    futures = [klog.append_async([put(f"c{i}".encode())]) for i in range(50)]
    klog.close()
    assert all(f.done() for f in futures)
    assert sum(1 for f in futures if f.exception() is None) == 50  # the broker was up
    with pytest.raises(UnavailableError):
        klog.append([put(b"late")])
