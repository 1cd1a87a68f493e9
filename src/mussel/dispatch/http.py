"""A small, fast HTTP/1.1 server: asyncio (uvloop) + httptools (llhttp).

Why not a framework: the dispatcher's read path is a few microseconds of storage
work, and frameworks cost 5-20x that per request (docs/architecture.md has the
figures). This module only moves bytes: it parses requests, enforces the body limit
before buffering, keeps connections alive, answers pipelined requests in order,
and hands each ``Request`` to an ``app`` coroutine-or-function that returns a
``Response``. Everything about the API lives in ``dispatch/app.py``.

Answers are written at the end of the event loop's round (``_Outbox``: one callback
writes every connection's answers made while the loop handled the connections that
became readable), not each as soon as it is made: a write wakes the client, which on
a busy machine takes the core between two requests the server could have answered
without a context switch. A connection's answers keep their order, pipelined ones
go out in one write, and a close waits for them.

Contract of ``app(request)``: returns a ``Response`` or an awaitable of one; it
must not raise (the app maps its own errors to responses).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools
import msgspec

__all__ = ["HttpServerProtocol", "Request", "Response", "error_response"]

log = logging.getLogger("mussel.http")

App = Callable[["Request"], "Response | Awaitable[Response]"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS[507] = "Insufficient Storage"

LINGER_S = 2.0
"""How long a connection closed on a request error keeps discarding the client's input."""


@dataclass(slots=True)
class Request:
    method: str
    path: str  # raw (still percent-encoded) path
    query_string: bytes
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = b""
    peer: Any = None
    internal: bool = False  # came from another process of this server (a Unix socket)
    principal: Any = None  # the token that authorized it (``dispatch/auth.py``)
    cert_name: str | None = None  # the verified client certificate's subject CN (mTLS)
    request_id: str = ""  # set by the app (``X-Request-Id``, echoed in the answer)
    _query: dict[str, str] | None = field(default=None, repr=False)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def error_response(status: int, code: str, message: str) -> Response:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return Response(status, body)


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}

_STATUS_LINES = {code: f"HTTP/1.1 {code} {phrase}\r\n" for code, phrase in _REASONS.items()}


_HEADS: dict[tuple[int, str], str] = {}
"""Status line and content-type header per (status, content type), built once."""


def _head(status: int, content_type: str) -> str:
    line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n"
    head = f"{line}content-type: {content_type}\r\ncontent-length: "
    if len(_HEADS) < 1024:  # content types come from the app: a handful
        _HEADS[(status, content_type)] = head
    return head


def _render(resp: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    """The bytes of an answer; for HEAD, the headers of the GET answer and no body."""
    head = _HEADS.get((resp.status, resp.content_type)) or _head(resp.status, resp.content_type)
    body = resp.body
    parts = [head, str(len(body)), "\r\n"]
    for name, value in resp.headers:
        parts += (name, ": ", value, "\r\n")
    if not keep_alive:
        parts.append("connection: close\r\n")
    parts.append("\r\n")
    data = "".join(parts).encode("latin-1")
    return data if head_only else data + body


class HttpServerProtocol(asyncio.Protocol):
    """One connection. ``max_body_bytes`` is enforced from Content-Length and while reading."""

    def __init__(
        self,
        app: App,
        max_body_bytes: int,
        on_close: Callable[[], None] | None = None,
        internal: bool = False,
        on_open: Callable[[], None] | None = None,
    ):
        self._app = app
        self._on_open = on_open
        self._internal = internal
        self._max_body = max_body_bytes
        self._on_close = on_close
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_len = 0
        self._too_large = False
        self._pending: deque[asyncio.Future[bytes] | bytes] = deque()
        self._closing = False
        self._linger = False
        self._lingering = False
        self._in_message = False
        self._draining = False
        self._peer: Any = None
        self._cert_name: str | None = None
        self._out: list[bytes] = []  # answers made, written at the end of the loop's round
        self._close_after_out = False
        self._outbox: _Outbox | None = None

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._outbox = _outbox()
        self._peer = transport.get_extra_info("peername")
        self._cert_name = _common_name(transport.get_extra_info("peercert"))
        if self._on_open is not None:
            self._on_open()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        for item in self._pending:
            if isinstance(item, asyncio.Future):
                item.cancel()
        self._pending.clear()
        self._out.clear()
        if self._on_close is not None:
            self._on_close()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "invalid_request", "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._too_large:
                self._fail(400, "invalid_request", f"malformed HTTP request: {exc}")

    # -- httptools callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_len = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            self._too_large = True
            self._fail(413, "too_large", f"request body over the limit of {self._max_body} bytes")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body_len += len(body)
        if self._body_len > self._max_body:
            self._too_large = True
            self._fail(413, "too_large", f"request body over the limit of {self._max_body} bytes")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._too_large or self._closing:
            return
        try:
            parsed = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._fail(400, "invalid_request", "malformed request target")
            return
        raw_method = self._parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        head_only = method == "HEAD"  # answered as a GET, without the body
        request = Request(
            method="GET" if head_only else method,
            path=parsed.path.decode("latin-1"),
            query_string=parsed.query or b"",
            headers=self._headers,
            body=b"".join(self._body),
            peer=self._peer,
            internal=self._internal,
            cert_name=self._cert_name,
        )
        keep_alive = self._parser.should_keep_alive() and not self._draining
        try:
            result = self._app(request)
        except Exception:  # the app must not raise; never leave a client hanging
            log.exception("unhandled error in request handler")
            result = error_response(500, "internal", "internal server error")
        if isinstance(result, Response):
            self._queue(_render(result, keep_alive, head_only), keep_alive)
        else:
            fut = asyncio.ensure_future(self._run(result, keep_alive, head_only))
            self._pending.append(fut)
            fut.add_done_callback(lambda _f: self._flush())

    # -- responses ------------------------------------------------------------

    async def _run(self, result: Awaitable[Response], keep_alive: bool, head_only: bool) -> bytes:
        try:
            resp = await result
        except Exception:
            log.exception("unhandled error in request handler")
            resp = error_response(500, "internal", "internal server error")
        if not keep_alive:
            self._closing = True
        return _render(resp, keep_alive, head_only)

    def _queue(self, data: bytes, keep_alive: bool) -> None:
        if not keep_alive:
            self._closing = True
        if not self._pending and self._transport is not None:
            self._send(data)
            if self._closing or (self._draining and not self._in_message):
                self._close()
            return
        self._pending.append(data)
        self._flush()

    def _flush(self) -> None:
        """Write finished responses in request order."""
        while self._pending:
            head = self._pending[0]
            if isinstance(head, asyncio.Future):
                if not head.done():
                    return
                data = None if head.cancelled() else head.result()
            else:
                data = head
            self._pending.popleft()
            if self._transport is not None and data is not None:
                self._send(data)
        if self._transport is not None and (
            self._closing or (self._draining and not self._in_message)
        ):
            self._close()

    def shutdown(self) -> None:
        """Stop keeping the connection alive: close it now if it is idle, else once the
        requests under way are answered (their answers are still written)."""
        self._draining = True
        if not self._in_message and not self._pending and self._transport is not None:
            if self._out:  # its last answers are held back: close once they are written
                self._close_after_out = True
            else:
                self._transport.close()

    def _fail(self, status: int, code: str, message: str) -> None:
        """Answer an unparseable (or too large) request and close the connection.

        The client may still be sending its body: closing at once would reset the
        connection and lose the answer, so the connection lingers (input discarded)
        for up to ``LINGER_S`` after the answer and a half-close. A connection already
        closing (its last answer is queued) gets no further answer.
        """
        if self._closing:
            return
        self._pending.append(_render(error_response(status, code, message), False))
        self._closing = True
        self._linger = True
        self._flush()

    def _send(self, data: bytes) -> None:
        """Write ``data`` once the event loop has handled this round's readable
        connections (``_Outbox``); at once outside a running loop."""
        if self._outbox is None:
            assert self._transport is not None
            self._transport.write(data)
            return
        self._out.append(data)
        if len(self._out) == 1:
            self._outbox.add(self)

    def _write_out(self) -> None:
        """Write what ``_send`` held back (one write, pipelined answers included), then
        close if a close waited for it."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if self._transport is None:
            return
        self._transport.write(data)
        if self._close_after_out:
            self._close_after_out = False
            self._close()

    def _close(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._out:  # answers are still held back: close after writing them
            self._close_after_out = True
            return
        if not self._linger or not transport.can_write_eof():
            transport.close()
            return
        if self._lingering or transport.is_closing():
            return
        self._lingering = True
        transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)


class _Outbox:
    """The connections of one event loop with answers held back (``_send``), written
    by one callback at the end of the loop's round.

    A round handles every connection that became readable; writing each answer as it
    is made wakes the load generator or client (and, on a busy machine, lets it take
    the core) once per answer, between two requests the server could have handled
    without a context switch. Held back to the end of the round, the answers go out
    together; each connection's answers keep their order (one list per connection).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: list[HttpServerProtocol] = []

    def add(self, proto: HttpServerProtocol) -> None:
        self._waiting.append(proto)
        if len(self._waiting) == 1:
            self._loop.call_soon(self._write)

    def _write(self) -> None:
        waiting, self._waiting = self._waiting, []
        for proto in waiting:
            proto._write_out()


_OUTBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = (
    weakref.WeakKeyDictionary()
)


def _outbox() -> _Outbox | None:
    """The running loop's ``_Outbox`` (None outside a running loop: write at once)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    box = _OUTBOXES.get(loop)
    if box is None:
        box = _OUTBOXES[loop] = _Outbox(loop)
    return box


def _common_name(cert: Any) -> str | None:
    """The subject CN of a verified peer certificate (``ssl`` gives None without one)."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def percent_decode(segment: str) -> bytes:
    """Decode one %-encoded path segment to bytes."""
    return unquote_to_bytes(segment)
