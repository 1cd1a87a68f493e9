"""LocalLog: durability, recovery of torn and corrupt files, segments, group commit."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from pathlib import Path

import pytest

from mussel.errors import CorruptionError, InvalidRequestError, UnavailableError
from mussel.log import format as fmt
from mussel.log import local
from mussel.log.base import LogEntry
from mussel.log.local import LocalLog, OsFileSystem, WritableFile
from mussel.model import Mutation
from tests.unit.log.test_log_contract import check_order, drain, keys, put

P = 4


class FaultyFs(OsFileSystem):
    """The real file system, with sync counting, a gate that holds syncs, and failures."""

    def __init__(self) -> None:
        self.syncs = 0
        self.waiting = 0  # syncs held at the gate
        self.fail_sync = False
        self.fail_write = False
        self.fail_open = False
        self.fail_remove: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()

    def remove(self, path: str) -> None:
        if os.path.basename(path) in self.fail_remove:
            raise OSError(errno.EACCES, "injected: cannot remove")
        super().remove(path)

    def open_append(self, path: str) -> WritableFile:
        if self.fail_open:
            raise OSError(errno.EMFILE, "injected: cannot open")
        return _FaultyFile(super().open_append(path), self)


class _FaultyFile:
    def __init__(self, inner: WritableFile, fs: FaultyFs) -> None:
        self._inner = inner
        self._fs = fs

    def write(self, data: bytes) -> None:
        if self._fs.fail_write:
            raise OSError(errno.ENOSPC, "injected: no space left")
        self._inner.write(data)

    def sync(self) -> None:
        self._fs.waiting += 1
        self._fs.gate.wait()
        self._fs.waiting -= 1
        self._fs.syncs += 1
        if self._fs.fail_sync:
            raise OSError(errno.EIO, "injected: fsync failed")
        self._inner.sync()

    def truncate(self, size: int) -> None:
        self._inner.truncate(size)

    def close(self) -> None:
        self._inner.close()


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []

    def __call__(self, reason: str, dropped: int) -> None:
        self.items.append((reason, dropped))


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


def records_by_offset(entries: list[LogEntry]) -> dict[tuple[int, int], Mutation]:
    return {(e.partition, e.offset): e.record for e in entries}


def write_log(directory: Path, batches: list[list[Mutation]], **kw: object) -> dict[int, int]:
    with LocalLog(directory, P, **kw) as log:  # type: ignore[arg-type]
        for b in batches:
            log.append(b)
        return log.end_offsets()


# ----------------------------------------------------------------- reopen, recovery


def test_reopen_keeps_offsets_and_records(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P) as log:
        placed: dict[tuple[int, int], Mutation] = {}
        for i in range(10):
            b = keys(9, prefix=f"{i}-")
            placed.update(zip(log.append(b), b, strict=True))
        ends = log.end_offsets()
    with LocalLog(tmp_path, P) as log:
        assert log.end_offsets() == ends
        entries = drain(log.consumer({}))
        check_order(entries)
        assert records_by_offset(entries) == placed
        more = log.append([put(b"k0", ts=99)])
        assert more == [(more[0][0], ends[more[0][0]])]


def test_consumer_returns_recovered_then_live_records_exactly_once(tmp_path: Path) -> None:
    old = [keys(10, prefix=f"old{i}-") for i in range(30)]
    write_log(tmp_path, old, segment_bytes=2048)
    with LocalLog(tmp_path, P, segment_bytes=2048, memory_records=25) as log:
        consumer = log.consumer({})
        first = consumer.poll(15, 1.0)  # from the files
        new = [keys(10, prefix=f"new{i}-") for i in range(30)]
        writer = threading.Thread(target=lambda: [log.append(b) for b in new])
        writer.start()
        entries = list(first)
        while len(entries) < 600:
            entries.extend(consumer.poll(37, 5.0))
        writer.join()
        entries.extend(drain(consumer))
    check_order(entries)
    assert len(entries) == 600
    assert {e.record for e in entries} == {r for b in old + new for r in b}


def test_consumer_that_fell_behind_the_memory_tail_reads_the_files(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P, segment_bytes=4096, memory_records=10) as log:
        consumer = log.consumer({})
        log.append(keys(5, prefix="a"))
        assert len(consumer.poll(100, 1.0)) == 5  # now reading from memory
        for i in range(40):
            log.append(keys(5, prefix=f"b{i}-"))  # the memory tail keeps only the last 10
        entries = drain(consumer, max_records=7)
    check_order(entries)
    assert len(entries) == 200


def test_consumer_never_returns_a_record_before_it_is_fsynced(tmp_path: Path) -> None:
    fs = FaultyFs()
    with LocalLog(tmp_path, P, fs=fs) as log:
        log.append([put(b"durable")])
        consumer = log.consumer({})
        assert [e.record.pk for e in consumer.poll(10, 1.0)] == [b"durable"]
        fs.gate.clear()
        fut = log.append_async([put(b"pending")])
        assert consumer.poll(10, 0.1) == []
        assert not fut.done()
        assert sum(log.end_offsets().values()) == 1
        assert sum(log.end_offset(p) for p in range(P)) == 1
        late = log.consumer({})  # a new consumer reading the files does not see it either
        assert [e.record.pk for e in drain(late, idle_s=0.05)] == [b"durable"]
        fs.gate.set()
        fut.result(timeout=5)
        assert [e.record.pk for e in consumer.poll(10, 5.0)] == [b"pending"]
        assert sum(log.end_offsets().values()) == 2
        assert sum(log.end_offset(p) for p in range(P)) == 2


def _frame_bounds(tmp_path: Path) -> tuple[bytes, int, dict[int, int], list[Mutation]]:
    """A log of two batches and then a last, one-record batch; its bytes, where the last
    frame starts, the end offsets before it, and the records before it."""
    first = [keys(3, prefix="a"), keys(3, prefix="b")]
    before = write_log(tmp_path / "src", first)
    size = segments(tmp_path / "src")[0].stat().st_size
    with LocalLog(tmp_path / "src", P) as log:
        log.append([put(b"last", value=b"x" * 20)])
    data = segments(tmp_path / "src")[0].read_bytes()
    return data, size, before, [r for b in first for r in b]


def _reopen_damaged(
    directory: Path, data: bytes, kept: list[Mutation], ends: dict[int, int]
) -> list[tuple[str, int]]:
    directory.mkdir()
    (directory / f"{1:020d}.log").write_bytes(data)
    reports = Reports()
    with LocalLog(directory, P, reporter=reports) as log:
        assert log.end_offsets() == ends
        assert {e.record for e in drain(log.consumer({}), idle_s=0.01)} == set(kept)
        ((p, o),) = log.append([put(b"after")])
        assert o == ends[p]
    with LocalLog(directory, P, reporter=(again := Reports())) as log:
        assert again.items == []
        assert sum(log.end_offsets().values()) == sum(ends.values()) + 1
    return reports.items


def test_truncated_trailing_frame_is_dropped_and_reported(tmp_path: Path) -> None:
    data, start, before, kept = _frame_bounds(tmp_path)
    for cut in range(start, len(data)):
        reports = _reopen_damaged(tmp_path / f"cut{cut}", data[:cut], kept, before)
        if cut == start:
            assert reports == []
        else:
            assert len(reports) == 1
            assert reports[0][1] == cut - start
            assert "truncated" in reports[0][0]


def test_flipped_byte_in_last_frame_is_truncated_and_reported(tmp_path: Path) -> None:
    data, start, before, kept = _frame_bounds(tmp_path)
    for i in range(start, len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x40
        reports = _reopen_damaged(tmp_path / f"flip{i}", bytes(damaged), kept, before)
        assert len(reports) == 1
        assert reports[0][1] == len(data) - start


@pytest.mark.parametrize("garbage", [b"\x00" * 100, b"\xff" * 7, os.urandom(64)])
def test_garbage_after_the_last_frame_is_truncated_and_reported(
    tmp_path: Path, garbage: bytes
) -> None:
    data, _, _, kept = _frame_bounds(tmp_path)
    with LocalLog(tmp_path / "src", P) as log:
        ends = log.end_offsets()
    kept = [*kept, put(b"last", value=b"x" * 20)]
    reports = _reopen_damaged(tmp_path / "g", data + garbage, kept, ends)
    assert [dropped for _, dropped in reports] == [len(garbage)]


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (fmt.encode_frame(fmt.FRAME_BATCH, b"\xc1not msgpack"), "undecodable batch"),
        (
            fmt.encode_frame(
                fmt.FRAME_BATCH,
                fmt.encode_batch([0], [10**6], fmt.encode_records([put(b"gap")])),
            ),
            "out of sequence",
        ),
        (
            fmt.encode_frame(
                fmt.FRAME_BATCH, fmt.encode_batch([P], [0], fmt.encode_records([put(b"p")]))
            ),
            "out of sequence",
        ),
        (
            fmt.encode_frame(fmt.FRAME_SEGMENT_HEADER, fmt.encode_segment_header(P, 1, [0] * P)),
            "unexpected frame type",
        ),
    ],
)
def test_checksummed_but_invalid_last_frame_is_truncated_and_reported(
    tmp_path: Path, tail: bytes, reason: str
) -> None:
    data, _, _, kept = _frame_bounds(tmp_path)
    with LocalLog(tmp_path / "src", P) as log:
        ends = log.end_offsets()
    kept = [*kept, put(b"last", value=b"x" * 20)]
    reports = _reopen_damaged(tmp_path / "t", data + tail, kept, ends)
    assert len(reports) == 1
    assert reason in reports[0][0]
    assert reports[0][1] == len(tail)


def _rolled_log(directory: Path) -> tuple[dict[int, int], list[Path]]:
    ends = write_log(directory, [keys(10, prefix=f"{i}-") for i in range(20)], segment_bytes=1024)
    files = segments(directory)
    assert len(files) >= 4
    return ends, files


def test_flipped_byte_in_an_older_segment_raises_corruption(tmp_path: Path) -> None:
    _, files = _rolled_log(tmp_path)
    data = bytearray(files[1].read_bytes())
    data[len(data) // 2] ^= 0x01
    files[1].write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match=rf"{files[1].name} at byte \d+"):
        LocalLog(tmp_path, P, segment_bytes=1024)


def test_truncated_older_segment_raises_corruption(tmp_path: Path) -> None:
    _, files = _rolled_log(tmp_path)
    data = files[0].read_bytes()
    files[0].write_bytes(data[:-5])
    with pytest.raises(CorruptionError, match=files[0].name):
        LocalLog(tmp_path, P)


def test_missing_segment_raises_corruption(tmp_path: Path) -> None:
    _, files = _rolled_log(tmp_path)
    files[2].unlink()
    with pytest.raises(CorruptionError, match="missing"):
        LocalLog(tmp_path, P)


def test_a_failed_open_leaves_the_directory_unlocked(tmp_path: Path) -> None:
    _, files = _rolled_log(tmp_path)
    data = files[0].read_bytes()
    files[0].write_bytes(data[:-5])
    with pytest.raises(CorruptionError):
        LocalLog(tmp_path, P)
    files[0].write_bytes(data)
    LocalLog(tmp_path, P).close()


@pytest.mark.parametrize("header_bytes", [0, 5, 20])
def test_torn_header_of_a_new_last_segment_is_recreated(tmp_path: Path, header_bytes: int) -> None:
    ends, files = _rolled_log(tmp_path)
    torn = tmp_path / f"{len(files) + 1:020d}.log"
    torn.write_bytes(files[-1].read_bytes()[:header_bytes])
    reports = Reports()
    with LocalLog(tmp_path, P, reporter=reports) as log:
        assert [dropped for _, dropped in reports.items] == [header_bytes]
        assert log.end_offsets() == ends
        assert len(drain(log.consumer({}))) == 200
        log.append([put(b"x")])
    with LocalLog(tmp_path, P, reporter=(again := Reports())) as log:
        assert again.items == []
        assert sum(log.end_offsets().values()) == 201
        assert len(segments(tmp_path)) == len(files) + 1


def test_empty_first_segment_is_a_new_log(tmp_path: Path) -> None:
    (tmp_path / f"{1:020d}.log").write_bytes(b"")
    reports = Reports()
    with LocalLog(tmp_path, P, reporter=reports) as log:
        assert reports.items == [(reports.items[0][0], 0)]
        assert log.end_offsets() == dict.fromkeys(range(P), 0)
        log.append([put(b"x")])
    with LocalLog(tmp_path, P) as log:
        assert sum(log.end_offsets().values()) == 1


def test_partition_count_mismatch_on_reopen_is_rejected(tmp_path: Path) -> None:
    write_log(tmp_path, [keys(3)])
    with pytest.raises(InvalidRequestError, match=r"has 4 partitions.*partitions=8"):
        LocalLog(tmp_path, 8)
    LocalLog(tmp_path, P).close()


def test_a_directory_is_open_in_one_log_at_a_time(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P), pytest.raises(UnavailableError, match="locked"):
        LocalLog(tmp_path, P)
    LocalLog(tmp_path, P).close()


# ----------------------------------------------------------------- segments, release


def test_segments_roll_and_release_deletes_applied_ones(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P, segment_bytes=1024) as log:
        for i in range(20):
            log.append(keys(10, prefix=f"{i}-"))
        files = segments(tmp_path)
        assert len(files) >= 4
        assert log.stats.segments_created == len(files)
        entries = drain(log.consumer({}))
        assert len(entries) == 200
        ends = log.end_offsets()
        mid = {p: o // 2 for p, o in ends.items()}
        log.release(mid)
        kept = segments(tmp_path)
        assert files[0] not in kept
        assert files[-1] in kept
        assert records_by_offset(drain(log.consumer(mid))) == {
            k: v for k, v in records_by_offset(entries).items() if k[1] >= mid[k[0]]
        }
        log.release(ends)
        assert segments(tmp_path) == [files[-1]]  # never the active one
        assert log.end_offsets() == ends
    with LocalLog(tmp_path, P, segment_bytes=1024) as log:
        assert log.end_offsets() == ends
        with pytest.raises(CorruptionError, match="log starts at offset"):
            log.consumer({})
        consumer = log.consumer(ends)
        placed = log.append([put(b"new")])
        assert placed[0][1] == ends[placed[0][0]]
        assert [e.record.pk for e in consumer.poll(10, 5.0)] == [b"new"]


def test_release_below_a_segments_records_keeps_it(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P, segment_bytes=1024) as log:
        for i in range(20):
            log.append(keys(10, prefix=f"{i}-"))
        before = segments(tmp_path)
        log.release({})
        log.release({0: 1})
        assert segments(tmp_path) == before


def test_failed_release_keeps_the_segments_it_could_not_delete(tmp_path: Path) -> None:
    fs = FaultyFs()
    with LocalLog(tmp_path, P, segment_bytes=1, fs=fs) as log:
        placed = [log.append(keys(6, prefix=f"{i}-")) for i in range(4)]  # a segment each
        while len(log._segments) < 5:  # the flusher rolls after it acknowledged the group
            threading.Event().wait(0.001)
        ends = log.end_offsets()
        files = segments(tmp_path)
        fs.fail_remove = {files[1].name}
        with pytest.raises(UnavailableError, match="cannot delete"):
            log.release(ends)
        assert segments(tmp_path) == files[1:]
        after_first = dict.fromkeys(range(P), 0) | {p: o + 1 for p, o in placed[0]}
        assert len(drain(log.consumer(after_first), idle_s=0.01)) == 18
        fs.fail_remove = set()
        log.release(ends)
        assert segments(tmp_path) == files[-1:]
    with LocalLog(tmp_path, P) as log:
        assert log.end_offsets() == ends


def test_consumer_survives_release_of_the_segment_it_finished(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P, segment_bytes=1, memory_records=1) as log:
        for i in range(4):  # one batch per segment
            log.append(keys(6, prefix=f"{i}-"))
        consumer = log.consumer({})
        first = consumer.poll(6, 1.0)
        assert {e.record.pk for e in first} == {f"0-{i}".encode() for i in range(6)}
        applied = {e.partition: e.offset + 1 for e in first}
        log.release(applied)
        assert not (tmp_path / f"{1:020d}.log").exists()
        assert len(drain(consumer)) == 18


def test_consumer_whose_unread_records_are_released_fails(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P, segment_bytes=1, memory_records=1) as log:
        for i in range(4):
            log.append(keys(6, prefix=f"{i}-"))
        consumer = log.consumer({})
        log.release(log.end_offsets())
        with pytest.raises(CorruptionError, match="log starts at offset"):
            consumer.poll(10, 0.1)


# ------------------------------------------------------------ group commit, faults


def test_concurrent_appenders_share_fsyncs(tmp_path: Path) -> None:
    fs = FaultyFs()
    threads_n, appends = 8, 200
    results: dict[int, list[list[tuple[int, int]]]] = defaultdict(list)
    with LocalLog(tmp_path, P, fs=fs) as log:
        syncs_before, stats_before = fs.syncs, log.stats.fsyncs

        def work(t: int) -> None:
            for i in range(appends):
                results[t].append(log.append([put(f"{t}-{i}-{j}".encode()) for j in range(3)]))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        syncs = fs.syncs - syncs_before
        assert log.stats.fsyncs - stats_before == syncs
        assert log.stats.appends == threads_n * appends
        assert syncs < threads_n * appends / 2
        ends = log.end_offsets()
    by_partition: dict[int, list[int]] = defaultdict(list)
    for placements in results.values():
        last: dict[int, int] = {}
        for placed in placements:
            for p, o in placed:
                assert o > last.get(p, -1)  # one writer's appends keep their order
                last[p] = o
                by_partition[p].append(o)
        assert len(placements) == appends
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(ends[p]))


def _slow_append(log: LocalLog, fs: FaultyFs, held_s: float, pk: bytes) -> None:
    """Append from this thread while the fsync is held ``held_s``: the log's last group
    then took at least that long (what bounds its wait for returning writers)."""
    fs.gate.clear()
    opener = threading.Timer(held_s, fs.gate.set)
    opener.start()
    log.append([put(pk)])
    opener.join()


def test_group_commit_waits_for_a_writer_the_last_group_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers that each keep one append in flight share one fsync: the group after the
    one that completed A's append waits (briefly) for A to append again."""
    monkeypatch.setattr(local, "GATHER_MAX_S", 30.0)
    fs = FaultyFs()
    with LocalLog(tmp_path, P, fs=fs) as log:
        first_done, go = threading.Event(), threading.Event()

        def writer_a() -> None:  # alive throughout: thread idents are reused after exit
            _slow_append(log, fs, 0.4, b"a")  # the wait bound is now >= 0.2 s
            first_done.set()
            go.wait(10)
            log.append([put(b"a again")])

        a = threading.Thread(target=writer_a)
        a.start()
        assert first_done.wait(10)
        groups = log.stats.groups
        b = threading.Thread(target=log.append, args=([put(b"b")],))
        b.start()
        deadline = time.monotonic() + 10
        while log._awaited is None and time.monotonic() < deadline:
            time.sleep(0.001)
        assert log._awaited == {a.ident}  # B's group waits for A
        go.set()
        a.join(10)
        b.join(10)
        assert not a.is_alive() and not b.is_alive()
        assert log.stats.groups - groups == 1  # B and A in one group, one fsync
        assert log.stats.appends == 3


def test_a_lone_writer_never_waits_and_a_missing_writer_costs_at_most_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "GATHER_MAX_S", 30.0)
    fs = FaultyFs()
    with LocalLog(tmp_path, P, fs=fs) as log:
        _slow_append(log, fs, 2.0, b"first")  # this thread; the wait bound is now >= 1 s
        t0 = time.monotonic()
        log.append([put(b"again")])  # the released writer is back at once: no wait
        assert time.monotonic() - t0 < 0.5
        _slow_append(log, fs, 0.4, b"slow")  # the bound is now >= 0.2 s
        # another thread's append waits for this one, which does not come back meanwhile
        t0 = time.monotonic()
        other = threading.Thread(target=log.append, args=([put(b"other")],))
        other.start()
        other.join(10)
        assert not other.is_alive()
        assert time.monotonic() - t0 >= 0.15
        assert log._awaited is None
        log.append([put(b"after")])  # the flusher is back to normal
        assert log.stats.appends == 5


def test_fsync_failure_fails_the_waiting_appends_and_breaks_the_log(tmp_path: Path) -> None:
    fs = FaultyFs()
    with LocalLog(tmp_path, P, fs=fs) as log:
        log.append([put(b"ok")])
        consumer = log.consumer({})
        assert len(consumer.poll(10, 1.0)) == 1
        fs.gate.clear()
        futures: list[Future[list[tuple[int, int]]]] = [log.append_async([put(b"first")])]
        while fs.waiting == 0:  # wait until the flusher is in the sync of "first"
            threading.Event().wait(0.001)
        futures += [log.append_async([put(f"queued{i}".encode())]) for i in range(5)]
        fs.fail_sync = True
        fs.gate.set()
        for fut in futures:
            with pytest.raises(UnavailableError, match="fsync"):
                fut.result(timeout=5)
        with pytest.raises(UnavailableError):
            log.append([put(b"later")])
        with pytest.raises(UnavailableError):
            log.append_async([put(b"later")])
        assert sum(log.end_offsets().values()) == 1
        assert consumer.poll(10, 0.05) == []
    fs.fail_sync = False
    with LocalLog(tmp_path, P) as log:  # reopening repairs: appends work again
        log.append([put(b"again")])


def test_fsync_failure_fails_the_blocked_appends(tmp_path: Path) -> None:
    fs = FaultyFs()
    errors: list[BaseException] = []

    def append(pk: bytes) -> None:
        try:
            log.append([put(pk)])
        except UnavailableError as exc:
            errors.append(exc)

    with LocalLog(tmp_path, P, fs=fs) as log:
        fs.gate.clear()
        threads = [threading.Thread(target=append, args=(b"first",))]
        threads[0].start()
        while fs.waiting == 0:  # the flusher is in the sync of "first"
            threading.Event().wait(0.001)
        threads += [threading.Thread(target=append, args=(b"q%d" % i,)) for i in range(4)]
        for th in threads[1:]:
            th.start()
        while len(log._queue) < 4:  # the others are queued behind it
            threading.Event().wait(0.001)
        fs.fail_sync = True
        fs.gate.set()
        for th in threads:
            th.join(5)
        assert len(errors) == 5
        assert all("fsync" in str(e) for e in errors)
        assert sum(log.end_offsets().values()) == 0


def test_a_failure_after_the_fsync_keeps_the_group_acknowledged(tmp_path: Path) -> None:
    """The roll after a group fails: the group was durable, so its append succeeds."""
    fs = FaultyFs()
    with LocalLog(tmp_path, P, fs=fs, segment_bytes=1) as log:
        fs.fail_open = True  # the next segment cannot be created
        ((p, o),) = log.append([put(b"durable")])
        with pytest.raises(UnavailableError, match="cannot open"):
            log.append([put(b"later")])
        assert log.end_offset(p) == o + 1
    fs.fail_open = False
    with LocalLog(tmp_path, P) as log:
        assert [e.record.pk for e in drain(log.consumer({}))] == [b"durable"]


def test_write_failure_fails_the_append(tmp_path: Path) -> None:
    fs = FaultyFs()
    with LocalLog(tmp_path, P, fs=fs) as log:
        fs.fail_write = True
        with pytest.raises(UnavailableError, match="no space"):
            log.append([put(b"x")])
        assert sum(log.end_offsets().values()) == 0


def test_close_drains_every_queued_append(tmp_path: Path) -> None:
    fs = FaultyFs()
    log = LocalLog(tmp_path, P, fs=fs)
    fs.gate.clear()
    futures = [log.append_async(keys(2, prefix=f"{i}-")) for i in range(50)]
    closer = threading.Thread(target=log.close)
    closer.start()
    fs.gate.set()
    closer.join(10)
    assert all(f.done() and f.exception() is None for f in futures)
    with LocalLog(tmp_path, P) as log:
        assert sum(log.end_offsets().values()) == 100


def test_an_append_in_flight_cannot_be_cancelled(tmp_path: Path) -> None:
    fs = FaultyFs()
    with LocalLog(tmp_path, P, fs=fs) as log:
        fs.gate.clear()
        fut = log.append_async([put(b"x")])
        assert not fut.cancel()
        fs.gate.set()
        assert len(fut.result(timeout=5)) == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Mutation(1, 0, b"pk", b"", 1, None), "value: NoneType"),  # type: ignore[arg-type]
        (Mutation(1, 0, b"pk", "sk", 1, b""), "sk: str"),  # type: ignore[arg-type]
        (Mutation(1, 0, b"pk", b"", True, b""), "ts: bool"),
        (Mutation(1, 0, b"pk", b"", 2**64, b""), "serialize ints"),
        ("not a mutation", r"records\[1\] is not a Mutation.*\(str\)"),
    ],
)
def test_records_that_would_not_decode_are_rejected(
    tmp_path: Path, bad: object, message: str
) -> None:
    with LocalLog(tmp_path, P) as log:
        with pytest.raises(InvalidRequestError, match=message):
            log.append([put(b"fine"), bad])  # type: ignore[list-item]
        with pytest.raises(InvalidRequestError, match=message):
            log.append_async([put(b"fine"), bad])  # type: ignore[list-item]
        assert sum(log.end_offsets().values()) == 0
        log.append([put(b"next")])
    with LocalLog(tmp_path, P) as log:  # nothing unreadable reached the file
        assert [e.record.pk for e in drain(log.consumer({}))] == [b"next"]


def test_a_reused_records_list_does_not_change_what_consumers_get(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P) as log:
        consumer = log.consumer({})
        batch = keys(3)
        log.append(batch)
        batch[:] = keys(3, prefix="changed")
        assert {e.record.pk for e in consumer.poll(10, 1.0)} == {b"k0", b"k1", b"k2"}


_CHILD = """
import sys
from mussel.log.local import LocalLog
from mussel.model import Mutation
log = LocalLog(sys.argv[1], 4)
i = 0
while True:
    placed = log.append([Mutation(1, 0, b"k%d-%d" % (i, j), b"", i, b"v" * 50) for j in range(3)])
    print(i, *(f"{p}:{o}" for p, o in placed), flush=True)
    i += 1
"""


def test_acknowledged_appends_survive_a_killed_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked: dict[tuple[int, int], bytes] = {}
    for line in proc.stdout:
        i, *placed = line.split()
        for j, po in enumerate(placed):
            p, o = po.split(":")
            acked[(int(p), int(o))] = f"k{i}-{j}".encode()
        if len(acked) >= 600:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with LocalLog(tmp_path, 4) as log:
        found = {(e.partition, e.offset): e.record.pk for e in drain(log.consumer({}))}
    assert acked.items() <= found.items()
