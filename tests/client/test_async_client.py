"""``AsyncClient`` against a real ``mussel serve``, in msgpack and in JSON mode.

``Client``'s tests cover the semantics; these check that every async method sends the
same request and reads the same answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

import mussel
from mussel import AsyncClient, Cell, Delete, Put, RowPage, ScanCell
from mussel.model import Partitioning, Quotas
from tests.client.conftest import BINARY, fresh
from tests.conftest import ServerProcess

T = TypeVar("T")


@pytest.fixture
def run(shared_server: ServerProcess, msgpack: bool) -> Callable[..., object]:
    """Run ``test(client)`` with a fresh ``AsyncClient`` on a fresh event loop."""

    def runner(test: Callable[[AsyncClient], Awaitable[T]]) -> T:
        async def main() -> T:
            async with AsyncClient(shared_server.url, msgpack=msgpack) as c:
                return await test(c)

        return asyncio.run(main())

    return runner


def test_async_catalog_calls(run: Callable[..., object]) -> None:
    name = fresh("ans")

    async def test(c: AsyncClient) -> None:
        assert await c.health() == {"status": "ok"}
        created = await c.put_namespace(name, consistency="eventual", quotas=Quotas(tables=4))
        assert (created.consistency, created.quotas.tables) == ("eventual", 4)
        assert await c.namespace(name) == created
        assert name in [n.name for n in await c.namespaces()]

        points = [b"\x00", BINARY]
        table = await c.put_table(
            name, "t", max_versions=2, partitioning=Partitioning("range", None, points)
        )
        assert table.partitioning.split_points == points
        assert (await c.put_table(name, "t", ttl_seconds=60)).ttl_seconds == 60
        assert await c.table(name, "t") == await c.put_table(name, "t")
        assert [t.name for t in await c.tables(name)] == ["t"]

        with pytest.raises(mussel.ConflictError):
            await c.drop_namespace(name)
        await c.drop_table(name, "t")
        with pytest.raises(mussel.TableNotFoundError):
            await c.table(name, "t")
        await c.drop_namespace(name)
        with pytest.raises(mussel.NamespaceNotFoundError):
            await c.namespace(name)

    run(test)


def test_async_writes_and_reads_round_trip_binary(run: Callable[..., object]) -> None:
    ns = fresh("ans")

    async def test(c: AsyncClient) -> None:
        await c.put_namespace(ns)
        await c.put_table(ns, "t", max_versions=3)
        await c.put(ns, "t", BINARY, BINARY, BINARY, ts=1)
        await c.put(ns, "t", BINARY, BINARY, b"\xff", ts=2)
        assert await c.write(ns, "t", [Put("p", "a", "1"), Delete("q", "a")], ack="applied") == 2
        assert await c.get(ns, "t", BINARY, BINARY, versions=3) == [
            Cell(BINARY, 2, b"\xff"),
            Cell(BINARY, 1, BINARY),
        ]
        assert await c.get(ns, "t", BINARY, "absent") == []
        await c.delete(ns, "t", BINARY, BINARY, ts=2)
        assert await c.row(ns, "t", BINARY) == RowPage(BINARY, [])
        pages = await c.multi_get(ns, "t", [("p", None), ("p", "a"), ("q", None)])
        assert [[cell.value for cell in p.cells] for p in pages] == [[b"1"], [b"1"], []]
        page = await c.scan(ns, "t", pk_prefix="p")
        assert [(cell.pk, cell.sk) for cell in page.cells] == [(b"p", b"a")]

    run(test)


def test_async_iterators_follow_cursors_across_pages(run: Callable[..., object]) -> None:
    ns = fresh("ans")
    pks = [b"\xff" + bytes([i]) for i in range(13)]
    sks = [b"\x00" + bytes([i]) for i in range(11)]

    async def test(c: AsyncClient) -> None:
        await c.put_namespace(ns)
        await c.put_table(ns, "t")
        await c.write(ns, "t", [Put(pk, "s", pk, 5) for pk in pks])
        await c.write(ns, "t", [Put("row", sk, sk, 5) for sk in sks])
        first = await c.scan(ns, "t", limit=4)
        assert first.cursor and (await c.scan(ns, "t", limit=4, cursor=first.cursor)).cursor
        scanned = [cell async for cell in c.iter_scan(ns, "t", limit=4)]
        assert scanned[:11] == [ScanCell(b"row", sk, 5, sk) for sk in sks]
        assert [cell.pk for cell in scanned[11:]] == pks
        row = [cell.sk async for cell in c.iter_row(ns, "t", "row", limit=3)]
        assert row == sks

    run(test)


def test_async_errors_are_mapped(run: Callable[..., object]) -> None:
    ns = fresh("ans")

    async def test(c: AsyncClient) -> None:
        await c.put_namespace(ns)
        await c.put_table(ns, "t")
        with pytest.raises(mussel.TableNotFoundError) as info:
            await c.get(ns, "missing", "k")
        assert info.value.http_status == 404
        with pytest.raises(mussel.InvalidRequestError):
            await c.scan(ns, "t", limit=0)
        with pytest.raises(mussel.TooLargeError):
            await c.put(ns, "t", "k", "s", b"x" * ((1 << 20) + 1))

    run(test)
