"""The point-read path reuses a tailing iterator per thread: it must never miss a write."""

from __future__ import annotations

import threading
from pathlib import Path

from mussel.model import OP_DELETE, OP_PUT, Cell, Mutation
from mussel.storage.rocksdb import RocksBackend
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
