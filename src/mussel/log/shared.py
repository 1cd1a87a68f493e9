"""``SharedState``: the owner's progress, published to follower processes in shared memory.

``mussel serve`` runs one *owner* process (the write log, the replayer, the primary
RocksDB) and *followers* (processes serving reads from RocksDB secondaries). They
share one small memory-mapped file, ``<data>/run/state``, of little-endian uint64
words::

    header    magic, partitions P, slots S, seq, catalog_version, owner_pid
    ends      P words: per partition, one past the last acknowledged log offset
    applied   P words: per partition, the owner's replayer position
    slot i    S times: seq, pid, heartbeat_ms, positions (P words)

The owner writes the header, ``ends`` and ``applied``; follower i writes slot i.
Every writer wraps its writes in a sequence lock (``seq`` odd while writing), so
a reader never sees a half-written set of values: it retries instead.

Contract: ``publish_ends`` is called after the log's fsync and before the writes
are acknowledged, so any read that starts after an acknowledgement sees an end
that covers it (this is what makes a follower's strong reads strong).
``publish_catalog`` is called with the stored catalog's version after each catalog
change is durable and before it is acknowledged (a follower that reads an older
version from its view knows the view is behind). ``heartbeat_ms`` is
``CLOCK_MONOTONIC`` (shared by every process).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from mussel.errors import UnavailableError

__all__ = ["FollowerSlot", "SharedState"]

_MAGIC = int.from_bytes(b"MUSLSTA1", "little")
_W = 8
_HEADER = 6  # words
_MAGIC_W, _PARTS_W, _SLOTS_W, _SEQ_W, _CATALOG_W, _PID_W = range(_HEADER)
_SLOT_HEADER = 3  # seq, pid, heartbeat_ms
_U64 = struct.Struct("<Q")

LIVE_AFTER_S = 2.0
"""A follower whose heartbeat is older than this is taken for dead."""


class FollowerSlot(NamedTuple):
    pid: int
    heartbeat_ms: int
    positions: tuple[int, ...]


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class SharedState:
    """One mapping of the state file. Create it in the owner, attach in followers."""

    def __init__(self, path: Path, mm: mmap.mmap, partitions: int, slots: int) -> None:
        self.path = path
        self._mm = mm
        self.partitions = partitions
        self.slots = slots
        self._ends_at = _HEADER * _W
        self._applied_at = self._ends_at + partitions * _W
        self._slots_at = self._applied_at + partitions * _W
        self._slot_words = _SLOT_HEADER + partitions
        self._vec = struct.Struct(f"<{partitions}Q")
        self._lock = threading.Lock()  # the owner's writer threads take turns

    @classmethod
    def create(cls, path: str | os.PathLike[str], partitions: int, slots: int) -> SharedState:
        """A fresh state file (replacing any old one), for the owner."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (_HEADER + 2 * partitions + slots * (_SLOT_HEADER + partitions)) * _W
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            words = [_MAGIC, partitions, slots, 0, 0, os.getpid()]
            f.write(struct.pack(f"<{len(words)}Q", *words))
            f.write(b"\0" * (size - len(words) * _W))
        os.replace(tmp, path)
        return cls._map(path)

    @classmethod
    def attach(cls, path: str | os.PathLike[str]) -> SharedState:
        """Map an existing state file (a follower)."""
        path = Path(path)
        try:
            return cls._map(path)
        except OSError as exc:
            raise UnavailableError(f"cannot map the owner's state at {path}: {exc}") from exc

    @classmethod
    def _map(cls, path: Path) -> SharedState:
        with open(path, "r+b") as f:
            mm = mmap.mmap(f.fileno(), 0)
        magic, partitions, slots = struct.unpack_from("<3Q", mm, 0)
        if magic != _MAGIC:
            mm.close()
            raise UnavailableError(f"{path} is not a Mussel state file")
        return cls(path, mm, partitions, slots)

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view is still held; the OS unmaps at exit
            self._mm.close()

    # -- owner side -----------------------------------------------------------

    def _write(self, at: int, data: bytes) -> None:
        """Write under the sequence lock; the caller holds ``_lock``."""
        mm = self._mm
        seq = _U64.unpack_from(mm, _SEQ_W * _W)[0]
        _U64.pack_into(mm, _SEQ_W * _W, seq + 1)
        mm[at : at + len(data)] = data
        _U64.pack_into(mm, _SEQ_W * _W, seq + 2)

    def publish_ends(self, ends: Sequence[int]) -> None:
        with self._lock:
            self._write(self._ends_at, self._vec.pack(*ends))

    def publish_applied(self, positions: Mapping[int, int]) -> None:
        """Merge ``positions`` into the published replayer positions."""
        with self._lock:
            current = list(self._vec.unpack_from(self._mm, self._applied_at))
            for p, off in positions.items():
                current[p] = off
            self._write(self._applied_at, self._vec.pack(*current))

    def publish_catalog(self, version: int) -> None:
        """Publish the version of the owner's stored catalog (never decreasing)."""
        with self._lock:
            self._write(_CATALOG_W * _W, _U64.pack(version))

    # -- readers --------------------------------------------------------------

    def _read(self, at: int, fmt: struct.Struct) -> tuple[int, ...]:
        mm = self._mm
        seq_at = _SEQ_W * _W
        while True:
            s1 = _U64.unpack_from(mm, seq_at)[0]
            if s1 & 1 == 0:
                values = fmt.unpack_from(mm, at)
                if _U64.unpack_from(mm, seq_at)[0] == s1:
                    return values
            time.sleep(0)

    def end(self, partition: int) -> int:
        return self._read(self._ends_at + partition * _W, _U64)[0]

    def ends(self) -> tuple[int, ...]:
        return self._read(self._ends_at, self._vec)

    def applied(self) -> tuple[int, ...]:
        return self._read(self._applied_at, self._vec)

    def catalog_version(self) -> int:
        return self._read(_CATALOG_W * _W, _U64)[0]

    @property
    def owner_pid(self) -> int:
        return self._read(_PID_W * _W, _U64)[0]

    # -- follower slots -------------------------------------------------------

    def _slot_at(self, slot: int) -> int:
        if not 0 <= slot < self.slots:
            raise IndexError(f"no follower slot {slot}")
        return self._slots_at + slot * self._slot_words * _W

    def publish_slot(self, slot: int, positions: Sequence[int] | None) -> None:
        """Follower ``slot`` is alive (now) and its view holds ``positions`` (None:
        unchanged). Only that follower writes its slot."""
        at = self._slot_at(slot)
        mm = self._mm
        seq = _U64.unpack_from(mm, at)[0]
        _U64.pack_into(mm, at, seq + 1)
        struct.pack_into("<2Q", mm, at + _W, os.getpid(), _now_ms())
        if positions is not None:
            mm[at + _SLOT_HEADER * _W : at + self._slot_words * _W] = self._vec.pack(*positions)
        _U64.pack_into(mm, at, seq + 2)

    def clear_slot(self, slot: int) -> None:
        """Follower ``slot`` left (called by the follower, or the owner once it died)."""
        at = self._slot_at(slot)
        mm = self._mm
        seq = _U64.unpack_from(mm, at)[0]
        _U64.pack_into(mm, at, seq + 1)
        mm[at + _W : at + self._slot_words * _W] = b"\0" * ((self._slot_words - 1) * _W)
        _U64.pack_into(mm, at, seq + 2)

    def slot(self, slot: int) -> FollowerSlot:
        at = self._slot_at(slot)
        mm = self._mm
        while True:
            s1 = _U64.unpack_from(mm, at)[0]
            if s1 & 1 == 0:
                pid, beat = struct.unpack_from("<2Q", mm, at + _W)
                positions = self._vec.unpack_from(mm, at + _SLOT_HEADER * _W)
                if _U64.unpack_from(mm, at)[0] == s1:
                    return FollowerSlot(pid, beat, positions)
            time.sleep(0)

    def live_followers(self) -> list[FollowerSlot]:
        oldest = _now_ms() - int(LIVE_AFTER_S * 1000)
        return [s for s in map(self.slot, range(self.slots)) if s.pid and s.heartbeat_ms >= oldest]

    def followers_reached(self, target: Mapping[int, int]) -> bool:
        """Whether every live follower's view holds ``target`` (partition -> position)."""
        for f in self.live_followers():
            if any(f.positions[p] < off for p, off in target.items()):
                return False
        return True
