"""``HttpServerProtocol`` with a recording transport: answers are held back to the end
of the event loop's round (``_Outbox``) and still go out in request order, closes wait
for them, and outside a running loop they are written at once."""

from __future__ import annotations

import asyncio
from typing import Any

from mussel.dispatch.http import HttpServerProtocol, Request, Response


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def answers(self) -> list[bytes]:
        """The bodies written, in order."""
        data = b"".join(self.writes)
        return [part.split(b"\r\n\r\n", 1)[1][:2] for part in data.split(b"HTTP/1.1 ")[1:]]


async def _slow(body: bytes) -> Response:
    await asyncio.sleep(0.01)
    return Response(200, body)


def app(request: Request) -> Any:
    body = request.path.strip("/").encode()
    if body.startswith(b"s"):
        return _slow(body)
    return Response(200, body)


def get(path: str, close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def test_pipelined_answers_go_out_together_in_request_order() -> None:
    async def run() -> Transport:
        t = Transport()
        proto = HttpServerProtocol(app, 1 << 20)
        proto.connection_made(t)  # type: ignore[arg-type]
        proto.data_received(get("/a1") + get("/s2") + get("/a3"))
        assert t.writes == []  # held back until the loop's round ends
        await asyncio.sleep(0)
        assert t.answers() == [b"a1"]  # a3 waits for the slow s2 before it
        await asyncio.sleep(0.05)
        proto.data_received(get("/a4") + get("/a5"))
        await asyncio.sleep(0)
        return t

    t = asyncio.run(run())
    assert t.answers() == [b"a1", b"s2", b"a3", b"a4", b"a5"]
    assert t.writes[-1].count(b"HTTP/1.1 200") == 2  # a4 and a5 in one write
    assert not t.closed


def test_connection_close_closes_after_the_answer_is_written() -> None:
    async def run() -> Transport:
        t = Transport()
        proto = HttpServerProtocol(app, 1 << 20)
        proto.connection_made(t)  # type: ignore[arg-type]
        proto.data_received(get("/a1", close=True))
        assert not t.closed and t.writes == []
        await asyncio.sleep(0)
        return t

    t = asyncio.run(run())
    assert t.answers() == [b"a1"] and b"connection: close" in t.writes[0]
    assert t.closed


def test_shutdown_closes_an_idle_connection_after_its_held_back_answer() -> None:
    async def run() -> Transport:
        t = Transport()
        proto = HttpServerProtocol(app, 1 << 20)
        proto.connection_made(t)  # type: ignore[arg-type]
        proto.data_received(get("/a1"))
        proto.shutdown()
        assert not t.closed
        await asyncio.sleep(0)
        return t

    t = asyncio.run(run())
    assert t.answers() == [b"a1"] and t.closed


def test_a_connection_lost_before_the_round_ends_writes_nothing() -> None:
    async def run() -> Transport:
        t = Transport()
        proto = HttpServerProtocol(app, 1 << 20)
        proto.connection_made(t)  # type: ignore[arg-type]
        proto.data_received(get("/a1"))
        proto.connection_lost(None)
        await asyncio.sleep(0)
        return t

    assert asyncio.run(run()).writes == []


def test_outside_a_running_loop_answers_are_written_at_once() -> None:
    t = Transport()
    proto = HttpServerProtocol(app, 1 << 20)
    proto.connection_made(t)  # type: ignore[arg-type]
    proto.data_received(get("/a1") + get("/a2"))
    assert t.answers() == [b"a1", b"a2"]


def test_a_bad_request_gets_one_answer_and_the_connection_closes() -> None:
    async def run() -> Transport:
        t = Transport()
        proto = HttpServerProtocol(app, 1 << 20)
        proto.connection_made(t)  # type: ignore[arg-type]
        proto.data_received(b"GET ?a=b HTTP/1.1\r\n\r\n" + get("/a1"))
        await asyncio.sleep(0)
        return t

    t = asyncio.run(run())
    assert b"".join(t.writes).count(b"HTTP/1.1 ") == 1
    assert b"400 Bad Request" in t.writes[0] and t.closed
