"""The one exception tree of Mussel.

Every error a caller can see is a :class:`MusselError`. Each class carries the
``code`` and ``http_status`` of SPEC §5, so the HTTP layer needs one generic
handler and the CLI one generic printer::

    MusselError                      (500 internal)
    ├── InvalidRequestError          400 invalid_request
    │   └── InvalidCursorError       400 invalid_request
    ├── UnauthenticatedError         401 unauthenticated
    ├── ForbiddenError               403 forbidden
    ├── NotFoundError                404
    │   ├── NamespaceNotFoundError   404 namespace_not_found
    │   ├── TableNotFoundError       404 table_not_found
    │   ├── JobNotFoundError         404 job_not_found
    │   └── KeyNotFoundError         404 key_not_found
    ├── ConflictError                409 conflict
    │   └── FencedError              409 conflict          (a replayer lost its partition)
    ├── TooLargeError                413 too_large
    ├── RateLimitedError             429 rate_limited      (retry_after_s)
    ├── UnavailableError             503 unavailable       (retry_after_s)
    ├── QuotaExceededError           507 quota_exceeded
    └── CorruptionError              500 corruption        (data on disk is damaged)

Third-party errors never escape an adapter: each adapter maps them to one of
these (usually ``UnavailableError``) with the original chained as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "CorruptionError",
    "FencedError",
    "ForbiddenError",
    "InvalidCursorError",
    "InvalidRequestError",
    "JobNotFoundError",
    "KeyNotFoundError",
    "MusselError",
    "NamespaceNotFoundError",
    "NotFoundError",
    "QuotaExceededError",
    "RateLimitedError",
    "TableNotFoundError",
    "TooLargeError",
    "UnauthenticatedError",
    "UnavailableError",
    "error_for_code",
]


class MusselError(Exception):
    """Root of every Mussel error. ``str(err)`` is a sentence for a human."""

    code: str = "internal"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The SPEC §4 error envelope."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidRequestError(MusselError):
    """Malformed input: bad name, key, value, timestamp, option or body."""

    code = "invalid_request"
    http_status = 400


class InvalidCursorError(InvalidRequestError):
    """A pagination cursor that this server did not produce (or for another query)."""


class UnauthenticatedError(MusselError):
    code = "unauthenticated"
    http_status = 401


class ForbiddenError(MusselError):
    code = "forbidden"
    http_status = 403


class NotFoundError(MusselError):
    code = "not_found"
    http_status = 404


class NamespaceNotFoundError(NotFoundError):
    code = "namespace_not_found"


class TableNotFoundError(NotFoundError):
    code = "table_not_found"


class JobNotFoundError(NotFoundError):
    code = "job_not_found"


class KeyNotFoundError(NotFoundError):
    code = "key_not_found"


class ConflictError(MusselError):
    """The request contradicts the current state (e.g. dropping a namespace with tables)."""

    code = "conflict"
    http_status = 409


class FencedError(ConflictError):
    """A replayer's apply was refused: another replayer already applied past the first
    offset of this batch in one of its partitions (after a Kafka consumer-group
    rebalance moved the partition). Nothing of the batch was applied; the replayer
    must stop applying that partition and re-read its positions."""


class TooLargeError(MusselError):
    """A key, value, batch or body over its limit."""

    code = "too_large"
    http_status = 413


class _RetryableError(MusselError):
    """An error the caller may retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimitedError(_RetryableError):
    code = "rate_limited"
    http_status = 429


class UnavailableError(_RetryableError):
    """Overload, a log or backend that cannot be reached, a strong read that timed out."""

    code = "unavailable"
    http_status = 503


class QuotaExceededError(MusselError):
    code = "quota_exceeded"
    http_status = 507


class CorruptionError(MusselError):
    """Stored data failed a checksum or could not be decoded; never retried silently."""

    code = "corruption"
    http_status = 500


_BY_CODE: dict[str, type[MusselError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        UnauthenticatedError,
        ForbiddenError,
        NamespaceNotFoundError,
        TableNotFoundError,
        JobNotFoundError,
        KeyNotFoundError,
        ConflictError,
        TooLargeError,
        RateLimitedError,
        UnavailableError,
        QuotaExceededError,
        CorruptionError,
    )
}


def error_for_code(code: str) -> type[MusselError]:
    """The error class for a SPEC §5 code (``MusselError`` for unknown codes)."""
    return _BY_CODE.get(code, MusselError)
