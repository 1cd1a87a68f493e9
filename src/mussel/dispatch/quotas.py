"""Rate quotas per namespace (SPEC §5/§7: 429 ``rate_limited`` with ``Retry-After``),
one budget for all the server's processes (``RateBuckets``, embedded mode) or for
every dispatcher of a distributed deployment (``LeasedRateBuckets``).

A token bucket per (namespace, kind) where kind is ``read`` or ``write``: it holds up
to one second of the quota and refills continuously; a request takes one token or is
refused with the time until the next token as its ``Retry-After``. A write request
counts once, whatever its batch size (the quota is requests per second, as its name
``write_qps`` says).

The buckets live in one memory-mapped file (``<data>/run/buckets``) that every
process maps: ``SLOTS`` slots of (key hash, tokens, last refill time), found by open
addressing on the hash. A process takes a slot's byte range lock (``fcntl.lockf``)
while it refills and takes, so two processes never spend the same token. Time is
``CLOCK_MONOTONIC``, shared by every process on the machine. A namespace without a
rate quota costs nothing here. After a refusal a process refuses that bucket on its own,
without the lock, until the next token is due: no process can get a token before then
(they only spend tokens), so this admits exactly what the shared bucket would, and a
flood past the quota costs no lock per refused request.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import mmap
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mussel.errors import RateLimitedError

__all__ = ["LeasedRateBuckets", "RateBuckets", "Rates"]

SLOTS = 4096
_SLOT = struct.Struct("<Qdd")  # key hash (0: free), tokens, last refill (monotonic s)
_SIZE = SLOTS * _SLOT.size


class Rates(Protocol):
    """What the request pipeline needs of rate buckets."""

    def take(self, namespace: str, kind: str, per_second: float) -> None:
        """One request of ``kind`` in ``namespace``: admitted, or ``RateLimitedError``."""

    def close(self) -> None: ...


def _refused(namespace: str, kind: str, per_second: float, wait: float) -> RateLimitedError:
    return RateLimitedError(
        f"namespace {namespace!r} is over its {kind} quota of {per_second:g} "
        f"requests per second; retry in {wait:.2f} s",
        retry_after_s=max(1.0, math.ceil(wait)),
    )


def _key_hash(namespace: str, kind: str) -> int:
    raw = f"{kind}\0{namespace}".encode()
    return (zlib.crc32(raw) << 32 | zlib.adler32(raw)) or 1


class RateBuckets:
    """The shared buckets: ``create`` in the owner, ``attach`` in followers."""

    def __init__(self, path: Path, fd: int, mm: mmap.mmap) -> None:
        self.path = path
        self._fd = fd
        self._mm = mm
        # (namespace, kind) -> (the quota it was refused under, next token due)
        self._refused: dict[tuple[str, str], tuple[float, float]] = {}

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> RateBuckets:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(b"\0" * _SIZE)
        os.replace(tmp, path)
        return cls.attach(path)

    @classmethod
    def attach(cls, path: str | os.PathLike[str]) -> RateBuckets:
        path = Path(path)
        fd = os.open(path, os.O_RDWR)
        return cls(path, fd, mmap.mmap(fd, _SIZE))

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view still held: the OS unmaps at exit
            self._mm.close()
        os.close(self._fd)

    def take(self, namespace: str, kind: str, per_second: float) -> None:
        """One request of ``kind`` in ``namespace``: admitted, or ``RateLimitedError``
        (always, for a quota of 0 requests per second)."""
        if per_second <= 0:
            raise RateLimitedError(
                f"namespace {namespace!r} has a {kind} quota of 0 requests per second: "
                f"every {kind} is refused until an admin raises it",
                retry_after_s=60.0,
            )
        memo = self._refused.get((namespace, kind))
        if memo is not None and memo[0] == per_second:
            now = time.monotonic()
            if now < memo[1]:
                raise _refused(namespace, kind, per_second, memo[1] - now)
        h = _key_hash(namespace, kind)
        start = h % SLOTS
        for probe in range(SLOTS):
            slot = (start + probe) % SLOTS
            at = slot * _SLOT.size
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT.size, at)
            try:
                key, tokens, last = _SLOT.unpack_from(self._mm, at)
                if key not in (0, h):
                    continue  # another bucket's slot: probe on
                now = time.monotonic()
                if key == 0:  # a new bucket starts full
                    tokens, last = per_second, now
                tokens = min(per_second, tokens + (now - last) * per_second)
                if tokens >= 1.0:
                    _SLOT.pack_into(self._mm, at, h, tokens - 1.0, now)
                    return
                _SLOT.pack_into(self._mm, at, h, tokens, now)
                wait = (1.0 - tokens) / per_second
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT.size, at)
            self._refused[namespace, kind] = (per_second, now + wait)
            raise _refused(namespace, kind, per_second, wait)
        raise RateLimitedError("too many rate-limited namespaces", retry_after_s=1.0)


TakeTokens = Callable[[str, float, float, int], tuple[int, float]]
"""``(key, per_second, burst, want) -> (granted, tokens left)`` on a shared bucket
(``SqlBackend.take_tokens``)."""


@dataclass
class _Lease:
    tokens: int = 0
    expires: float = 0.0
    refused_until: float = 0.0
    wait: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held across the database round trip: only this bucket's requests wait on it."""


class LeasedRateBuckets:
    """Rate buckets shared by every dispatcher of a distributed deployment.

    Each bucket lives in the database (``take_tokens``: refilled by the database's
    clock, so processes on different machines agree). A process leases a few tokens
    at a time, ``lease_s`` worth of the rate (at least one), and spends them locally
    for at most ``lease_ttl_s`` (unspent ones lapse: a lease never admits more than the
    bucket granted). After a refusal it refuses locally until the next token is due
    (at most ``lease_ttl_s``), so a flood past the quota costs the database about one
    statement per ``lease_ttl_s`` per process, not one per request. Every dispatcher
    together admits at most the quota plus one lease per process.
    """

    def __init__(
        self, take_tokens: TakeTokens, *, lease_s: float = 0.05, lease_ttl_s: float = 0.25
    ) -> None:
        self._take_tokens = take_tokens
        self._lease_s = lease_s
        self._lease_ttl_s = lease_ttl_s
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._lock = threading.Lock()

    def take(self, namespace: str, kind: str, per_second: float) -> None:
        """One request of ``kind`` in ``namespace``: admitted, or ``RateLimitedError``
        (``UnavailableError`` when the database cannot be asked)."""
        with self._lock:
            lease = self._leases.setdefault((namespace, kind), _Lease())
        with lease.lock:
            now = time.monotonic()
            if lease.tokens > 0 and now < lease.expires:
                lease.tokens -= 1
                return
            if now < lease.refused_until:
                raise _refused(namespace, kind, per_second, lease.refused_until - now)
            want = max(1, int(per_second * self._lease_s))
            granted, left = self._take_tokens(f"{kind}/{namespace}", per_second, per_second, want)
            if granted > 0:
                lease.tokens, lease.expires = granted - 1, now + self._lease_ttl_s
                return
            wait = max(0.0, (1.0 - left) / per_second)
            lease.tokens = 0
            lease.refused_until = now + min(wait, self._lease_ttl_s)
        raise _refused(namespace, kind, per_second, wait)

    def close(self) -> None:
        """Nothing to release (the buckets are the database's)."""
