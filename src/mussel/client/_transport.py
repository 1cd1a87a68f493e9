"""What ``Client`` and ``AsyncClient`` share: requests, answers, errors and retries.

A client method is three steps. ``Api`` *builds* a :class:`Call` (method, path, query,
body, and whether sending it twice is safe); the client *sends* it, retrying as
:class:`RetryPolicy` allows (the only step that differs between sync and async); ``Api``
*reads* the answer into a typed value, or :func:`error_from_response` turns it into
the ``MusselError`` of its SPEC §5 code.

Keys and values on the wire:

- bodies: msgpack ``bin`` by default; with ``msgpack=False``, JSON with the query
  parameter ``encoding=base64`` (msgspec writes and reads ``bytes`` as standard
  base64), so any byte string survives either way;
- split points of range partitioning travel like keys (table calls carry
  ``encoding=base64`` too);
- the pk in a row path and keys in query strings (row and scan reads): always
  base64url without padding, with ``encoding=base64``, so no byte is lost to
  percent-decoding on the server.

Third-party errors stop here: ``map_transport_errors`` turns every ``httpx``
transport error into ``UnavailableError`` with the original as ``__cause__``.
"""

from __future__ import annotations

import base64
import email.utils
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from msgspec import UNSET, UnsetType

from mussel.client._models import ErrorReply
from mussel.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    MusselError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    TooLargeError,
    UnauthenticatedError,
    UnavailableError,
    error_for_code,
)
from mussel.model import Delete, Partitioning, Put, Quotas, RowPage

__all__ = [
    "Ack",
    "Api",
    "Call",
    "Key",
    "MultiGetReply",
    "RetryPolicy",
    "error_from_response",
    "map_transport_errors",
    "retry_after_s",
    "table_options",
]

T = TypeVar("T")

Key = bytes | str
"""A key or value: bytes as they are, ``str`` encoded as UTF-8."""

Ack = Literal["durable", "applied"]

MSGPACK = "application/msgpack"
JSON = "application/json"
USER_AGENT = "mussel-client/0.1"

_B64 = {"encoding": "base64"}

# An answer without the SPEC envelope (a proxy, an old server): the class by status.
_BY_STATUS: dict[int, type[MusselError]] = {
    400: InvalidRequestError,
    401: UnauthenticatedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    429: RateLimitedError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
    507: QuotaExceededError,
}


class MultiGetReply(msgspec.Struct):
    results: list[RowPage]


class _Record(msgspec.Struct, omit_defaults=True):
    pk: bytes
    op: Literal["put", "delete"] = "put"
    sk: bytes = b""
    value: bytes | None = None
    ts: int | None = None


class _GetKey(msgspec.Struct, omit_defaults=True):
    pk: bytes
    sk: bytes | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One request. ``idempotent``: sending it twice has the effect of sending it once."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    idempotent: bool = False


# -- keys -----------------------------------------------------------------------


def key_bytes(key: object, what: str) -> bytes:
    """``bytes`` as they are, ``str`` as UTF-8 (as the embedded API does)."""
    if type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise InvalidRequestError(f"{what} must be bytes or a string, not {type(key).__name__}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(name: str) -> str:
    return quote(name, safe="")


def _ns_path(namespace: str) -> str:
    return f"/v1/namespaces/{_segment(namespace)}"


def _table_path(namespace: str, table: str) -> str:
    return f"{_ns_path(namespace)}/tables/{_segment(table)}"


def _read_params(
    keys: Mapping[str, Key | None],
    min_ts: int | None,
    max_ts: int | None,
    versions: int | None,
    limit: int | None,
    cursor: str | None,
    consistency: str | None,
) -> dict[str, str]:
    params = dict(_B64)
    for name, key in keys.items():
        if key is not None:
            params[name] = _b64url(key_bytes(key, name))
    for name, number in (
        ("min_ts", min_ts),
        ("max_ts", max_ts),
        ("versions", versions),
        ("limit", limit),
    ):
        if number is not None:
            params[name] = str(int(number))
    if cursor is not None:
        params["cursor"] = cursor
    if consistency is not None:
        params["consistency"] = consistency
    return params


# -- requests and answers ---------------------------------------------------------


class Api:
    """Builds the calls of SPEC §4 and reads their answers, in msgpack or JSON."""

    __slots__ = ("_encode", "msgpack")

    def __init__(self, msgpack: bool) -> None:
        self.msgpack = msgpack
        self._encode = msgspec.msgpack.encode if msgpack else msgspec.json.encode

    def headers(self, token: str | None) -> dict[str, str]:
        headers = {"accept": MSGPACK if self.msgpack else JSON, "user-agent": USER_AGENT}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return headers

    def body(self, call: Call) -> tuple[bytes | None, dict[str, str]]:
        """The encoded body of ``call`` and its Content-Type header (none without a body)."""
        if call.body is None:
            return None, {}
        return self._encode(call.body), {"content-type": MSGPACK if self.msgpack else JSON}

    def decode(self, resp: httpx.Response, typ: type[T]) -> T:
        """A 2xx answer as ``typ``, in whichever format the server chose."""
        return _decode(resp, typ)

    # -- namespaces and tables --

    def put_namespace(
        self, name: str, consistency: str | None, quotas: Quotas | Mapping[str, int | None] | None
    ) -> Call:
        body: dict[str, Any] = {}
        if consistency is not None:
            body["consistency"] = consistency
        if isinstance(quotas, Quotas):
            body["quotas"] = msgspec.structs.asdict(quotas)
        elif quotas is not None:
            body["quotas"] = dict(quotas)
        return Call("PUT", _ns_path(name), body=body or None, idempotent=True)

    def namespace(self, name: str) -> Call:
        return Call("GET", _ns_path(name), idempotent=True)

    def namespaces(self) -> Call:
        return Call("GET", "/v1/namespaces", idempotent=True)

    def drop_namespace(self, name: str) -> Call:
        return Call("DELETE", _ns_path(name), idempotent=True)

    def put_table(self, namespace: str, name: str, options: Mapping[str, Any]) -> Call:
        body = dict(options)
        if "partitioning" in body:
            body["partitioning"] = self._partitioning(body["partitioning"])
        path = _table_path(namespace, name)
        return Call("PUT", path, dict(_B64), body or None, idempotent=True)

    @staticmethod
    def _partitioning(raw: object) -> object:
        """Split points as bytes: msgpack ``bin``, or base64 in JSON (``encoding=base64``)."""
        if isinstance(raw, Partitioning):
            if raw.kind == "hash":
                return {"kind": "hash", "shards": raw.shards}
            raw = {"kind": "range", "split_points": raw.split_points or []}
        if not isinstance(raw, Mapping):
            return raw  # the server explains what it expects
        out = dict(raw)
        points = out.get("split_points")
        if isinstance(points, list | tuple):
            out["split_points"] = [key_bytes(p, "split point") for p in points]
        return out

    def table(self, namespace: str, name: str) -> Call:
        return Call("GET", _table_path(namespace, name), dict(_B64), idempotent=True)

    def tables(self, namespace: str) -> Call:
        return Call("GET", f"{_ns_path(namespace)}/tables", dict(_B64), idempotent=True)

    def hot_keys(self, namespace: str, name: str, limit: int) -> Call:
        params = {**_B64, "limit": str(limit)}
        return Call("GET", f"{_table_path(namespace, name)}/hotkeys", params, idempotent=True)

    def create_token(self, scopes: Sequence[str], name: str) -> Call:
        return Call("POST", "/v1/tokens", body={"scopes": list(scopes), "name": name})

    def tokens(self) -> Call:
        return Call("GET", "/v1/tokens", idempotent=True)

    def revoke_token(self, token_id: str) -> Call:
        return Call("DELETE", f"/v1/tokens/{_segment(token_id)}", idempotent=True)

    def backup(self, path: str) -> Call:
        return Call("POST", "/v1/admin/backup", body={"path": path})

    def expire(self, namespace: str, name: str) -> Call:
        # idempotent: a second request while a run is queued or running adds none
        return Call("POST", f"{_table_path(namespace, name)}/expire", idempotent=True)

    def drop_table(self, namespace: str, name: str) -> Call:
        return Call("DELETE", _table_path(namespace, name), idempotent=True)

    # -- data --

    def write(self, namespace: str, table: str, records: Sequence[Put | Delete], ack: Ack) -> Call:
        """A write batch; idempotent only if every record carries its own ts (SPEC §2)."""
        out: list[_Record] = []
        explicit_ts = True
        for i, r in enumerate(records):
            if isinstance(r, Put):
                rec = _Record(
                    pk=key_bytes(r.pk, f"records[{i}].pk"),
                    sk=key_bytes(r.sk, f"records[{i}].sk"),
                    value=key_bytes(r.value, f"records[{i}].value"),
                    ts=r.ts,
                )
            elif isinstance(r, Delete):
                rec = _Record(
                    pk=key_bytes(r.pk, f"records[{i}].pk"),
                    op="delete",
                    sk=key_bytes(r.sk, f"records[{i}].sk"),
                    ts=r.ts,
                )
            else:
                raise InvalidRequestError(
                    f"records[{i}] must be a Put or a Delete, not {type(r).__name__}"
                )
            explicit_ts = explicit_ts and r.ts is not None
            out.append(rec)
        body = {"records": out, "ack": ack}
        path = f"{_table_path(namespace, table)}/write"
        return Call("POST", path, dict(_B64), body, idempotent=explicit_ts and bool(out))

    def row(
        self,
        namespace: str,
        table: str,
        pk: Key,
        *,
        sk: Key | None = None,
        sk_prefix: Key | None = None,
        sk_start: Key | None = None,
        sk_end: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        consistency: str | None = None,
    ) -> Call:
        keys = {"sk": sk, "sk_prefix": sk_prefix, "sk_start": sk_start, "sk_end": sk_end}
        params = _read_params(keys, min_ts, max_ts, versions, limit, cursor, consistency)
        path = f"{_table_path(namespace, table)}/rows/{_b64url(key_bytes(pk, 'pk'))}"
        return Call("GET", path, params, idempotent=True)

    def multi_get(
        self,
        namespace: str,
        table: str,
        keys: Sequence[tuple[Key, Key | None]],
        versions: int,
        consistency: str | None,
    ) -> Call:
        wire_keys = [
            _GetKey(
                pk=key_bytes(pk, f"keys[{i}].pk"),
                sk=None if sk is None else key_bytes(sk, f"keys[{i}].sk"),
            )
            for i, (pk, sk) in enumerate(keys)
        ]
        body: dict[str, Any] = {"keys": wire_keys, "versions": versions}
        if consistency is not None:
            body["consistency"] = consistency
        path = f"{_table_path(namespace, table)}/get"
        return Call("POST", path, dict(_B64), body, idempotent=True)

    def scan(
        self,
        namespace: str,
        table: str,
        *,
        pk_start: Key | None = None,
        pk_end: Key | None = None,
        pk_prefix: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        consistency: str | None = None,
    ) -> Call:
        keys = {"pk_start": pk_start, "pk_end": pk_end, "pk_prefix": pk_prefix}
        params = _read_params(keys, min_ts, max_ts, versions, limit, cursor, consistency)
        return Call("GET", f"{_table_path(namespace, table)}/scan", params, idempotent=True)

    def health(self) -> Call:
        return Call("GET", "/healthz", idempotent=True)

    # -- bulk loads and jobs --

    def bulk_load(self, namespace: str, table: str, body: dict[str, Any]) -> Call:
        # idempotent only with a client-chosen id: the server then returns the same job
        return Call(
            "POST",
            f"{_table_path(namespace, table)}/bulkloads",
            body=body,
            idempotent="id" in body,
        )

    def job(self, job_id: str) -> Call:
        return Call("GET", f"/v1/jobs/{_segment(job_id)}", idempotent=True)

    def jobs(self, namespace: str | None) -> Call:
        params = {} if namespace is None else {"namespace": namespace}
        return Call("GET", "/v1/jobs", params, idempotent=True)

    def cancel_job(self, job_id: str) -> Call:
        return Call("POST", f"/v1/jobs/{_segment(job_id)}/cancel", idempotent=True)


def _is_msgpack(resp: httpx.Response) -> bool:
    content_type: str = resp.headers.get("content-type", "")
    return content_type.startswith(MSGPACK)


def _decode(resp: httpx.Response, typ: type[T]) -> T:
    try:
        if _is_msgpack(resp):
            return msgspec.msgpack.decode(resp.content, type=typ)
        return msgspec.json.decode(resp.content, type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MusselError(
            f"unexpected answer from the server ({resp.status_code} to "
            f"{resp.request.method} {resp.request.url.path}): {exc}"
        ) from exc


# -- errors ---------------------------------------------------------------------


def retry_after_s(resp: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if any."""
    raw = resp.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(resp: httpx.Response) -> MusselError:
    """The ``MusselError`` for a non-2xx answer, with its HTTP status.

    The class comes from the envelope's ``code`` (``error_for_code``); an answer
    without the SPEC envelope, or with a code this client does not know, gets the
    class of its status. ``code`` and ``http_status`` are the server's.
    """
    status = resp.status_code
    code, message = "", ""
    try:
        detail = (
            msgspec.msgpack.decode(resp.content, type=ErrorReply)
            if _is_msgpack(resp)
            else msgspec.json.decode(resp.content, type=ErrorReply)
        ).error
        code, message = detail.code, detail.message
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = resp.content[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {status} {resp.reason_phrase}" + (f": {text}" if text else "")
    cls = error_for_code(code) if code else MusselError
    if cls is MusselError:
        cls = _BY_STATUS.get(status, MusselError)
    err: MusselError
    if issubclass(cls, RateLimitedError | UnavailableError):
        err = cls(message, retry_after_s(resp) or 1.0)
    else:
        err = cls(message)
    err.http_status = status
    if code:
        err.code = code
    return err


@contextmanager
def map_transport_errors(call: Call) -> Iterator[None]:
    """Every transport failure (connect, timeout, protocol) as ``UnavailableError``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UnavailableError(
            f"{call.method} {call.path}: the server did not answer in time ({exc})"
        ) from exc
    except httpx.TransportError as exc:
        raise UnavailableError(
            f"{call.method} {call.path}: cannot reach the server ({type(exc).__name__}: {exc})"
        ) from exc
    except httpx.InvalidURL as exc:
        raise InvalidRequestError(f"invalid URL: {exc}") from exc


# -- retries --------------------------------------------------------------------


class RetryPolicy:
    """When to send a call again, and after how long.

    Only calls that are safe to repeat (``Call.idempotent``: reads, namespace and
    table PUT/DELETE, writes whose every record has an explicit ts) are retried,
    and only after ``UnavailableError`` (503, 502, 504, or no answer at all) or
    ``RateLimitedError`` (429). A call is re-sent at most ``retries`` times. The
    wait is exponential backoff with full jitter; a ``Retry-After`` header sets
    the floor, and one longer than ``max_wait_s`` is not waited for: the error is
    raised so the caller decides.

    A retry budget bounds what retries add to the load (Venice's lesson: retry storms
    flood servers that are already struggling): each call earns ``budget_ratio`` of a
    retry, up to ``budget_max`` saved; a retry spends one. With the budget spent the
    error is raised at once, so retries add at most ~``budget_ratio`` of the calls.
    """

    __slots__ = (
        "_lock",
        "_tokens",
        "backoff_s",
        "budget_max",
        "budget_ratio",
        "max_backoff_s",
        "max_wait_s",
        "rand",
        "retries",
    )

    def __init__(
        self,
        retries: int,
        *,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        max_wait_s: float = 30.0,
        budget_ratio: float = 0.1,
        budget_max: float = 10.0,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.budget_ratio = budget_ratio
        self.budget_max = budget_max
        self._tokens = budget_max
        self._lock = threading.Lock()
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_wait_s = max_wait_s
        self.rand = random.Random()

    def earn(self) -> None:
        """A call is being sent for the first time: the budget grows a little."""
        with self._lock:
            self._tokens = min(self.budget_max, self._tokens + self.budget_ratio)

    def delay(
        self, call: Call, failures: int, err: MusselError, retry_after: float | None
    ) -> float | None:
        """Seconds to wait before re-sending ``call`` after its ``failures``-th failure.

        None: do not retry, raise ``err``.
        """
        if not call.idempotent or failures > self.retries:
            return None
        if not isinstance(err, UnavailableError | RateLimitedError):
            return None
        with self._lock:
            if self._tokens < 1.0 - 1e-9:
                return None  # the retry budget is spent
            self._tokens -= 1.0
        cap = min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1))
        backoff = self.rand.uniform(0, cap)
        if retry_after is None:
            return backoff
        if retry_after > self.max_wait_s:
            return None
        return retry_after + self.rand.uniform(0, self.backoff_s)


def table_options(
    ttl_seconds: int | UnsetType | None,
    max_versions: int | UnsetType,
    consistency: str | UnsetType | None,
    partitioning: Partitioning | Mapping[str, Any] | UnsetType,
    expire_interval_s: int | UnsetType | None = UNSET,
) -> dict[str, Any]:
    """The table options a caller gave (SPEC §1); UNSET ones stay as they are."""
    given = {
        "ttl_seconds": ttl_seconds,
        "max_versions": max_versions,
        "consistency": consistency,
        "partitioning": partitioning,
        "expire_interval_s": expire_interval_s,
    }
    return {name: value for name, value in given.items() if value is not UNSET}
