"""One contract, every write log: the ``WriteLog`` protocol of ``mussel.log.base``.

``KafkaLog`` keeps a weaker form of two points, stated precisely where they differ:
offsets strictly increase per partition but are not dense by one per record (the
records of one append in one partition are one Kafka message and share its offset),
and ``release`` deletes nothing (the broker's retention does).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mussel.errors import CorruptionError, InvalidRequestError, UnavailableError
from mussel.log.base import LogConsumer, LogEntry, WriteLog, partition_for
from mussel.log.kafka import KafkaLog, KafkaLogConsumer
from mussel.log.local import LocalLog
from mussel.log.memory import MemoryLog
from mussel.model import OP_DELETE, OP_PUT, Mutation

P = 4


def put(pk: bytes, ts: int = 1, value: bytes = b"v", table: int = 1, sk: bytes = b"") -> Mutation:
    return Mutation(table, OP_PUT, pk, sk, ts, value)


def keys(n: int, prefix: str = "k") -> list[Mutation]:
    return [put(f"{prefix}{i}".encode(), ts=i) for i in range(n)]


def drain(consumer: LogConsumer, max_records: int = 1000, idle_s: float = 0.05) -> list[LogEntry]:
    """Every entry the consumer returns until one poll waits ``idle_s`` for nothing.

    A Kafka consumer fetches over the network (its first fetch connects first): it gets
    a longer idle wait before "nothing more" is believed.
    """
    if isinstance(consumer, KafkaLogConsumer):
        idle_s = max(idle_s, 0.5)
    out: list[LogEntry] = []
    while True:
        got = consumer.poll(max_records, idle_s)
        if not got:
            return out
        out.extend(got)


def dense(log: WriteLog) -> bool:
    """Whether the log gives every record its own offset (Memory, Local: yes; Kafka: no)."""
    return not isinstance(log, KafkaLog)


def check_order(entries: list[LogEntry], dense_offsets: bool = True) -> None:
    """Per partition, offsets strictly increase by one (dense logs), or never decrease
    (Kafka: a message's records share its offset, later messages have higher ones)."""
    last: dict[int, int] = {}
    for e in entries:
        if e.partition in last:
            if dense_offsets:
                assert e.offset == last[e.partition] + 1, (e.partition, e.offset)
            else:
                assert e.offset >= last[e.partition], (e.partition, e.offset)
        last[e.partition] = e.offset


@pytest.fixture(params=["memory", "local", "kafka"])
def wlog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WriteLog]:
    log: WriteLog
    if request.param == "memory":
        log = MemoryLog(P)
    elif request.param == "local":
        log = LocalLog(tmp_path / "log", P)
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        log = KafkaLog(bootstrap, request.getfixturevalue("kafka_topic"), partitions=P)
    yield log
    log.close()


def test_append_returns_partition_for_and_dense_offsets(wlog: WriteLog) -> None:
    recs = keys(50)
    placed = wlog.append(recs)
    assert [p for p, _ in placed] == [partition_for(r.table_id, r.pk, P) for r in recs]
    per_partition: dict[int, list[int]] = {}
    for p, o in placed:
        per_partition.setdefault(p, []).append(o)
    if dense(wlog):
        for offsets in per_partition.values():
            assert offsets == list(range(len(offsets)))
        assert wlog.end_offsets() == {p: len(per_partition.get(p, [])) for p in range(P)}
    else:  # one message per partition: its records share offset 0, the end is 1
        for offsets in per_partition.values():
            assert offsets == [0] * len(offsets)
        assert wlog.end_offsets() == {p: int(p in per_partition) for p in range(P)}
        again = wlog.append(recs)  # a later append: strictly higher offsets
        assert all(o == 1 for _, o in again)


def test_end_offset_is_one_partition_of_end_offsets(wlog: WriteLog) -> None:
    assert [wlog.end_offset(p) for p in range(P)] == [0] * P
    for i in range(3):
        wlog.append(keys(13, prefix=f"{i}-"))
        ends = wlog.end_offsets()
        assert {p: wlog.end_offset(p) for p in range(P)} == ends
    wlog.release(ends)
    assert {p: wlog.end_offset(p) for p in range(P)} == ends
    for bad in (-1, P):
        with pytest.raises(InvalidRequestError):
            wlog.end_offset(bad)


def test_consumer_round_trips_every_record_in_offset_order(wlog: WriteLog) -> None:
    batches = [keys(7, prefix=f"b{i}-") for i in range(20)]
    placed = {}
    for b in batches:
        for (p, o), r in zip(wlog.append(b), b, strict=True):
            placed[(p, o)] = r  # (Kafka: records of one message overwrite each other here)
    entries = drain(wlog.consumer({}), max_records=9)
    check_order(entries, dense(wlog))
    if dense(wlog):
        assert {(e.partition, e.offset): e.record for e in entries} == placed
    assert len(entries) == sum(len(b) for b in batches)
    assert {e.record for e in entries} == {r for b in batches for r in b}


def test_records_keep_every_field(wlog: WriteLog) -> None:
    recs = [
        Mutation(7, OP_PUT, b"\x00pk\xff", b"sk", -5, b"\x00" * 300),
        Mutation(2**31, OP_DELETE, b"p", b"", 2**63 - 1),
    ]
    wlog.append(recs)
    assert {e.record for e in drain(wlog.consumer({}))} == set(recs)


def test_consumer_starts_at_positions_and_skips_below(wlog: WriteLog) -> None:
    placed: list[tuple[int, int, Mutation]] = []
    for i in range(10):
        recs = keys(4, prefix=f"{i}-")
        placed += [(p, o, r) for (p, o), r in zip(wlog.append(recs), recs, strict=True)]
    ends = wlog.end_offsets()
    start = {p: end // 2 for p, end in ends.items()}
    entries = drain(wlog.consumer(start))
    check_order(entries, dense(wlog))
    assert Counter(entries) == Counter(LogEntry(p, o, r) for p, o, r in placed if o >= start[p])
    got: dict[int, list[int]] = {}
    for e in entries:
        got.setdefault(e.partition, []).append(e.offset)
    if dense(wlog):
        assert got == {p: list(range(start[p], ends[p])) for p in range(P) if ends[p] > start[p]}


def test_poll_waits_for_a_later_append(wlog: WriteLog) -> None:
    consumer = wlog.consumer(wlog.end_offsets())
    assert consumer.poll(10, 0.01) == []
    timer = threading.Timer(0.05, wlog.append, args=([put(b"late")],))
    timer.start()
    started = time.monotonic()
    got = consumer.poll(10, 5.0)
    timer.join()
    assert [e.record.pk for e in got] == [b"late"]
    assert time.monotonic() - started < 4.0


def test_poll_times_out_with_nothing(wlog: WriteLog) -> None:
    consumer = wlog.consumer({})
    started = time.monotonic()
    assert consumer.poll(10, 0.1) == []
    assert time.monotonic() - started >= 0.09


def test_poll_respects_max_records(wlog: WriteLog) -> None:
    placed = wlog.append(keys(25))
    consumer = wlog.consumer({})
    sizes = []
    while got := consumer.poll(10, 0.01 if dense(wlog) else 0.5):
        sizes.append(len(got))
    assert sum(sizes) == 25
    # Kafka: a poll never splits a message, so one message bigger than max_records
    # comes whole in one poll
    largest = max(sum(1 for q, _ in placed if q == p) for p, _ in placed)
    assert max(sizes) <= (10 if dense(wlog) else max(10, largest))


def test_poll_of_zero_records_returns_at_once(wlog: WriteLog) -> None:
    wlog.append(keys(3))
    consumer = wlog.consumer({})
    assert consumer.poll(0, 5.0) == []
    if dense(wlog):
        assert len(consumer.poll(10, 1.0)) == 3
    else:  # over the network the messages of several partitions may come in two polls
        assert len(drain(consumer, max_records=10)) == 3


def test_append_async_future_gives_the_placement(wlog: WriteLog) -> None:
    fut = wlog.append_async(keys(3))
    placed = fut.result(timeout=5)
    assert len(placed) == 3
    expected = 3 if dense(wlog) else len({p for p, _ in placed})  # one message per partition
    assert sum(wlog.end_offsets().values()) == expected


def test_invalid_records_are_rejected_and_nothing_is_written(wlog: WriteLog) -> None:
    bad = [put(b"ok"), Mutation(1, OP_PUT, "not bytes", b"", 1, b"v")]  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        wlog.append(bad)
    assert sum(wlog.end_offsets().values()) == 0
    assert drain(wlog.consumer({}), idle_s=0.01) == []


def test_empty_append_is_a_no_op(wlog: WriteLog) -> None:
    assert wlog.append([]) == []
    assert sum(wlog.end_offsets().values()) == 0


def test_bad_positions_are_rejected(wlog: WriteLog) -> None:
    with pytest.raises(InvalidRequestError):
        wlog.consumer({P: 0})
    with pytest.raises(InvalidRequestError):
        wlog.consumer({0: -1})
    with pytest.raises(InvalidRequestError):
        wlog.release({-1: 0})


def test_release_keeps_everything_at_or_after_positions(wlog: WriteLog) -> None:
    wlog.append(keys(30))
    ends = wlog.end_offsets()
    half = {p: end // 2 for p, end in ends.items()}
    wlog.release(half)
    entries = drain(wlog.consumer(half))
    if dense(wlog):
        assert len(entries) == sum(ends[p] - half[p] for p in range(P))
    else:  # Kafka's release deletes nothing; everything from half on is still there
        assert {(e.partition, e.offset) for e in entries} == {
            (p, o) for p in range(P) for o in range(half[p], ends[p])
        }
    wlog.release(ends)
    wlog.append(keys(5, prefix="after"))
    assert {e.record.pk for e in drain(wlog.consumer(ends))} == {
        f"after{i}".encode() for i in range(5)
    }


def test_consumer_below_a_released_offset_fails(tmp_path: Path) -> None:
    for log in (MemoryLog(P), LocalLog(tmp_path, P, segment_bytes=1)):
        with log:
            for _ in range(3):
                log.append(keys(20))
            log.release(log.end_offsets())
            with pytest.raises(CorruptionError, match="log starts at offset"):
                log.consumer({})


def test_after_close_every_method_is_unavailable(wlog: WriteLog) -> None:
    consumer = wlog.consumer({})
    wlog.close()
    wlog.close()  # idempotent
    for call in (
        lambda: wlog.append(keys(1)),
        lambda: wlog.append_async(keys(1)),
        wlog.end_offsets,
        lambda: wlog.end_offset(0),
        lambda: wlog.consumer({}),
        lambda: wlog.release({}),
        lambda: consumer.poll(1, 0.01),
    ):
        with pytest.raises(UnavailableError):
            call()


def test_close_wakes_a_waiting_consumer(wlog: WriteLog) -> None:
    consumer = wlog.consumer({})
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            consumer.poll(1, 10.0)
        except UnavailableError as exc:
            errors.append(exc)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.05)
    wlog.close()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1


def test_closed_consumer_is_unavailable(wlog: WriteLog) -> None:
    consumer = wlog.consumer({})
    consumer.close()
    with pytest.raises(UnavailableError):
        consumer.poll(1, 0.01)


def test_concurrent_appenders_and_a_live_consumer_see_every_record(wlog: WriteLog) -> None:
    consumer = wlog.consumer({})
    threads_n, per_thread = 4, 50

    def work(t: int) -> None:
        for i in range(per_thread):
            wlog.append([put(f"t{t}-{i}-{j}".encode()) for j in range(3)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    entries: list[LogEntry] = []
    while len(entries) < threads_n * per_thread * 3:
        entries.extend(consumer.poll(100, 5.0))
    for t in threads:
        t.join()
    check_order(entries, dense(wlog))
    assert len({e.record.pk for e in entries}) == threads_n * per_thread * 3
    assert consumer.poll(100, 0.05) == []
