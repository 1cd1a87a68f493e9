"""The batching writers: flush by count, by time and on exit; errors never swallowed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

import mussel
from mussel import AsyncClient, Client, Delete, Put
from mussel.client import AsyncWriter, Writer
from tests.client.conftest import BINARY, fresh
from tests.conftest import ServerProcess


@pytest.fixture
def sync_client(shared_server: ServerProcess) -> Iterator[Client]:
    with Client(shared_server.url) as c:
        yield c


@pytest.fixture
def ns(sync_client: Client) -> str:
    name = fresh("w")
    sync_client.put_namespace(name)
    sync_client.put_table(name, "t")
    return name


def count_cells(c: Client, ns: str) -> int:
    return sum(1 for _ in c.iter_scan(ns, "t"))


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class FakeWrite:
    """A ``write`` that records batches, or raises ``error`` (once, if ``once``)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.batches: list[list[Put | Delete]] = []
        self.error = error
        self.called = threading.Event()

    def __call__(self, ns: str, table: str, records: Sequence[Put | Delete], ack: str) -> int:
        self.called.set()
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        self.batches.append(list(records))
        return len(records)


# -- Writer against the server ---------------------------------------------------------


def test_writer_flushes_every_max_records(sync_client: Client, ns: str) -> None:
    with sync_client.writer(ns, "t", max_records=10, max_delay_ms=None, ack="applied") as w:
        for i in range(25):
            w.put(b"k%02d" % i, BINARY, BINARY)
        assert w.written == 20
        assert count_cells(sync_client, ns) == 20
    assert w.written == 25
    assert count_cells(sync_client, ns) == 25
    assert sync_client.get(ns, "t", b"k07", BINARY)[0].value == BINARY


def test_writer_flushes_after_max_delay(sync_client: Client, ns: str) -> None:
    with sync_client.writer(ns, "t", max_records=1000, max_delay_ms=30, ack="applied") as w:
        started = time.monotonic()
        w.put("a", "s", "1")
        w.delete("b", "s")
        wait_until(lambda: w.written == 2)
        assert time.monotonic() - started >= 0.025
        assert count_cells(sync_client, ns) == 1
        w.put("c", "s", "3")  # a second timed batch
        wait_until(lambda: w.written == 3)
    assert count_cells(sync_client, ns) == 2


def test_writer_flushes_the_rest_on_exit(sync_client: Client, ns: str) -> None:
    with sync_client.writer(ns, "t", max_records=100, max_delay_ms=None, ack="applied") as w:
        w.write([Put(f"k{i}", "s", "v") for i in range(7)])
        w.flush()
        w.write([Put(f"k{i}", "s", "v") for i in range(7, 12)])
        assert count_cells(sync_client, ns) == 7
    assert count_cells(sync_client, ns) == 12


def test_writer_keeps_the_order_of_writes_to_a_cell(sync_client: Client, ns: str) -> None:
    with sync_client.writer(ns, "t", max_records=7, max_delay_ms=1, ack="applied") as w:
        for i in range(100):
            w.put("same", "cell", str(i))
    assert sync_client.get(ns, "t", "same", "cell")[0].value == b"99"


def test_writer_raises_an_error_of_a_flush_by_count_at_once(sync_client: Client, ns: str) -> None:
    w = sync_client.writer(ns, "missing", max_records=2, max_delay_ms=None)
    w.put("a", "s", "v")
    with pytest.raises(mussel.TableNotFoundError) as info:
        w.put("b", "s", "v")
    assert "a batch of 2 records was not written" in "".join(info.value.__notes__)
    w.close()


# -- background errors (a fake write, so timing is exact) --------------------------------


def test_a_background_flush_error_is_raised_by_the_next_call() -> None:
    fake = FakeWrite(mussel.UnavailableError("log unavailable"))
    w = Writer(fake, "ns", "t", max_records=100, max_delay_ms=1)
    w.put("a", "s", "v")
    assert fake.called.wait(5)
    wait_until(lambda: w._error is not None)
    with pytest.raises(mussel.UnavailableError, match="log unavailable") as info:
        w.put("b", "s", "v")
    assert "a batch of 1 records was not written" in "".join(info.value.__notes__)
    w.put("c", "s", "v")  # raised once; the writer goes on
    w.close()
    assert [r.pk for batch in fake.batches for r in batch] == ["c"]


def test_a_background_flush_error_is_raised_on_exit() -> None:
    fake = FakeWrite(mussel.QuotaExceededError("namespace over its storage quota"))
    w = Writer(fake, "ns", "t", max_records=100, max_delay_ms=1)
    with pytest.raises(mussel.QuotaExceededError), w:
        w.put("a", "s", "v")
        assert fake.called.wait(5)
        wait_until(lambda: w._error is not None)
    assert fake.batches == []


def test_an_error_of_the_final_flush_is_raised_on_exit() -> None:
    fake = FakeWrite(mussel.TooLargeError("batch too large"))
    with pytest.raises(mussel.TooLargeError), Writer(fake, "ns", "t", max_delay_ms=None) as w:
        w.put("a", "s", "v")


def test_writer_arguments_are_checked() -> None:
    with pytest.raises(mussel.InvalidRequestError):
        Writer(FakeWrite(), "ns", "t", max_records=0)
    with pytest.raises(mussel.InvalidRequestError):
        Writer(FakeWrite(), "ns", "t", max_delay_ms=-1)
    w = Writer(FakeWrite(), "ns", "t")
    w.close()
    with pytest.raises(mussel.InvalidRequestError, match="closed"):
        w.put("a")


# -- AsyncWriter --------------------------------------------------------------------------


def test_async_writer_flushes_by_count_by_time_and_on_exit(
    shared_server: ServerProcess, sync_client: Client, ns: str
) -> None:
    async def main() -> None:
        async with AsyncClient(shared_server.url) as c:
            async with c.writer(ns, "t", max_records=5, max_delay_ms=None, ack="applied") as w:
                for i in range(12):
                    await w.put(b"c%02d" % i, BINARY, BINARY)
                assert w.written == 10  # two batches by count
            assert w.written == 12  # the rest on exit

            async with c.writer(ns, "t", max_records=1000, max_delay_ms=20, ack="applied") as w:
                await w.put("timed", "s", "v")
                await w.delete("c00", BINARY)
                for _ in range(500):
                    if w.written == 2:
                        break
                    await asyncio.sleep(0.005)
                assert w.written == 2  # by time, before exit

    asyncio.run(main())
    cells = list(sync_client.iter_scan(ns, "t"))
    assert [c.pk for c in cells] == [b"c%02d" % i for i in range(1, 12)] + [b"timed"]


def test_async_writer_raises_a_background_error_on_the_next_call() -> None:
    async def failing(ns: str, table: str, records: Sequence[Put | Delete], ack: str) -> int:
        raise mussel.UnavailableError("log unavailable")

    async def main() -> None:
        w = AsyncWriter(failing, "ns", "t", max_delay_ms=1)
        await w.put("a")
        for _ in range(500):
            if w._error is not None:
                break
            await asyncio.sleep(0.002)
        with pytest.raises(mussel.UnavailableError):
            await w.put("b")  # raises; "b" is not taken
        assert w._buf == []
        await w.put("c")
        with pytest.raises(mussel.UnavailableError):  # "c" is flushed on exit, and fails
            await w.aclose()

    asyncio.run(main())
