"""Batching writers: many small puts and deletes sent as few write requests.

::

    with client.writer("shop", "events", max_records=500, max_delay_ms=50) as w:
        for e in events:
            w.put(e.user, e.kind, e.payload)
    # every record is written (or an error was raised) when the block ends

A batch is sent when it holds ``max_records`` records (by the caller, who waits:
that is the backpressure), when its oldest record is ``max_delay_ms`` old (by a
background timer: a thread for ``Writer``, a task for ``AsyncWriter``), on
``flush()`` and on exit. Batches go out one at a time, in the order the records
were given, so writes to a pk are applied in that order.

Errors are never swallowed: an error of a background flush is raised by the next
call (``put``, ``delete``, ``flush``; that call does not take its record) or on exit,
with a note saying how many records it lost. Records given after it are still sent.
A batch is retried by the client only if every record in it carries an explicit ts
(SPEC §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Literal

from mussel.errors import InvalidRequestError
from mussel.model import Delete, Put

__all__ = ["AsyncWriter", "Writer"]

Ack = Literal["durable", "applied"]
Key = bytes | str
Records = Sequence[Put | Delete]


def _check(max_records: int, max_delay_ms: float | None) -> float | None:
    if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
        raise InvalidRequestError("max_records must be a positive integer")
    if max_delay_ms is None:
        return None
    if max_delay_ms < 0:
        raise InvalidRequestError("max_delay_ms must be >= 0 (or None: no timer)")
    return max_delay_ms / 1000.0


def _note_lost(exc: BaseException, count: int) -> None:
    exc.add_note(f"mussel writer: a batch of {count} records was not written")


class Writer:
    """Batches records for ``Client.write``. Use it as a context manager, or ``close()`` it.

    ``put``/``delete`` may be called from several threads; records keep the order in
    which the calls returned.
    """

    def __init__(
        self,
        write: Callable[..., int],
        namespace: str,
        table: str,
        *,
        max_records: int = 500,
        max_delay_ms: float | None = 50,
        ack: Ack = "durable",
    ) -> None:
        self._delay_s = _check(max_records, max_delay_ms)
        self._write = write
        self.namespace = namespace
        self.table = table
        self.max_records = max_records
        self.ack: Ack = ack
        self.written = 0  # records acknowledged by the server so far
        self._cond = threading.Condition()
        self._buf: list[Put | Delete] = []
        self._first_at = 0.0  # monotonic time the oldest buffered record arrived
        self._error: BaseException | None = None
        self._closed = False
        self._send_lock = threading.Lock()  # one batch in flight, in order
        self._thread: threading.Thread | None = None
        if self._delay_s is not None:
            self._thread = threading.Thread(
                target=self._run, name=f"mussel-writer-{namespace}/{table}", daemon=True
            )
            self._thread.start()

    def __repr__(self) -> str:
        return f"Writer({self.namespace}/{self.table}, buffered={len(self._buf)})"

    # -- the caller's side ----------------------------------------------------

    def put(self, pk: Key, sk: Key = b"", value: Key = b"", *, ts: int | None = None) -> None:
        self._add(Put(pk, sk, value, ts))

    def delete(self, pk: Key, sk: Key = b"", *, ts: int | None = None) -> None:
        self._add(Delete(pk, sk, ts))

    def write(self, records: Records) -> None:
        for record in records:
            self._add(record)

    def _add(self, record: Put | Delete) -> None:
        self._raise_pending()
        if self._closed:
            raise InvalidRequestError("this writer is closed")
        with self._cond:
            if not self._buf:
                self._first_at = time.monotonic()
                self._cond.notify()
            self._buf.append(record)
            full = len(self._buf) >= self.max_records
        if full:
            self._flush()

    def flush(self) -> None:
        """Send what is buffered now; raise a pending background error first."""
        self._raise_pending()
        self._flush()

    def close(self) -> None:
        """Stop the timer, send what is buffered, raise any error not raised yet."""
        if self._closed:
            self._raise_pending()
            return
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        pending, self._error = self._error, None
        try:
            self._flush()
        except BaseException as exc:
            if pending is not None:
                raise exc from pending
            raise
        if pending is not None:
            raise pending

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending --------------------------------------------------------------

    def _raise_pending(self) -> None:
        if self._error is not None:
            with self._cond:
                err, self._error = self._error, None
            if err is not None:
                raise err

    def _flush(self) -> None:
        with self._send_lock:
            with self._cond:
                batch, self._buf = self._buf, []
            if not batch:
                return
            try:
                self.written += self._write(self.namespace, self.table, batch, ack=self.ack)
            except BaseException as exc:
                _note_lost(exc, len(batch))
                raise

    def _run(self) -> None:
        """The timer: send the buffer once its oldest record is ``max_delay_ms`` old."""
        assert self._delay_s is not None
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if self._buf:
                        left = self._first_at + self._delay_s - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    else:
                        self._cond.wait()
            try:
                self._flush()
            except Exception as exc:
                with self._cond:
                    if self._error is None:
                        self._error = exc


class AsyncWriter:
    """Batches records for ``AsyncClient.write``; ``async with`` it, or ``await aclose()``."""

    def __init__(
        self,
        write: Callable[..., Awaitable[int]],
        namespace: str,
        table: str,
        *,
        max_records: int = 500,
        max_delay_ms: float | None = 50,
        ack: Ack = "durable",
    ) -> None:
        self._delay_s = _check(max_records, max_delay_ms)
        self._write = write
        self.namespace = namespace
        self.table = table
        self.max_records = max_records
        self.ack: Ack = ack
        self.written = 0
        self._buf: list[Put | Delete] = []
        self._first_at = 0.0
        self._error: BaseException | None = None
        self._closed = False
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"AsyncWriter({self.namespace}/{self.table}, buffered={len(self._buf)})"

    async def put(self, pk: Key, sk: Key = b"", value: Key = b"", *, ts: int | None = None) -> None:
        await self._add(Put(pk, sk, value, ts))

    async def delete(self, pk: Key, sk: Key = b"", *, ts: int | None = None) -> None:
        await self._add(Delete(pk, sk, ts))

    async def write(self, records: Records) -> None:
        for record in records:
            await self._add(record)

    async def _add(self, record: Put | Delete) -> None:
        self._raise_pending()
        if self._closed:
            raise InvalidRequestError("this writer is closed")
        if self._task is None and self._delay_s is not None:
            self._task = asyncio.create_task(self._run())
        if not self._buf:
            self._first_at = time.monotonic()
            self._wake.set()
        self._buf.append(record)
        if len(self._buf) >= self.max_records:
            await self._flush()

    async def flush(self) -> None:
        self._raise_pending()
        await self._flush()

    async def aclose(self) -> None:
        """Stop the timer task, send what is buffered, raise any error not raised yet."""
        if self._closed:
            self._raise_pending()
            return
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        pending, self._error = self._error, None
        try:
            await self._flush()
        except BaseException as exc:
            if pending is not None:
                raise exc from pending
            raise
        if pending is not None:
            raise pending

    async def __aenter__(self) -> AsyncWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _raise_pending(self) -> None:
        err, self._error = self._error, None
        if err is not None:
            raise err

    async def _flush(self) -> None:
        async with self._send_lock:
            batch, self._buf = self._buf, []
            if not batch:
                return
            try:
                self.written += await self._write(self.namespace, self.table, batch, ack=self.ack)
            except BaseException as exc:
                _note_lost(exc, len(batch))
                raise

    async def _run(self) -> None:
        assert self._delay_s is not None
        while not self._closed:
            if not self._buf:
                await self._wake.wait()
                self._wake.clear()
                continue
            left = self._first_at + self._delay_s - time.monotonic()
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), left)
                self._wake.clear()
                continue
            try:
                await self._flush()
            except Exception as exc:
                if self._error is None:
                    self._error = exc
