"""Retries, error mapping and headers, with ``httpx.MockTransport`` (no server, no sleeping).

Only calls that are safe to repeat are retried: reads, namespace and table PUT/DELETE,
and writes whose every record carries an explicit ts (SPEC §2). A write whose ts the
server assigns is sent once, whatever happens.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

import mussel
from mussel import AsyncClient, Client, Delete, Put
from mussel.client import RetryPolicy

MSGPACK = "application/msgpack"

ROW = {"pk": "cGs=", "cells": [{"sk": "c2s=", "ts": 1, "value": "dg=="}], "cursor": None}


def unavailable(retry_after: str | None = None, status: int = 503) -> httpx.Response:
    code = {503: "unavailable", 429: "rate_limited"}[status]
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    body = {"error": {"code": code, "message": "try later"}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """A mock server that answers from a list, and records what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(script: Script, sleeps: list[float], **kwargs: Any) -> Client:
    c = Client("http://mussel.test", msgpack=False, transport=httpx.MockTransport(script), **kwargs)
    c._sleep = sleeps.append
    return c


@pytest.fixture
def client_for(sleeps: list[float]) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(script: Script, **kwargs: Any) -> Client:
        made.append(make_client(script, sleeps, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_a_read_is_retried_after_503_honouring_retry_after(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(unavailable("2"), httpx.Response(200, json=ROW))
    c = client_for(script)
    assert c.get("ns", "t", "pk", "sk") == [mussel.Cell(b"sk", 1, b"v")]
    assert len(script.requests) == 2
    assert len(sleeps) == 1 and 2.0 <= sleeps[0] < 2.1


def test_retry_after_as_an_http_date_is_honoured(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    c = client_for(Script(unavailable(when, 429), httpx.Response(200, json=ROW)))
    c.row("ns", "t", "pk")
    assert len(sleeps) == 1 and 3.0 < sleeps[0] <= 5.1


def test_a_write_without_ts_is_never_retried(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(unavailable("1"), httpx.Response(200, json={"written": 2}))
    c = client_for(script)
    with pytest.raises(mussel.UnavailableError) as info:
        c.write("ns", "t", [Put("a", "b", "c", ts=5), Put("a", "c", "d")])
    assert info.value.http_status == 503
    assert info.value.retry_after_s == 1.0
    assert len(script.requests) == 1 and sleeps == []

    script = Script(unavailable("1"), httpx.Response(200, json={"written": 1}))
    with pytest.raises(mussel.UnavailableError):
        client_for(script).delete("ns", "t", "a", "b")
    assert len(script.requests) == 1 and sleeps == []


def test_a_write_without_ts_is_not_resent_after_a_lost_connection(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(httpx.ReadError("connection reset"), httpx.Response(200, json={"written": 1}))
    c = client_for(script)
    with pytest.raises(mussel.UnavailableError) as info:
        c.put("ns", "t", "a", "b", "c")
    assert isinstance(info.value.__cause__, httpx.ReadError)
    assert len(script.requests) == 1 and sleeps == []


def test_a_write_with_explicit_ts_is_retried(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(
        unavailable(),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json={"written": 2}),
    )
    c = client_for(script)
    assert c.write("ns", "t", [Put("a", "b", "c", ts=5), Delete("a", "x", ts=6)]) == 2
    assert len(script.requests) == 3
    assert len(sleeps) == 2
    bodies = {r.content for r in script.requests}
    assert len(bodies) == 1  # the same batch, byte for byte


def test_the_retry_budget_is_retries_resends(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(unavailable())
    c = client_for(script, retries=3)
    with pytest.raises(mussel.UnavailableError):
        c.scan("ns", "t")
    assert len(script.requests) == 4  # the call and 3 retries
    assert len(sleeps) == 3
    assert all(0 <= s <= 0.05 * 2**i for i, s in enumerate(sleeps))  # backoff, full jitter

    script = Script(unavailable())
    with pytest.raises(mussel.UnavailableError):
        client_for(script, retries=0).scan("ns", "t")
    assert len(script.requests) == 1


def test_errors_that_retrying_cannot_fix_are_raised_at_once(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    body = {"error": {"code": "table_not_found", "message": "table ns/t does not exist"}}
    script = Script(httpx.Response(404, json=body))
    c = client_for(script)
    with pytest.raises(mussel.TableNotFoundError, match="does not exist"):
        c.scan("ns", "t")
    assert len(script.requests) == 1 and sleeps == []


def test_a_retry_after_longer_than_the_wait_limit_is_not_waited_for(
    client_for: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(unavailable("3600"))
    c = client_for(script)
    with pytest.raises(mussel.UnavailableError) as info:
        c.namespaces()
    assert info.value.retry_after_s == 3600
    assert len(script.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.put_namespace("ns"),
        lambda c: c.drop_namespace("ns"),
        lambda c: c.put_table("ns", "t", max_versions=2),
        lambda c: c.drop_table("ns", "t"),
        lambda c: c.multi_get("ns", "t", [("a", None)]),
        lambda c: c.health(),
    ],
    ids=["put_namespace", "drop_namespace", "put_table", "drop_table", "multi_get", "health"],
)
def test_idempotent_calls_are_retried(
    client_for: Callable[..., Client], call: Callable[[Client], object]
) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(500, json={}))
    with pytest.raises(mussel.MusselError):
        call(client_for(script))
    assert len(script.requests) == 2


def test_an_answer_without_the_envelope_gets_the_class_of_its_status(
    client_for: Callable[..., Client],
) -> None:
    c = client_for(Script(httpx.Response(502, text="<html>bad gateway</html>")), retries=0)
    with pytest.raises(mussel.UnavailableError, match="bad gateway") as info:
        c.health()
    assert info.value.http_status == 502

    body = {"error": {"code": "method_not_allowed", "message": "use GET"}}
    c = client_for(Script(httpx.Response(405, json=body)))
    with pytest.raises(mussel.MusselError, match="use GET") as err:
        c.health()
    assert (err.value.code, err.value.http_status) == ("method_not_allowed", 405)


def test_msgpack_mode_sends_and_accepts_msgpack_with_bytes() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/write"):
            body = msgspec.msgpack.encode({"written": 1})
        else:
            error = {"error": {"code": "too_large", "message": "value over the limit"}}
            return httpx.Response(
                413, content=msgspec.msgpack.encode(error), headers={"content-type": MSGPACK}
            )
        return httpx.Response(200, content=body, headers={"content-type": MSGPACK})

    with Client("http://mussel.test", token="s3cret", transport=httpx.MockTransport(handler)) as c:
        c.put("ns", "t", b"\x00\xff", "sk", b"\x80", ts=3)
        with pytest.raises(mussel.TooLargeError, match="over the limit"):
            c.scan("ns", "t")
    write = seen[0]
    assert write.headers["content-type"] == MSGPACK
    assert write.headers["accept"] == MSGPACK
    assert write.headers["authorization"] == "Bearer s3cret"
    assert msgspec.msgpack.decode(write.content) == {
        "records": [{"pk": b"\x00\xff", "sk": b"sk", "value": b"\x80", "ts": 3}],
        "ack": "durable",
    }


def test_json_mode_sends_keys_as_base64() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"written": 1})

    with Client("http://mussel.test", msgpack=False, transport=httpx.MockTransport(handler)) as c:
        c.put("ns", "t", b"\x00\xff", "", b"\x80")
    assert seen[0].url.params["encoding"] == "base64"
    assert seen[0].headers["content-type"] == "application/json"
    assert msgspec.json.decode(seen[0].content) == {
        "records": [{"pk": "AP8=", "value": "gA=="}],
        "ack": "durable",
    }


def test_retry_policy_rejects_a_negative_budget() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(-1)


# -- AsyncClient: the same rules --------------------------------------------------------


def make_async(script: Script, sleeps: list[float], **kwargs: Any) -> AsyncClient:
    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def handler(request: httpx.Request) -> httpx.Response:
        return script(request)

    c = AsyncClient(
        "http://mussel.test", msgpack=False, transport=httpx.MockTransport(handler), **kwargs
    )
    c._sleep = fake_sleep
    return c


def test_async_read_is_retried_after_503_honouring_retry_after(sleeps: list[float]) -> None:
    script = Script(unavailable("2"), httpx.Response(200, json=ROW))

    async def main() -> list[mussel.Cell]:
        async with make_async(script, sleeps) as c:
            return await c.get("ns", "t", "pk", "sk")

    assert asyncio.run(main()) == [mussel.Cell(b"sk", 1, b"v")]
    assert len(script.requests) == 2
    assert len(sleeps) == 1 and 2.0 <= sleeps[0] < 2.1


def test_async_write_without_ts_is_never_retried(sleeps: list[float]) -> None:
    script = Script(unavailable("1"), httpx.Response(200, json={"written": 1}))

    async def main() -> None:
        async with make_async(script, sleeps) as c:
            await c.put("ns", "t", "a", "b", "c")

    with pytest.raises(mussel.UnavailableError):
        asyncio.run(main())
    assert len(script.requests) == 1 and sleeps == []


def test_async_write_with_explicit_ts_is_retried(sleeps: list[float]) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json={"written": 1}))

    async def main() -> int:
        async with make_async(script, sleeps) as c:
            return await c.write("ns", "t", [Put("a", "b", "c", ts=1)])

    assert asyncio.run(main()) == 1
    assert len(script.requests) == 2 and len(sleeps) == 1


def test_the_retry_budget_stops_a_retry_storm() -> None:
    from mussel.client._transport import Call, RetryPolicy
    from mussel.errors import UnavailableError

    policy = RetryPolicy(3, budget_ratio=0.1, budget_max=2.0)
    call = Call("GET", "/x", idempotent=True)
    err = UnavailableError("down")
    # the saved budget: two retries, then none until calls earn more
    assert policy.delay(call, 1, err, None) is not None
    assert policy.delay(call, 1, err, None) is not None
    assert policy.delay(call, 1, err, None) is None
    for _ in range(10):  # ten calls earn one retry
        policy.earn()
    assert policy.delay(call, 1, err, None) is not None
    assert policy.delay(call, 1, err, None) is None
