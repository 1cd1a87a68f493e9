"""``AsyncClient``: ``Client`` for asyncio, method for method.

::

    from mussel import AsyncClient

    async with AsyncClient("http://127.0.0.1:7070") as c:
        await c.put("shop", "users", "u1", "email", "a@example.com")
        cells = await c.get("shop", "users", "u1", "email")
        async for cell in c.iter_scan("shop", "users"):
            ...

The same requests, answers, errors and retries as ``Client`` (they are built in
``_transport.py``); only sending differs. ``aclose()`` closes it; use one per event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
from msgspec import UNSET, UnsetType

from mussel.client._models import (
    CreatedToken,
    Expiration,
    ExpireReply,
    HotKey,
    HotKeysReply,
    JobDescription,
    JobReply,
    JobsReply,
    NamespaceDescription,
    NamespaceReply,
    NamespacesReply,
    TableDescription,
    TableReply,
    TablesReply,
    TokenDescription,
    TokensReply,
    Written,
)
from mussel.client._transport import (
    Ack,
    Api,
    Call,
    Key,
    MultiGetReply,
    RetryPolicy,
    error_from_response,
    map_transport_errors,
    retry_after_s,
    table_options,
)
from mussel.client.writer import AsyncWriter
from mussel.errors import KeyNotFoundError, MusselError
from mussel.model import (
    Cell,
    Consistency,
    Delete,
    Partitioning,
    Put,
    Quotas,
    RowPage,
    ScanCell,
    ScanPage,
)

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of one Mussel server; the arguments are those of ``Client``.

    ``timeout`` is per request, in seconds. ``token`` is sent as a bearer token.
    ``msgpack=False`` speaks JSON (keys and values as base64) instead of msgpack.
    ``retries`` is how many times a call that is safe to repeat is sent again after
    an ``unavailable`` or ``rate_limited`` answer or no answer (0: never).
    ``transport`` replaces the HTTP transport, e.g. with ``httpx.MockTransport`` in tests.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:7070",
        *,
        timeout: float = 10.0,
        token: str | None = None,
        msgpack: bool = True,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api = Api(msgpack)
        self._retry = RetryPolicy(retries)
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers=self._api.headers(token),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AsyncClient({str(self._http.base_url)!r})"

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending --------------------------------------------------------------

    async def _send(self, call: Call) -> httpx.Response:
        content, headers = self._api.body(call)
        failures = 0
        self._retry.earn()
        while True:
            retry_after = None
            try:
                with map_transport_errors(call):
                    resp = await self._http.request(
                        call.method, call.path, params=call.params, content=content, headers=headers
                    )
                if resp.is_success:
                    return resp
                err = error_from_response(resp)
                retry_after = retry_after_s(resp)
            except MusselError as exc:
                err = exc
            failures += 1
            wait = self._retry.delay(call, failures, err, retry_after)
            if wait is None:
                raise err
            await self._sleep(wait)

    async def _call(self, call: Call, typ: type[T]) -> T:
        return self._api.decode(await self._send(call), typ)

    # -- service --------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok"}`` when the server is alive."""
        return await self._call(self._api.health(), dict[str, Any])

    # -- namespaces -----------------------------------------------------------

    async def put_namespace(
        self,
        name: str,
        consistency: Consistency | None = None,
        quotas: Quotas | Mapping[str, int | None] | None = None,
    ) -> NamespaceDescription:
        """Create a namespace, or update the settings given (None: leave as is)."""
        call = self._api.put_namespace(name, consistency, quotas)
        return (await self._call(call, NamespaceReply)).namespace

    async def namespace(self, name: str) -> NamespaceDescription:
        return (await self._call(self._api.namespace(name), NamespaceReply)).namespace

    async def namespaces(self) -> list[NamespaceDescription]:
        return (await self._call(self._api.namespaces(), NamespacesReply)).namespaces

    async def drop_namespace(self, name: str) -> None:
        """Drop an empty namespace (``ConflictError`` while it has tables)."""
        await self._send(self._api.drop_namespace(name))

    # -- tables ---------------------------------------------------------------

    async def put_table(
        self,
        namespace: str,
        name: str,
        *,
        ttl_seconds: int | UnsetType | None = UNSET,
        max_versions: int | UnsetType = UNSET,
        consistency: Consistency | UnsetType | None = UNSET,
        partitioning: Partitioning | Mapping[str, Any] | UnsetType = UNSET,
        expire_interval_s: int | UnsetType | None = UNSET,
    ) -> TableDescription:
        """Create a table, or update the options given (SPEC §1); others stay as they are.
        ``expire_interval_s``: seconds between scheduled expiration runs of the table
        (None: the server's interval)."""
        options = table_options(
            ttl_seconds, max_versions, consistency, partitioning, expire_interval_s
        )
        reply = await self._call(self._api.put_table(namespace, name, options), TableReply)
        return reply.table.public()

    async def table(self, namespace: str, name: str) -> TableDescription:
        return (await self._call(self._api.table(namespace, name), TableReply)).table.public()

    async def tables(self, namespace: str) -> list[TableDescription]:
        reply = await self._call(self._api.tables(namespace), TablesReply)
        return [t.public() for t in reply.tables]

    async def hot_keys(self, namespace: str, table: str, limit: int = 20) -> list[HotKey]:
        """The table's busiest pks in the last seconds (reads and writes per second,
        counted in every server process), busiest first."""
        return (await self._call(self._api.hot_keys(namespace, table, limit), HotKeysReply)).keys

    # -- tokens (SPEC §6; an admin token's calls) -----------------------------

    async def create_token(self, scopes: Sequence[str], name: str = "") -> CreatedToken:
        """A new bearer token with these scopes (``admin``, ``<ns>:read``,
        ``<ns>:write``); its ``token`` (the secret) is shown only in this answer."""
        return await self._call(self._api.create_token(scopes, name), CreatedToken)

    async def tokens(self) -> list[TokenDescription]:
        """Every token: ids, names, scopes; never secrets."""
        return (await self._call(self._api.tokens(), TokensReply)).tokens

    async def revoke_token(self, token_id: str) -> None:
        """Revoke a token: it stops working at once."""
        await self._send(self._api.revoke_token(token_id))

    async def expire(self, namespace: str, name: str) -> Expiration:
        """Start an expiration run of the table now (SPEC §4 ``POST .../expire``); returns
        its state. The run goes on in the server: ``table(...).expiration`` shows it."""
        return (await self._call(self._api.expire(namespace, name), ExpireReply)).expiration

    async def drop_table(self, namespace: str, name: str) -> None:
        """Drop a table and its data."""
        await self._send(self._api.drop_table(namespace, name))

    # -- bulk loads and jobs ---------------------------------------------------

    async def bulk_load(
        self,
        namespace: str,
        table: str,
        source: str,
        *,
        mode: str = "merge",
        layout: str = "cells",
        columns: Mapping[str, str] | None = None,
        ts: int | None = None,
        job_id: str | None = None,
    ) -> JobDescription:
        """Start a bulk load (see ``Client.bulk_load``); follow it with ``wait_job``."""
        body: dict[str, Any] = {"source": source, "mode": mode, "layout": layout}
        if columns is not None:
            body["columns"] = dict(columns)
        if ts is not None:
            body["ts"] = ts
        if job_id is not None:
            body["id"] = job_id
        return (await self._call(self._api.bulk_load(namespace, table, body), JobReply)).job

    async def job(self, job_id: str) -> JobDescription:
        return (await self._call(self._api.job(job_id), JobReply)).job

    async def jobs(self, namespace: str | None = None) -> list[JobDescription]:
        return (await self._call(self._api.jobs(namespace), JobsReply)).jobs

    async def cancel_job(self, job_id: str) -> JobDescription:
        return (await self._call(self._api.cancel_job(job_id), JobReply)).job

    async def wait_job(
        self, job_id: str, timeout_s: float | None = None, *, poll_s: float = 0.2
    ) -> JobDescription:
        """Poll until the job is committed, failed or cancelled (``TimeoutError`` after
        ``timeout_s``)."""
        async with asyncio.timeout(timeout_s):
            while True:
                job = await self.job(job_id)
                if job.done:
                    return job
                await asyncio.sleep(poll_s)

    # -- writes ---------------------------------------------------------------

    async def write(
        self,
        namespace: str,
        table: str,
        records: Sequence[Put | Delete],
        *,
        ack: Ack = "durable",
    ) -> int:
        """Write a batch, all of it or nothing; returns the number of records written.

        Retried on ``unavailable`` only if every record carries an explicit ``ts``.
        """
        call = self._api.write(namespace, table, records, ack)
        return (await self._call(call, Written)).written

    async def put(
        self,
        namespace: str,
        table: str,
        pk: Key,
        sk: Key = b"",
        value: Key = b"",
        *,
        ts: int | None = None,
        ack: Ack = "durable",
    ) -> None:
        await self.write(namespace, table, [Put(pk, sk, value, ts)], ack=ack)

    async def delete(
        self,
        namespace: str,
        table: str,
        pk: Key,
        sk: Key = b"",
        *,
        ts: int | None = None,
        ack: Ack = "durable",
    ) -> None:
        await self.write(namespace, table, [Delete(pk, sk, ts)], ack=ack)

    def writer(
        self,
        namespace: str,
        table: str,
        *,
        max_records: int = 500,
        max_delay_ms: float | None = 50,
        ack: Ack = "durable",
    ) -> AsyncWriter:
        """A batching writer: ``async with client.writer("ns", "t") as w: await w.put(...)``.

        Its timer is a task on the running event loop.
        """
        return AsyncWriter(
            self.write,
            namespace,
            table,
            max_records=max_records,
            max_delay_ms=max_delay_ms,
            ack=ack,
        )

    # -- reads ----------------------------------------------------------------

    async def get(
        self,
        namespace: str,
        table: str,
        pk: Key,
        sk: Key = b"",
        *,
        versions: int = 1,
        min_ts: int | None = None,
        max_ts: int | None = None,
        consistency: Consistency | None = None,
    ) -> list[Cell]:
        """The visible versions of one cell, newest first; empty if there is none."""
        call = self._api.row(
            namespace,
            table,
            pk,
            sk=sk,
            versions=versions,
            limit=versions,
            min_ts=min_ts,
            max_ts=max_ts,
            consistency=consistency,
        )
        try:
            return (await self._call(call, RowPage)).cells
        except KeyNotFoundError:
            return []

    async def row(
        self,
        namespace: str,
        table: str,
        pk: Key,
        *,
        sk_prefix: Key | None = None,
        sk_start: Key | None = None,
        sk_end: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int = 1,
        limit: int | None = None,
        cursor: str | None = None,
        consistency: Consistency | None = None,
    ) -> RowPage:
        """A page of a row (sk ascending, newest first); ``cursor`` is None on the last."""
        call = self._api.row(
            namespace,
            table,
            pk,
            sk_prefix=sk_prefix,
            sk_start=sk_start,
            sk_end=sk_end,
            min_ts=min_ts,
            max_ts=max_ts,
            versions=versions,
            limit=limit,
            cursor=cursor,
            consistency=consistency,
        )
        return await self._call(call, RowPage)

    async def iter_row(
        self,
        namespace: str,
        table: str,
        pk: Key,
        *,
        sk_prefix: Key | None = None,
        sk_start: Key | None = None,
        sk_end: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int = 1,
        limit: int | None = None,
        consistency: Consistency | None = None,
    ) -> AsyncIterator[Cell]:
        """Every cell of the row, following cursors (``limit`` is the page size)."""
        cursor: str | None = None
        while True:
            page = await self.row(
                namespace,
                table,
                pk,
                sk_prefix=sk_prefix,
                sk_start=sk_start,
                sk_end=sk_end,
                min_ts=min_ts,
                max_ts=max_ts,
                versions=versions,
                limit=limit,
                cursor=cursor,
                consistency=consistency,
            )
            for cell in page.cells:
                yield cell
            if page.cursor is None:
                return
            cursor = page.cursor

    async def multi_get(
        self,
        namespace: str,
        table: str,
        keys: Sequence[tuple[Key, Key | None]],
        *,
        versions: int = 1,
        consistency: Consistency | None = None,
    ) -> list[RowPage]:
        """One page per key, in order: ``(pk, sk)`` a cell's versions, ``(pk, None)`` the row."""
        call = self._api.multi_get(namespace, table, keys, versions, consistency)
        return (await self._call(call, MultiGetReply)).results

    async def scan(
        self,
        namespace: str,
        table: str,
        *,
        pk_start: Key | None = None,
        pk_end: Key | None = None,
        pk_prefix: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int = 1,
        limit: int | None = None,
        cursor: str | None = None,
        consistency: Consistency | None = None,
    ) -> ScanPage:
        """A page of the table's cells in (pk, sk) order; ``[pk_start, pk_end)``."""
        call = self._api.scan(
            namespace,
            table,
            pk_start=pk_start,
            pk_end=pk_end,
            pk_prefix=pk_prefix,
            min_ts=min_ts,
            max_ts=max_ts,
            versions=versions,
            limit=limit,
            cursor=cursor,
            consistency=consistency,
        )
        return await self._call(call, ScanPage)

    async def iter_scan(
        self,
        namespace: str,
        table: str,
        *,
        pk_start: Key | None = None,
        pk_end: Key | None = None,
        pk_prefix: Key | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        versions: int = 1,
        limit: int | None = None,
        consistency: Consistency | None = None,
    ) -> AsyncIterator[ScanCell]:
        """Every cell the scan covers, following cursors (``limit`` is the page size)."""
        cursor: str | None = None
        while True:
            page = await self.scan(
                namespace,
                table,
                pk_start=pk_start,
                pk_end=pk_end,
                pk_prefix=pk_prefix,
                min_ts=min_ts,
                max_ts=max_ts,
                versions=versions,
                limit=limit,
                cursor=cursor,
                consistency=consistency,
            )
            for cell in page.cells:
                yield cell
            if page.cursor is None:
                return
            cursor = page.cursor
