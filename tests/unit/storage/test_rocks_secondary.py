"""A secondary ``RocksBackend`` (follower processes) and ``reopen_secondary``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mussel.model import OP_PUT, Cell, Mutation
from mussel.storage.rocksdb import RocksBackend
from tests.unit.storage.conftest import SMALL

T = 1


def put(pk: bytes, ts: int, value: bytes) -> Mutation:
    return Mutation(T, OP_PUT, pk, b"s", ts, value)


def test_a_reopened_secondary_reads_what_the_primary_flushed(tmp_path: Path) -> None:
    primary = RocksBackend(tmp_path / "db", replace(SMALL, wal=True))
    base = tmp_path / "run" / "secondary-0"
    secondary = RocksBackend(tmp_path / "db", replace(SMALL, secondary_path=str(base)))
    try:
        primary.apply([put(b"k", 1, b"one")], {T: 0}, {0: 1})
        secondary.catch_up()
        assert secondary.get_latest(T, b"k", b"s", None) == Cell(b"s", 1, b"one")
        primary.apply([put(b"k", 2, b"two")], {T: 0}, {0: 2})
        primary.sync()  # flushed before the secondary read the rest of the WAL
        secondary.catch_up()
        it = secondary.db.iter()  # a read in flight keeps the old instance
        it.seek_to_first()
        for n in range(1, 4):
            secondary.reopen_secondary()
            assert secondary.reopens == n
            assert secondary.get_latest(T, b"k", b"s", None) == Cell(b"s", 2, b"two")
            assert secondary.applied_positions() == {0: 2}
        assert it.valid()
        # the directories of all but the last two instances are gone
        assert sorted(p.name for p in base.parent.iterdir()) == [
            "secondary-0.r2",
            "secondary-0.r3",
        ]
    finally:
        secondary.close()
    again = RocksBackend(tmp_path / "db", replace(SMALL, secondary_path=str(base)))
    try:  # a new process: its predecessor's reopen directories are removed
        assert sorted(p.name for p in base.parent.iterdir()) == ["secondary-0"]
        assert again.get_latest(T, b"k", b"s", None) == Cell(b"s", 2, b"two")
    finally:
        again.close()
        primary.close()
