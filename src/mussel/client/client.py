"""``Client``: the synchronous Python client of the HTTP API v1 (SPEC §4).

::

    from mussel import Client, Put

    with Client("http://127.0.0.1:7070") as c:
        c.put_namespace("shop")
        c.put_table("shop", "users", max_versions=3)
        c.put("shop", "users", "u1", "email", "a@example.com")
        c.get("shop", "users", "u1", "email")        # [Cell(sk=b'email', ts=..., value=...)]
        for cell in c.iter_scan("shop", "users"):    # follows cursors
            ...

Keys and values are ``bytes`` (``str`` is encoded as UTF-8) and come back as
``bytes``. Every failure is a ``MusselError``: the class of the SPEC §5 code
(``TableNotFoundError``, ``TooLargeError``, ...) with the server's ``http_status``;
no answer at all is ``UnavailableError``. Calls that are safe to repeat are
retried (see ``RetryPolicy``). A ``Client`` is thread-safe: share one per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
from msgspec import UNSET, UnsetType

from mussel.client._models import (
    BackupDescription,
    BackupReply,
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
from mussel.client.writer import Writer
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

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A client of one Mussel server.

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._api = Api(msgpack)
        self._retry = RetryPolicy(retries)
        self._sleep: Callable[[float], None] = time.sleep
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers=self._api.headers(token),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"Client({str(self._http.base_url)!r})"

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending --------------------------------------------------------------

    def _send(self, call: Call) -> httpx.Response:
        content, headers = self._api.body(call)
        failures = 0
        self._retry.earn()
        while True:
            retry_after = None
            try:
                with map_transport_errors(call):
                    resp = self._http.request(
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
            self._sleep(wait)

    def _call(self, call: Call, typ: type[T]) -> T:
        return self._api.decode(self._send(call), typ)

    # -- service --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok"}`` when the server is alive."""
        return self._call(self._api.health(), dict[str, Any])

    # -- namespaces -----------------------------------------------------------

    def put_namespace(
        self,
        name: str,
        consistency: Consistency | None = None,
        quotas: Quotas | Mapping[str, int | None] | None = None,
    ) -> NamespaceDescription:
        """Create a namespace, or update the settings given (None: leave as is)."""
        call = self._api.put_namespace(name, consistency, quotas)
        return self._call(call, NamespaceReply).namespace

    def namespace(self, name: str) -> NamespaceDescription:
        return self._call(self._api.namespace(name), NamespaceReply).namespace

    def namespaces(self) -> list[NamespaceDescription]:
        return self._call(self._api.namespaces(), NamespacesReply).namespaces

    def drop_namespace(self, name: str) -> None:
        """Drop an empty namespace (``ConflictError`` while it has tables)."""
        self._send(self._api.drop_namespace(name))

    # -- tables ---------------------------------------------------------------

    def put_table(
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
        return self._call(self._api.put_table(namespace, name, options), TableReply).table.public()

    def table(self, namespace: str, name: str) -> TableDescription:
        return self._call(self._api.table(namespace, name), TableReply).table.public()

    def tables(self, namespace: str) -> list[TableDescription]:
        return [t.public() for t in self._call(self._api.tables(namespace), TablesReply).tables]

    def hot_keys(self, namespace: str, table: str, limit: int = 20) -> list[HotKey]:
        """The table's busiest pks in the last seconds (reads and writes per second,
        counted in every server process), busiest first."""
        return (self._call(self._api.hot_keys(namespace, table, limit), HotKeysReply)).keys

    # -- tokens (SPEC §6; an admin token's calls) -----------------------------

    def create_token(self, scopes: Sequence[str], name: str = "") -> CreatedToken:
        """A new bearer token with these scopes (``admin``, ``<ns>:read``,
        ``<ns>:write``); its ``token`` (the secret) is shown only in this answer."""
        return self._call(self._api.create_token(scopes, name), CreatedToken)

    def tokens(self) -> list[TokenDescription]:
        """Every token: ids, names, scopes; never secrets."""
        return (self._call(self._api.tokens(), TokensReply)).tokens

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token: it stops working at once."""
        self._send(self._api.revoke_token(token_id))

    def backup(self, path: str) -> BackupDescription:
        """Back up the (embedded) server while it serves, into ``path``: a new directory
        inside the server's ``--backup-dir``, on the server's file system. An admin
        token's call. Give the client a ``timeout`` long enough to copy the data."""
        return self._call(self._api.backup(path), BackupReply).backup

    def expire(self, namespace: str, name: str) -> Expiration:
        """Start an expiration run of the table now (SPEC §4 ``POST .../expire``); returns
        its state. The run goes on in the server: ``table(...).expiration`` shows it."""
        return (self._call(self._api.expire(namespace, name), ExpireReply)).expiration

    def drop_table(self, namespace: str, name: str) -> None:
        """Drop a table and its data."""
        self._send(self._api.drop_table(namespace, name))

    # -- bulk loads and jobs ---------------------------------------------------

    def bulk_load(
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
    ) -> BulkLoad:
        """Start a bulk load of Parquet at ``source`` (a URL the server can read);
        returns a handle whose ``wait()`` blocks until the job is final (SPEC §2)."""
        body: dict[str, Any] = {"source": source, "mode": mode, "layout": layout}
        if columns is not None:
            body["columns"] = dict(columns)
        if ts is not None:
            body["ts"] = ts
        if job_id is not None:
            body["id"] = job_id
        job = self._call(self._api.bulk_load(namespace, table, body), JobReply).job
        return BulkLoad(self, job)

    def job(self, job_id: str) -> JobDescription:
        return self._call(self._api.job(job_id), JobReply).job

    def jobs(self, namespace: str | None = None) -> list[JobDescription]:
        return self._call(self._api.jobs(namespace), JobsReply).jobs

    def cancel_job(self, job_id: str) -> JobDescription:
        """Ask the server to cancel a job; the answer may still show it running."""
        return self._call(self._api.cancel_job(job_id), JobReply).job

    # -- writes ---------------------------------------------------------------

    def write(
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
        return self._call(call, Written).written

    def put(
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
        self.write(namespace, table, [Put(pk, sk, value, ts)], ack=ack)

    def delete(
        self,
        namespace: str,
        table: str,
        pk: Key,
        sk: Key = b"",
        *,
        ts: int | None = None,
        ack: Ack = "durable",
    ) -> None:
        self.write(namespace, table, [Delete(pk, sk, ts)], ack=ack)

    def writer(
        self,
        namespace: str,
        table: str,
        *,
        max_records: int = 500,
        max_delay_ms: float | None = 50,
        ack: Ack = "durable",
    ) -> Writer:
        """A batching writer: ``with client.writer("ns", "t") as w: w.put(...)``."""
        return Writer(
            self.write,
            namespace,
            table,
            max_records=max_records,
            max_delay_ms=max_delay_ms,
            ack=ack,
        )

    # -- reads ----------------------------------------------------------------

    def get(
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
            return self._call(call, RowPage).cells
        except KeyNotFoundError:
            return []

    def row(
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
        return self._call(call, RowPage)

    def iter_row(
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
    ) -> Iterator[Cell]:
        """Every cell of the row, following cursors (``limit`` is the page size)."""
        cursor: str | None = None
        while True:
            page = self.row(
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
            yield from page.cells
            if page.cursor is None:
                return
            cursor = page.cursor

    def multi_get(
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
        return self._call(call, MultiGetReply).results

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
        return self._call(call, ScanPage)

    def iter_scan(
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
    ) -> Iterator[ScanCell]:
        """Every cell the scan covers, following cursors (``limit`` is the page size)."""
        cursor: str | None = None
        while True:
            page = self.scan(
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
            yield from page.cells
            if page.cursor is None:
                return
            cursor = page.cursor


class BulkLoad:
    """A handle on a bulk-load job: ``job`` is its last known description."""

    def __init__(self, client: Client, job: JobDescription) -> None:
        self.client = client
        self.job = job

    def __repr__(self) -> str:
        return f"BulkLoad({self.job.id}, {self.job.state})"

    @property
    def id(self) -> str:
        return self.job.id

    def refresh(self) -> JobDescription:
        self.job = self.client.job(self.job.id)
        return self.job

    def cancel(self) -> JobDescription:
        self.job = self.client.cancel_job(self.job.id)
        return self.job

    def wait(
        self,
        timeout_s: float | None = None,
        *,
        poll_s: float = 0.2,
        on_progress: Callable[[JobDescription], None] | None = None,
    ) -> JobDescription:
        """Poll until the job is committed, failed or cancelled; returns it.
        ``on_progress`` sees every description polled. Raises ``TimeoutError``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.refresh()
            if on_progress is not None:
                on_progress(job)
            if job.done:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job.id} is still {job.state} after {timeout_s:g}s")
            time.sleep(poll_s)
