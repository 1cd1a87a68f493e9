"""``apply(..., expect=)`` (fencing replayers) and ``meta_write(..., expect=)``
(compare-and-set), on every backend; concurrency on the SQL backend, where two
processes share one database."""

from __future__ import annotations

import threading

import pytest

from mussel.errors import ConflictError, FencedError
from mussel.model import OP_PUT, Cell, Mutation
from mussel.storage.base import Backend, RowQuery
from mussel.storage.sql import SqlBackend
from mussel.storage.versions import Visibility

T = 1
EPOCHS = {T: 0}


def put(pk: bytes, ts: int, value: bytes) -> Mutation:
    return Mutation(T, OP_PUT, pk, b"", ts, value)


def cells(b: Backend, pk: bytes) -> list[Cell]:
    return b.read_row(T, Visibility(), pk, RowQuery())[0]


def test_apply_with_expect_applies_when_positions_match(backend: Backend) -> None:
    backend.apply([put(b"a", 1, b"x")], EPOCHS, {0: 5, 1: 3}, expect={0: 0, 1: 0})
    backend.apply([put(b"a", 2, b"y")], EPOCHS, {0: 9}, expect={0: 5})
    assert backend.applied_positions() == {0: 9, 1: 3}
    assert cells(backend, b"a") == [Cell(b"", 2, b"y")]
    # a gap (stored position below the batch's first offset) is not a fence
    backend.apply([put(b"a", 3, b"z")], EPOCHS, {0: 20}, expect={0: 15})
    assert backend.applied_positions()[0] == 20


def test_apply_is_fenced_when_another_replayer_went_further(backend: Backend) -> None:
    backend.apply([put(b"a", 1, b"x")], EPOCHS, {0: 10, 1: 4})
    with pytest.raises(FencedError) as info:
        backend.apply([put(b"a", 2, b"late")], EPOCHS, {0: 8, 1: 5}, expect={0: 7, 1: 4})
    assert isinstance(info.value, ConflictError)
    assert backend.applied_positions() == {0: 10, 1: 4}  # nothing applied
    assert cells(backend, b"a") == [Cell(b"", 1, b"x")]


def test_meta_compare_and_set(backend: Backend) -> None:
    k, other = b"\x00cat\x00k", b"\x00cat\x00other"
    backend.meta_write({k: b"1"}, expect={k: None})  # create if absent
    with pytest.raises(ConflictError):
        backend.meta_write({k: b"2", other: b"o"}, expect={k: None})  # not absent any more
    assert backend.meta_get(k) == b"1" and backend.meta_get(other) is None
    with pytest.raises(ConflictError):
        backend.meta_write({other: b"o"}, expect={k: b"0"})  # wrong value
    assert backend.meta_get(other) is None
    backend.meta_write({k: b"2", other: b"o"}, expect={k: b"1", other: None})
    assert backend.meta_get(k) == b"2" and backend.meta_get(other) == b"o"
    backend.meta_write({k: None}, expect={k: b"2"})  # delete under CAS
    assert backend.meta_get(k) is None
    backend.meta_write({k: b"3"})  # without expect: unconditional
    assert backend.meta_get(k) == b"3"


def test_sql_compare_and_set_is_atomic_across_instances(pg_url: str) -> None:
    """Four threads on two backend instances (as two dispatchers would be) increment
    one counter by compare-and-set: no increment is lost, none is doubled."""
    instances = [SqlBackend(pg_url, pool_size=2), SqlBackend(pg_url, pool_size=2)]
    key = b"\x00counter"
    successes = [0] * 4

    def worker(n: int) -> None:
        b = instances[n % 2]
        for _ in range(15):
            while True:
                cur = b.meta_get(key)
                nxt = str(int(cur or b"0") + 1).encode()
                try:
                    b.meta_write({key: nxt}, expect={key: cur})
                except ConflictError:
                    continue
                successes[n] += 1
                break

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert instances[0].meta_get(key) == b"60"
        assert sum(successes) == 60
    finally:
        for b in instances:
            b.close()


def test_sql_two_replayers_of_one_partition_one_is_fenced(pg_url: str) -> None:
    """Two instances race to apply the same partition from the same offset: exactly
    one batch applies; the other replayer is fenced."""
    a, b = SqlBackend(pg_url, pool_size=2), SqlBackend(pg_url, pool_size=2)
    outcomes: list[str] = []
    lock = threading.Lock()
    try:
        for round_ in range(10):
            first = round_ * 10
            outcomes.clear()

            def run(backend: SqlBackend, tag: bytes, first: int = first) -> None:
                try:
                    backend.apply(
                        [put(b"p", first, tag)], EPOCHS, {7: first + 10}, expect={7: first}
                    )
                    result = "applied"
                except FencedError:
                    result = "fenced"
                with lock:
                    outcomes.append(result)

            threads = [
                threading.Thread(target=run, args=(a, b"a")),
                threading.Thread(target=run, args=(b, b"b")),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # The loser either waited for the winner's lock and saw its position
            # (fenced), or both ran one after the other on an equal position: then the
            # second one is fenced too because the first moved the position past it.
            assert sorted(outcomes) == ["applied", "fenced"], outcomes
            assert a.applied_positions() == {7: first + 10}
    finally:
        a.close()
        b.close()
