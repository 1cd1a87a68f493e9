"""``PublishedLog``: the write log as a follower process sees it — its ends, read-only.

A follower serves reads; the owner process appends and replays. The follower
needs only what a strong read needs from the log: the acknowledged end of each
partition, which the owner publishes in ``SharedState`` before acknowledging.
Appending, consuming and releasing are the owner's and raise here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import NoReturn

from mussel.errors import InvalidRequestError, UnavailableError
from mussel.log.base import LogConsumer
from mussel.log.shared import SharedState
from mussel.model import Mutation

__all__ = ["PublishedLog"]


class PublishedLog:
    """A read-only ``WriteLog`` view of the owner's log."""

    def __init__(self, state: SharedState) -> None:
        self._state = state
        self._closed = False

    @property
    def partitions(self) -> int:
        return self._state.partitions

    def _owner_only(self, what: str) -> NoReturn:
        raise UnavailableError(f"{what} is done by the owner process, not by a follower")

    def append(self, records: Sequence[Mutation]) -> list[tuple[int, int]]:
        self._owner_only("appending to the write log")

    def append_async(self, records: Sequence[Mutation]) -> Future[list[tuple[int, int]]]:
        self._owner_only("appending to the write log")

    def end_offsets(self) -> dict[int, int]:
        self._check_open()
        return dict(enumerate(self._state.ends()))

    def end_offset(self, partition: int) -> int:
        self._check_open()
        if not 0 <= partition < self._state.partitions:
            raise InvalidRequestError(f"no partition {partition}")
        return self._state.end(partition)

    def consumer(self, positions: Mapping[int, int]) -> LogConsumer:
        self._owner_only("consuming the write log")

    def release(self, positions: Mapping[int, int]) -> None:
        self._owner_only("releasing the write log")

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the write log view is closed")
