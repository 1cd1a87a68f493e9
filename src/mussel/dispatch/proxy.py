"""``OwnerProxy``: how a follower process hands a request to the owner process.

Followers serve reads themselves; writes, catalog changes, ``/metrics`` and
everything else go to the owner over a Unix socket (Linux abstract namespace: no
file, no path length limit), as HTTP/1.1 on pooled keep-alive connections. The
owner answers with the same ``App``, so the client gets exactly the answer it
would have had from the owner.

A request is retried on a new connection only when it is safe: a GET whose pooled
connection turned out closed before any answer. Anything else that fails on the
way is 503 ``unavailable``: a write may or may not have happened, which a client
must be told rather than guess.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import httptools

from mussel.dispatch.http import Request, Response
from mussel.errors import UnavailableError

__all__ = ["OwnerProxy", "open_unix"]

log = logging.getLogger("mussel.proxy")

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)
_SKIP_ANSWER = frozenset({"content-type", "content-length", "connection", "keep-alive"})
MAX_IDLE = 64
INTERNAL_CERT = "mussel-internal-cert"
"""The verified client certificate CN of a handed-over request (Unix socket only)."""


class _Answer:
    """httptools callbacks collecting one response."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


async def open_unix(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams to the Unix socket at ``address`` (the abstract namespace included)."""
    # a socket of our own: uvloop rejects abstract-namespace addresses given as paths
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, address)
        return await asyncio.open_unix_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


def _encode(request: Request) -> bytes:
    target = request.path
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    head = [f"{request.method} {target} HTTP/1.1\r\nhost: owner\r\n"]
    for name, value in request.headers.items():
        if name not in _HOP_BY_HOP and name != INTERNAL_CERT:
            head.append(f"{name}: {value}\r\n")
    if request.cert_name is not None:  # the client's verified certificate (mTLS)
        head.append(f"{INTERNAL_CERT}: {request.cert_name}\r\n")
    head.append(f"content-length: {len(request.body)}\r\n\r\n")
    return "".join(head).encode("latin-1") + request.body


class OwnerProxy:
    """Forwards requests to the owner listening on ``address`` (a Unix socket)."""

    def __init__(self, address: str, timeout_s: float = 120.0) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._idle: list[_Conn] = []

    async def forward(self, request: Request, timeout_s: float | None = None) -> Response:
        """The owner's answer to ``request``; ``timeout_s`` (default: the proxy's) bounds
        the wait for it."""
        data = _encode(request)
        timeout = self._timeout_s if timeout_s is None else timeout_s
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._roundtrip(conn, data, timeout)
            except _Stale:
                if request.method != "GET":
                    raise UnavailableError(
                        "the owner process closed the connection; the request may or may "
                        "not have been carried out",
                        retry_after_s=1.0,
                    ) from None
        try:
            reader, writer = await open_unix(self._address)
        except OSError as exc:
            raise UnavailableError(
                f"the owner process is not reachable ({exc.strerror}); retry shortly",
                retry_after_s=1.0,
            ) from None
        try:
            return await self._roundtrip(_Conn(reader, writer), data, timeout)
        except _Stale:
            raise UnavailableError(
                "the owner process closed the connection; the request may or may not "
                "have been carried out",
                retry_after_s=1.0,
            ) from None

    async def _roundtrip(self, conn: _Conn, data: bytes, timeout_s: float) -> Response:
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        got_any = False
        try:
            conn.writer.write(data)
            async with asyncio.timeout(timeout_s):
                while not answer.complete:
                    chunk = await conn.reader.read(1 << 16)
                    if not chunk:
                        raise ConnectionResetError("closed")
                    got_any = True
                    parser.feed_data(chunk)
        except (OSError, httptools.HttpParserError, TimeoutError) as exc:
            conn.close()
            if not got_any:
                raise _Stale() from exc
            log.warning("answer from the owner process broken off: %r", exc)
            raise UnavailableError(
                "the owner process's answer was broken off", retry_after_s=1.0
            ) from None
        if parser.should_keep_alive() and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        content_type = "application/json"
        headers = []
        for name, value in answer.headers:
            if name == "content-type":
                content_type = value
            elif name not in _SKIP_ANSWER:
                headers.append((name, value))
        return Response(parser.get_status_code(), b"".join(answer.body), content_type, headers)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class _Stale(Exception):
    """The connection failed before any byte of an answer arrived."""
