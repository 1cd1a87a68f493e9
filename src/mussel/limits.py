"""Size limits (SPEC §1, §5) and the checks that enforce them.

Units are in the names. A key or value over its limit is ``TooLargeError``
(413 ``too_large``); an empty primary key is ``InvalidRequestError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mussel.errors import InvalidRequestError, TooLargeError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_EXPIRE_INTERVAL_S",
    "MAX_MAX_VERSIONS",
    "TS_MAX",
    "TS_MIN",
    "Limits",
]

TS_MIN = -(2**63)
TS_MAX = 2**63 - 1
MAX_MAX_VERSIONS = 1000
MAX_EXPIRE_INTERVAL_S = 100 * 366 * 86400
"""Longest ``expire_interval_s`` of a table: 100 years (next-run times stay int64 µs)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-server limits. ``max_value_bytes`` is configurable (default 1 MiB)."""

    max_pk_bytes: int = 1024
    """Longest pk."""
    max_sk_bytes: int = 1024
    """Longest sk."""
    max_value_bytes: int = 1 << 20
    """Largest value."""
    max_batch_records: int = 10_000
    """Most records in one write request (413 past it)."""
    max_batch_bytes: int = 32 << 20
    """Largest write batch, keys and values counted (413 past it)."""
    max_versions_per_read: int = MAX_MAX_VERSIONS
    """Most versions per cell one read may ask for (``versions``)."""
    max_read_limit: int = 10_000
    """Largest page (``limit``) of a row read or scan."""
    max_multi_get_keys: int = 1_000
    """Most keys in one multi-get."""

    def check_pk(self, pk: bytes) -> None:
        if not pk:
            raise InvalidRequestError("pk must not be empty (1 to 1024 bytes)")
        if len(pk) > self.max_pk_bytes:
            raise TooLargeError(f"pk is {len(pk)} bytes; the limit is {self.max_pk_bytes} bytes")

    def check_sk(self, sk: bytes) -> None:
        if len(sk) > self.max_sk_bytes:
            raise TooLargeError(f"sk is {len(sk)} bytes; the limit is {self.max_sk_bytes} bytes")

    def check_value(self, value: bytes) -> None:
        if len(value) > self.max_value_bytes:
            raise TooLargeError(
                f"value is {len(value)} bytes; the limit is {self.max_value_bytes} bytes"
            )

    def check_batch(self, records: int, nbytes: int) -> None:
        if records > self.max_batch_records:
            raise TooLargeError(
                f"batch has {records} records; the limit is {self.max_batch_records}"
            )
        if nbytes > self.max_batch_bytes:
            raise TooLargeError(
                f"batch is {nbytes} bytes of keys and values; the limit is "
                f"{self.max_batch_bytes} bytes"
            )


DEFAULT_LIMITS = Limits()


def check_ts(ts: object, what: str = "ts") -> int:
    """Return ``ts`` if it is an int64 (microseconds since the epoch), else raise."""
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise InvalidRequestError(f"{what} must be an integer (microseconds since the epoch)")
    if not TS_MIN <= ts <= TS_MAX:
        raise InvalidRequestError(f"{what} must fit in a signed 64-bit integer")
    return ts
