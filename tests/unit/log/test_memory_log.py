"""MemoryLog specifics (the shared contract is in test_log_contract.py)."""

from __future__ import annotations

import pytest

from mussel.errors import CorruptionError, InvalidRequestError
from mussel.log.memory import MemoryLog
from tests.unit.log.test_log_contract import drain, keys, put


def test_append_async_is_complete_when_returned() -> None:
    with MemoryLog(2) as log:
        fut = log.append_async(keys(3))
        assert fut.done()
        assert len(fut.result()) == 3


def test_release_drops_single_records() -> None:
    with MemoryLog(1) as log:
        log.append(keys(10))
        log.release({0: 4})
        with pytest.raises(CorruptionError, match="log starts at offset 4 of partition 0"):
            log.consumer({0: 3})
        assert [e.offset for e in drain(log.consumer({0: 4}))] == list(range(4, 10))
        log.release({0: 100})  # past the end: drops what there is
        assert log.end_offsets() == {0: 10}
        assert [o for _, o in log.append([put(b"next")])] == [10]


def test_a_consumer_overtaken_by_release_fails() -> None:
    with MemoryLog(1) as log:
        log.append(keys(10))
        consumer = log.consumer({})
        assert len(consumer.poll(3, 0.01)) == 3
        log.release({0: 5})
        with pytest.raises(CorruptionError):
            consumer.poll(3, 0.01)


def test_small_polls_serve_every_partition_in_turn() -> None:
    with MemoryLog(4) as log:
        log.append(keys(200))
        consumer = log.consumer({})
        seen = {e.partition for _ in range(4) for e in consumer.poll(5, 0.01)}
        assert seen == {0, 1, 2, 3}


def test_non_mutations_are_rejected() -> None:
    with MemoryLog(2) as log:
        with pytest.raises(InvalidRequestError):
            log.append([put(b"ok"), "nope"])  # type: ignore[list-item]
        assert log.end_offsets() == {0: 0, 1: 0}


def test_partitions_must_be_positive() -> None:
    with pytest.raises(InvalidRequestError):
        MemoryLog(0)
