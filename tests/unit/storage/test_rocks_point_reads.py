"""The point-read path reuses a tailing iterator per thread: it must never miss a write."""

from __future__ import annotations

import threading
from pathlib import Path

from mussel.model import OP_DELETE, OP_PUT, Cell, Mutation
from mussel.storage.rocksdb import RocksBackend
from mussel.storage.versions import Visibility
from tests.unit.storage.conftest import SMALL

T = 1
EPOCHS = {T: 0}


def put(pk: bytes, ts: int, value: bytes) -> Mutation:
    return Mutation(T, OP_PUT, pk, b"s", ts, value)


def test_a_reused_point_iterator_sees_every_later_write(tmp_path: Path) -> None:
    b = RocksBackend(tmp_path / "db", SMALL)
    try:
        assert b.get_latest(T, b"k", b"s", None) is None  # creates this thread's iterator
        b.apply([put(b"k", 1, b"one")], EPOCHS, {})
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 1, b"one")
        b.apply([put(b"k", 2, b"two")], EPOCHS, {})  # newer version
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 2, b"two")
        b.apply([put(b"k", 2, b"two again")], EPOCHS, {})  # same ts, later write
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 2, b"two again")
        b.sync()  # memtable flushed to an SST: the iterator must rebuild itself
        b.apply([put(b"k", 3, b"three")], EPOCHS, {})
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 3, b"three")
        b.db.compact_range(None, None)  # files replaced under the iterator
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 3, b"three")
        b.apply([Mutation(T, OP_DELETE, b"k", b"s", 4)], EPOCHS, {})
        assert b.get_latest(T, b"k", b"s", None) is None
        b.apply([put(b"k", 5, b"five")], EPOCHS, {})
        b.sync()
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 5, b"five")
        assert b.get_latest(T, b"k", b"s", expired_before_us=6) is None
    finally:
        b.close()


def test_point_reads_from_many_threads_see_writes_made_before_them(tmp_path: Path) -> None:
    b = RocksBackend(tmp_path / "db", SMALL)
    errors: list[str] = []
    try:
        for ts in range(1, 60):
            b.apply([put(b"k%d" % n, ts, b"v%d" % ts) for n in range(8)], EPOCHS, {})
            if ts % 20 == 0:
                b.sync()

            def check(n: int, ts: int = ts) -> None:
                cell = b.get_latest(T, b"k%d" % n, b"s", None)
                if cell is None or cell.ts != ts:
                    errors.append(f"thread {n} at ts {ts} read {cell}")

            threads = [threading.Thread(target=check, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert errors == []
    finally:
        b.close()


def test_close_releases_the_iterators_so_the_database_reopens(tmp_path: Path) -> None:
    b = RocksBackend(tmp_path / "db", SMALL)
    b.apply([put(b"k", 1, b"v")], EPOCHS, {})
    threads = [threading.Thread(target=b.get_latest, args=(T, b"k", b"s", None)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    b.get_latest(T, b"k", b"s", None)
    b.close()
    b = RocksBackend(tmp_path / "db", SMALL)  # the LOCK was released
    try:
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 1, b"v")
    finally:
        b.close()


def test_a_range_delete_compacted_under_the_iterator_never_hides_a_cell(tmp_path: Path) -> None:
    """A tailing iterator refuses the range tombstones it meets in files a compaction
    made ("Range tombstones unsupported with ForwardIterator"): its next seek came back
    empty, and a strong read after dropping another table and compacting answered
    "no such cell" for a cell just written."""
    b = RocksBackend(tmp_path / "db", SMALL)
    try:
        other = Mutation(2, OP_PUT, b"x", b"s", 1, b"other")
        b.apply([put(b"k", 1, b"one"), other], {T: 0, 2: 0}, {})
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 1, b"one")
        b.drop_table_data(2)  # a range tombstone over table 2
        b.apply([put(b"k", 2, b"two")], EPOCHS, {})
        b.compact(2, None, None)
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 2, b"two")
        b.apply([put(b"k", 3, b"three")], EPOCHS, {})
        b.compact(T, None, None)
        assert b.get_latest(T, b"k", b"s", None) == Cell(b"s", 3, b"three")
        assert b.get_latest(T, b"zz", b"s", None) is None  # past every key
    finally:
        b.close()


def test_a_range_deleted_version_stays_gone_until_compacted_across_flushes_and_restarts(
    tmp_path: Path,
) -> None:
    """The tailing iterator does not apply range deletes in files either: a flush
    did not end the need to check (a version a sweep deleted came back to point reads
    once the TTL was raised), only a compaction over it does."""
    b = RocksBackend(tmp_path / "db", SMALL)
    try:
        b.apply([put(b"q", ts, b"old") for ts in (1, 2, 3)], EPOCHS, {})
        b.sync()  # the versions in a file, as a sweep usually finds them
        b.apply([put(b"r", 9, b"live")], EPOCHS, {})
        assert b.get_latest(T, b"q", b"s", None) == Cell(b"s", 3, b"old")
        page = b.sweep_scan(T, Visibility(expired_before_us=5), None, None, 100, min_run=2)
        assert page.runs == [(0, 3)]
        assert b.sweep_delete(T, page.candidates, page.runs).ranges == 1
        assert b.get_latest(T, b"q", b"s", None) is None  # TTL raised: still gone
        b.sync()  # the range delete in a file of its own, over the versions' file
        assert b.get_latest(T, b"q", b"s", None) is None
    finally:
        b.close()
    b = RocksBackend(tmp_path / "db", SMALL)  # a restart remembers the table is pending
    try:
        assert b.get_latest(T, b"q", b"s", None) is None
        b.compact(T, None, b"q\x01")  # half of the table: still pending
        assert b.get_latest(T, b"q", b"s", None) is None
        b.compact(T, b"q\x01", None)  # all of it: the versions are gone from the files
        assert b.get_latest(T, b"q", b"s", None) is None
        assert b.get_latest(T, b"r", b"s", None) == Cell(b"s", 9, b"live")
        assert T not in b._ranged.tables  # point reads no longer check
    finally:
        b.close()
    b = RocksBackend(tmp_path / "db", SMALL)
    try:
        assert T not in b._ranged.tables  # the marker went with the compaction
        assert b.get_latest(T, b"q", b"s", None) is None
    finally:
        b.close()


def test_get_latest_many_answers_as_get_latest_does_key_by_key(tmp_path: Path) -> None:
    b = RocksBackend(tmp_path / "db", SMALL)
    try:
        b.apply(
            [
                put(b"a", 1, b"one"),
                put(b"a", 3, b"three"),
                put(b"z\x00y", 2, b"nul in the pk"),
                put(b"old", 1, b"expired at 2"),
                put(b"gone", 1, b"x"),
                Mutation(T, OP_DELETE, b"gone", b"s", 2),
                Mutation(T, OP_PUT, b"a", b"s\x00t", 5, b"nul in the sk"),
            ],
            EPOCHS,
            {},
        )
        keys = [
            (b"a", b"s"),
            (b"missing", b"s"),
            (b"z\x00y", b"s"),
            (b"old", b"s"),
            (b"gone", b"s"),
            (b"a", b"s\x00t"),
            (b"a", b"s"),  # twice, and backwards after the one before
            (b"z", b"s"),  # a prefix of a stored pk, not that pk
        ]
        for expired_before in (None, 2):
            one_by_one = [b.get_latest(T, pk, sk, expired_before) for pk, sk in keys]
            assert b.get_latest_many(T, keys, expired_before) == one_by_one
        assert b.get_latest_many(T, keys, None)[:3] == [
            Cell(b"s", 3, b"three"),
            None,
            Cell(b"s", 2, b"nul in the pk"),
        ]
        assert b.get_latest_many(T, keys, 2)[3] is None  # expired
        assert b.get_latest_many(T, keys, None)[4] is None  # deleted
        assert b.get_latest_many(T, [], None) == []
    finally:
        b.close()


def test_get_latest_many_reads_past_a_range_delete_compacted_under_the_iterator(
    tmp_path: Path,
) -> None:
    """The multi-get path meets the tailing iterator's error status as ``get_latest``
    does (see the test above) and answers the same."""
    b = RocksBackend(tmp_path / "db", SMALL)
    try:
        other = Mutation(2, OP_PUT, b"x", b"s", 1, b"other")
        b.apply([put(b"k", 1, b"one"), other], {T: 0, 2: 0}, {})
        keys = [(b"k", b"s"), (b"zz", b"s")]
        assert b.get_latest_many(T, keys, None) == [Cell(b"s", 1, b"one"), None]
        b.drop_table_data(2)  # a range tombstone over table 2
        b.apply([put(b"k", 2, b"two")], EPOCHS, {})
        b.compact(2, None, None)
        assert b.get_latest_many(T, keys, None) == [Cell(b"s", 2, b"two"), None]
        b.apply([put(b"k", 3, b"three")], EPOCHS, {})
        b.compact(T, None, None)
        assert b.get_latest_many(T, keys, None) == [Cell(b"s", 3, b"three"), None]
    finally:
        b.close()


def test_keys_with_nul_bytes_are_escaped_in_batches_with_and_without_them(
    tmp_path: Path,
) -> None:
    """The apply escapes pks and sks only when some key of the run holds a NUL: a batch
    without one, and a mixed one, must both read back cell by cell."""
    b = RocksBackend(tmp_path / "db", SMALL)
    keys = [(b"a", b""), (b"a", b"\x00"), (b"a\x00", b""), (b"a\x00b", b"s\x00"), (b"a\xff", b"")]
    try:
        b.apply([Mutation(T, OP_PUT, b"plain", b"s", 1, b"p")], EPOCHS, {})
        b.apply([Mutation(T, OP_PUT, pk, sk, 1, pk + b"|" + sk) for pk, sk in keys], EPOCHS, {})
        assert b.get_latest(T, b"plain", b"s", None) == Cell(b"s", 1, b"p")
        for pk, sk in keys:
            assert b.get_latest(T, pk, sk, None) == Cell(sk, 1, pk + b"|" + sk)
        assert b.get_latest(T, b"a\x00b", b"s", None) is None
        assert b.table_stats(T).approx_cells == len(keys) + 1
    finally:
        b.close()
