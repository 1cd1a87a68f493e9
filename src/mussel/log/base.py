"""The ``WriteLog`` protocol, shaped like a Kafka topic so that KafkaLog fits it later.

A log has ``partitions`` partitions, numbered 0..P-1. Each partition is an ordered
sequence of ``Mutation`` records with offsets 0, 1, 2, ... (per partition, dense,
never reused). A record's partition is :func:`partition_for` of its (table, pk),
so all writes to one row are in one partition, in acknowledgement order.

Contract of every implementation:

* ``append`` returns only when every record of the call is durable (LocalLog:
  written and fsync'd; Kafka: acknowledged by all in-sync replicas). Records of one
  call are stored atomically: after a crash either all of them are in the log or
  none is. Concurrent callers share one fsync (group commit).
* Offsets returned by ``append`` are the offsets of the call's records, in order.
* ``end_offsets()[p]`` is one past the last acknowledged offset of partition p.
* A ``LogConsumer`` starts at the given positions (the next offset to read, per
  partition) and yields entries of each partition in offset order. Entries of
  different partitions may interleave in any order.
* ``release(positions)`` says that everything below ``positions[p]`` is applied
  durably elsewhere, so the log may delete it (segments, retention).
* After ``close()`` every method raises ``UnavailableError``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import NamedTuple, Protocol

from mussel.model import Mutation

__all__ = ["LogConsumer", "LogEntry", "WriteLog", "partition_for"]


def partition_for(table_id: int, pk: bytes, partitions: int) -> int:
    """The partition of a (table, pk): stable across processes, versions and machines."""
    return zlib.crc32(pk, table_id) % partitions


class LogEntry(NamedTuple):
    partition: int
    offset: int
    record: Mutation


class LogConsumer(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[LogEntry]:
        """Up to ``max_records`` entries; waits up to ``timeout_s`` when none is ready."""
        ...

    def keepalive(self) -> None:
        """Keep this consumer's place while its caller cannot poll for a while (its
        apply keeps failing): a consumer-group member serves its group; a consumer
        without a group has nothing to do."""
        ...

    def close(self) -> None: ...


class WriteLog(Protocol):
    @property
    def partitions(self) -> int: ...

    def append(self, records: Sequence[Mutation]) -> list[tuple[int, int]]:
        """Durably append ``records``; return (partition, offset) of each, in order."""
        ...

    def append_async(self, records: Sequence[Mutation]) -> Future[list[tuple[int, int]]]:
        """``append`` that returns at once; the future completes when durable."""
        ...

    def end_offsets(self) -> dict[int, int]:
        """For each partition, one past the offset of its last acknowledged record."""
        ...

    def end_offset(self, partition: int) -> int:
        """``end_offsets()[partition]``, cheaply (the strong-read path calls it per read)."""
        ...

    def consumer(self, positions: Mapping[int, int]) -> LogConsumer:
        """A consumer that reads every partition from ``positions`` (missing: from 0)."""
        ...

    def release(self, positions: Mapping[int, int]) -> None:
        """Everything below ``positions`` is applied durably; the log may drop it."""
        ...

    def close(self) -> None: ...
