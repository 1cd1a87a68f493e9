"""The HTTP API v1 (SPEC §4) as one request pipeline over a ``Store``.

Pipeline of every request: route → (auth, quotas: the tenancy issue's stages slot
in here) → handler → encode → metrics. Handlers are plain functions on the event
loop when they cannot block (reads that need no wait, catalog calls) and
coroutines when they wait (writes wait for the log's fsync; strong reads that
must wait for the replayer do so in a thread). Every ``MusselError`` becomes the
SPEC §5 envelope in one place (``errors.py``); nothing a client sends can cause a
500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_to_bytes

import msgspec

from mussel.bulkload import JobInfo, JobManager
from mussel.bulkload.jobs import JobService
from mussel.bulkload.presplit import resolve_presplit
from mussel.catalog import UNSET
from mussel.catalog.tokens import Right
from mussel.dispatch import dashboard
from mussel.dispatch.auth import Authorizer, require
from mussel.dispatch.bodies import (
    BackupBody,
    BulkLoadBody,
    GetBody,
    NamespaceBody,
    TableBody,
    TokenBody,
    WriteBody,
    given,
)
from mussel.dispatch.errors import error_to_response, method_not_allowed, not_found
from mussel.dispatch.http import Request, Response
from mussel.dispatch.metrics import ServerMetrics
from mussel.dispatch.openapi import openapi_document
from mussel.dispatch.proxy import INTERNAL_CERT, OwnerProxy
from mussel.dispatch.quotas import Rates
from mussel.dispatch.wire import Wire
from mussel.engine import Store
from mussel.engine.backup import create_backup
from mussel.errors import (
    InvalidRequestError,
    KeyNotFoundError,
    MusselError,
    NamespaceNotFoundError,
    NotFoundError,
    TableNotFoundError,
    UnavailableError,
)
from mussel.expire import ExpirationService
from mussel.model import Delete, Mutation, NamespaceInfo, Put, TableInfo, check_name
from mussel.observability.logging import AccessLog, RequestIds

__all__ = ["App"]

log = logging.getLogger("mussel.dispatch")

Handler = Callable[..., "Response | Awaitable[Response]"]

_ROW_PARAMS = {
    "sk", "sk_prefix", "sk_start", "sk_end", "min_ts", "max_ts", "versions", "limit",
    "cursor", "consistency", "encoding",
}  # fmt: skip
_POINT_PARAMS = {"sk", "consistency", "encoding"}
_SCAN_PARAMS = {
    "pk_start", "pk_end", "pk_prefix", "min_ts", "max_ts", "versions", "limit", "cursor",
    "consistency", "encoding",
}  # fmt: skip


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    """The query parameters, percent-decoded to one character per byte (latin-1), so
    that keys keep their exact bytes (see ``_key_param``)."""
    qs = request.query_string.decode("latin-1")
    if "%" not in qs and "+" not in qs:  # the common case, without parse_qsl's cost
        pairs = [part.partition("=")[::2] for part in qs.split("&") if part]
    else:
        try:
            pairs = parse_qsl(qs, keep_blank_values=True, strict_parsing=False, encoding="latin-1")
        except ValueError as exc:
            raise InvalidRequestError(f"malformed query string: {exc}") from exc
    out: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
            raise InvalidRequestError(
                f"unknown query parameter {name!r}; this endpoint takes {takes}"
            )
        if name in out:
            raise InvalidRequestError(f"query parameter {name!r} given twice")
        out[name] = value
    return out


def _int(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return int(raw, 10)
    except ValueError:
        raise InvalidRequestError(f"{name} must be an integer, not {raw!r}") from None


def _consistency(params: dict[str, str]) -> Any:
    value = params.get("consistency")
    if value is not None and value not in ("strong", "eventual"):
        raise InvalidRequestError("consistency must be 'strong' or 'eventual'")
    return value


def _base64(params: dict[str, str]) -> bool:
    encoding = params.get("encoding")
    if encoding is None:
        return False
    if encoding != "base64":
        raise InvalidRequestError("encoding must be 'base64' (or absent, for UTF-8 text)")
    return True


def _key_param(params: dict[str, str], name: str, wire: Wire) -> bytes:
    """A key given in the query: its bytes (UTF-8 text), or base64 text."""
    raw = params[name]
    if wire.base64:
        return wire.key(raw, name)
    return raw.encode("latin-1")


def _path_bytes(raw: str) -> bytes:
    """The bytes of a %-encoded path segment (``Request.path`` is latin-1 text)."""
    if "%" not in raw:
        return raw.encode("latin-1")
    return unquote_to_bytes(raw.encode("latin-1"))


_WIRES: dict[tuple[str, str, bool], Wire] = {}


def _wire(content_type: str, accept: str, base64_mode: bool) -> Wire:
    """``Wire(content_type, accept, base64_mode)``, shared between requests that send
    the same headers (a ``Wire`` is never changed once made)."""
    key = (content_type, accept, base64_mode)
    wire = _WIRES.get(key)
    if wire is None:
        wire = Wire(content_type, accept, base64_mode)
        if len(_WIRES) < 256:  # header values are the client's: keep a bounded few
            _WIRES[key] = wire
    return wire


def _get_keys(given: list[Any], wire: Wire) -> list[tuple[bytes, bytes | None]]:
    """A multi-get's keys as bytes; a key that does not decode is ``InvalidRequestError``
    naming it (``keys[i].pk``). UTF-8 text (JSON without base64) takes a fast path."""
    if not wire.base64 and not wire.msgpack_in:  # JSON decodes keys as str: no failure
        return [
            (
                k.pk.encode("utf-8", "surrogatepass"),
                None if k.sk is None else k.sk.encode("utf-8", "surrogatepass"),
            )
            for k in given
        ]
    return [
        (
            wire.key(k.pk, f"keys[{i}].pk"),
            None if k.sk is None else wire.key(k.sk, f"keys[{i}].sk"),
        )
        for i, k in enumerate(given)
    ]


@functools.lru_cache(maxsize=4096)
def _name(raw: str, what: str) -> str:
    """A namespace or table name from its path segment; 400 unless it is a valid name."""
    try:
        name = _path_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"the {what} name in the path is not UTF-8") from None
    return check_name(name, f"{what} name")


_FOLLOWER_OPS = frozenset({"read_row", "get", "scan", "write"})
"""What a follower process handles itself (besides /healthz, /readyz, /openapi.json):
reads, and writes, which it decodes and validates before handing the records over."""
_LOCAL_OPS = _FOLLOWER_OPS | {"healthz", "readyz", "openapi.json"}
_RATED = {"read_row": "read", "get": "read", "scan": "read", "write": "write"}
"""Operations a namespace's rate quotas count (read_qps, write_qps)."""
_SLOW_OPS = {"backup": 24 * 3600.0}
"""Operations a follower waits longer for the owner to answer than the proxy's default
(seconds): a backup copies the whole store before it answers."""
_INLINE_OPS = frozenset({"healthz", "readyz", "openapi.json", "metrics"})
"""What an App with an ``offload`` pool still runs on the event loop: no database call."""
_APPEND = "append"
"""``Mussel-Internal`` of a write handed over by a follower, already validated."""


class _Append(msgspec.Struct, array_like=True):
    """The body of a handed-over write: records ``Store.prepare_write`` made."""

    table_id: int
    ack: Literal["durable", "applied"]
    records: list[Mutation]


class _CellOut(msgspec.Struct):
    """A cell of a point read's answer (``responses.RowReply``), encoded as a dict is."""

    sk: str | bytes
    ts: int
    value: str | bytes


class _RowOut(msgspec.Struct):
    """A row of a point read's answer (with ``cursor``: null) or of a multi-get's
    (without: it is left out as the default)."""

    pk: str | bytes
    cells: list[_CellOut]
    cursor: str | msgspec.UnsetType | None = msgspec.UNSET


class _ResultsOut(msgspec.Struct):
    results: list[_RowOut]


class App:
    """The ASGI-free application: ``app(request) -> Response | Awaitable[Response]``.

    In a follower process (``proxy`` given, ``store`` a follower view) the App
    serves reads and hands every other request to the owner through ``proxy``.
    """

    def __init__(
        self,
        store: Store,
        metrics: ServerMetrics | None = None,
        proxy: OwnerProxy | None = None,
        jobs: JobService | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or ServerMetrics(store)
        self.ready = True
        self.proxy = proxy
        self.auth: Authorizer | None = None
        """Set with ``--auth token``: every request but the open ones needs a token."""
        self.max_inflight = 4096
        """Requests waiting (on the log, the replayer, the owner) past which new ones are
        shed with 503 before the server falls over."""
        self.online_latency_target_s = 0.05
        """While this process's recent read p99 is above it, batch requests get 503."""
        self._inflight = 0
        self.rates: Rates | None = None
        """The rate quotas' buckets, shared by every process of the server."""
        self.expiration: ExpirationService | None = None
        """The owner's expiration service (``POST .../expire``, a table's ``expiration``)."""
        self.refresh_peers: Callable[[], Awaitable[None]] | None = None
        """In the owner of several processes: refreshes ``metrics.peers`` (awaited
        before ``/metrics`` renders, so that it counts every process's requests)."""
        self._openapi: bytes | None = None
        self._jobs = jobs
        self.offload: concurrent.futures.Executor | None = None
        """Distributed mode: every handler that may call the database (a network round
        trip, not a local RocksDB lookup) runs in this pool, off the event loop."""
        self.ready_check: Callable[[], bool] = lambda: True
        """More of what ``/readyz`` requires (distributed mode: every store's backend
        and log answer)."""
        self.data_api = True
        """False in a process that serves no data (a replayer or worker process): every
        ``/v1`` request gets 404 with a message that names the role."""
        self.dashboard = dashboard.Sampler(self.metrics, store)
        """The dashboard's history (sampled by ``Sampler.run`` in the owner process)."""
        self.tls = False
        """Whether clients reach this server over TLS (the dashboard's cookie is Secure)."""
        self.access_log: AccessLog | None = None
        """``--access-log``: one structured line per answered request."""
        self.request_ids = RequestIds()
        self.backup_dir: Path | None = None
        """``--backup-dir``: ``POST /v1/admin/backup`` writes only inside it (off if None)."""
        self._data_posts: dict[str, Callable[[Request, str, str], Any]] = {
            "write": self._write,
            "get": self._multi_get,
        }
        """The routing fast path's POST actions (``_dispatch``; the general routes agree)."""

    @property
    def jobs(self) -> JobService:
        """The bulk-load jobs (created on first use when none was given): a
        ``JobManager`` in embedded mode, ``ClusterJobs`` (jobs in the database, run by
        workers) in a distributed dispatcher."""
        if self._jobs is None:
            if self.store.role == "dispatcher":
                from mussel.bulkload.cluster import ClusterJobs  # noqa: PLC0415 (SQL only)

                self._jobs = ClusterJobs(self.store)
            elif self.store.role == "embedded":
                # only the process that owns the data may run jobs (a JobManager aborts
                # pending epochs at start); followers hand job requests to the owner
                assert self.proxy is None, "a follower process must not run bulk loads"
                self._jobs = JobManager(self.store)
            else:
                raise InvalidRequestError(
                    f"a {self.store.role} process serves no bulk loads; ask a dispatcher"
                )
        return self._jobs

    def close(self) -> None:
        """Stop background work (running bulk loads are cancelled)."""
        if self._jobs is not None:
            self._jobs.close()

    # -- entry point ----------------------------------------------------------

    def __call__(self, request: Request) -> Response | Awaitable[Response]:
        started = time.perf_counter()
        rid = request.headers.get("x-request-id")
        request.request_id = rid = self.request_ids.of(rid)
        try:
            op, ns, table, handler = self._dispatch(request)
        except MusselError as exc:  # no such endpoint, method or name: no labels
            return self._failed(exc, request, "unknown", "", "", started)
        if request.internal and request.headers.get("mussel-internal") == _APPEND:
            return self._appended(request, ns, table)  # the follower counts it
        if self.proxy is not None:
            if op not in _LOCAL_OPS:  # the owner answers, counts, logs and tags it
                request.headers["x-request-id"] = rid
                return self._forwarded(request, _SLOW_OPS.get(op))
            if op in _FOLLOWER_OPS:
                follower = self.store.follower
                assert follower is not None
                try:
                    follower.ensure_catalog()
                except MusselError as exc:
                    return self._failed(exc, request, op, ns, table, started)
        if self.auth is not None:
            if request.internal:  # handed over by a follower: its client's certificate
                request.cert_name = request.headers.get(INTERNAL_CERT)
            try:
                request.principal = self.auth.check(request, op, ns)
            except MusselError as exc:  # no names in the labels of refused requests
                if op == "dashboard" and "text/html" in request.header("accept"):
                    page = dashboard.login_page(exc.http_status, exc.message)
                    return self._observed(page, request, op, "", "", started)
                return self._failed(exc, request, op, "", "", started)
        try:
            self._admit(request)
        except MusselError as exc:
            self.metrics.shed(ns, request.headers.get("mussel-priority", "online"))
            return self._failed(exc, request, op, ns, table, started)
        if self.offload is not None and op not in _INLINE_OPS:
            if self.rates is not None and op in _RATED:  # (may ask the database)
                handler = self._rated(handler, ns, _RATED[op])
            self._inflight += 1
            return self._finish(self._offloaded(handler), request, op, ns, table, started)
        if self.rates is not None and op in _RATED:
            try:
                self._take_rate(ns, _RATED[op])
            except MusselError as exc:
                return self._failed(exc, request, op, ns, table, started)
        try:
            result = handler()
        except MusselError as exc:
            return self._failed(exc, request, op, ns, table, started)
        if isinstance(result, Response):
            return self._observed(result, request, op, ns, table, started)
        self._inflight += 1
        return self._finish(result, request, op, ns, table, started)

    async def _offloaded(self, handler: Callable[[], Any]) -> Response:
        """Run ``handler`` in the ``offload`` pool; await what it returns if it must wait."""
        result = await asyncio.get_running_loop().run_in_executor(self.offload, handler)
        if isinstance(result, Response):
            return result
        resp: Response = await result
        return resp

    def _failed(
        self, exc: MusselError, request: Request, op: str, ns: str, table: str, started: float
    ) -> Response:
        if isinstance(exc, NamespaceNotFoundError | TableNotFoundError):
            ns = table = ""  # unknown names must not create series
        elif ns:
            ns, table = self.metrics.labels(ns, table)  # nor on any other refusal
        return self._observed(error_to_response(exc, request), request, op, ns, table, started)

    def _observed(
        self, resp: Response, request: Request, op: str, ns: str, table: str, started: float
    ) -> Response:
        """Every answered request passes here once: metrics, the access log, and the
        ``X-Request-Id`` header of the answer."""
        self.metrics.observe(op, ns, table, resp.status, started)
        if self.access_log is not None:
            self.access_log.request(
                request.request_id,
                request.method,
                op,
                ns,
                table,
                resp.status,
                time.perf_counter() - started,
            )
        resp.headers.append(("x-request-id", request.request_id))
        return resp

    async def _finish(
        self,
        pending: Awaitable[Response],
        request: Request,
        op: str,
        ns: str,
        table: str,
        started: float,
    ) -> Response:
        try:
            resp = await pending
        except MusselError as exc:
            return self._failed(exc, request, op, ns, table, started)
        finally:
            self._inflight -= 1
        return self._observed(resp, request, op, ns, table, started)

    def _appended(self, request: Request, ns: str, table: str) -> Response | Awaitable[Response]:
        """A write a follower validated (``_Append``): append it, answer as ``_write``."""
        wire = Wire("", request.header("accept"), False)
        try:
            body = msgspec.msgpack.decode(request.body, type=_Append)
            pending = self.store.submit_mutations(ns, table, body.table_id, body.records)
        except msgspec.DecodeError as exc:
            return error_to_response(InvalidRequestError(f"bad hand-over: {exc}"), request)
        except MusselError as exc:
            return error_to_response(exc, request)
        return self._unless_failed(
            self._await_write(len(body.records), pending, body.ack, wire), request
        )

    @staticmethod
    async def _unless_failed(pending: Awaitable[Response], request: Request) -> Response:
        try:
            return await pending
        except MusselError as exc:
            return error_to_response(exc, request)

    def _admit(self, request: Request) -> None:
        """Priorities (SPEC §7): batch work waits while online reads are slow; past
        ``max_inflight`` waiting requests, every new one is shed (503 + Retry-After)."""
        priority = request.headers.get("mussel-priority")
        if priority is not None and priority not in ("online", "batch"):
            raise InvalidRequestError("Mussel-Priority must be online or batch")
        if self._inflight >= self.max_inflight:
            raise UnavailableError(
                f"overloaded: {self._inflight} requests in flight; retry shortly",
                retry_after_s=1.0,
            )
        if priority == "batch":
            p99 = self.metrics.online_p99()
            if p99 is not None and p99 > self.online_latency_target_s:
                raise UnavailableError(
                    f"batch requests wait while online reads are slow (p99 "
                    f"{p99 * 1000:.0f} ms, target {self.online_latency_target_s * 1000:.0f} ms)",
                    retry_after_s=1.0,
                )

    def _rated(self, handler: Callable[[], Any], ns: str, kind: str) -> Callable[[], Any]:
        """``handler`` after taking a rate token (in the offload pool, off the loop)."""

        def rated() -> Any:
            self._take_rate(ns, kind)
            return handler()

        return rated

    def _take_rate(self, ns: str, kind: str) -> None:
        """One request against the namespace's ``read_qps``/``write_qps`` (429 past it)."""
        assert self.rates is not None
        try:
            quotas = self.store.catalog.get_namespace(ns).quotas
        except NamespaceNotFoundError:
            return  # the handler answers 404
        limit = quotas.read_qps if kind == "read" else quotas.write_qps
        if limit is not None:
            try:
                self.rates.take(ns, kind, float(limit))
            except MusselError:
                self.metrics.throttled(ns, kind)
                raise

    async def _forwarded(self, request: Request, timeout_s: float | None = None) -> Response:
        assert self.proxy is not None
        try:
            return await self.proxy.forward(request, timeout_s)
        except MusselError as exc:
            resp = error_to_response(exc, request)
            resp.headers.append(("x-request-id", request.request_id))
            return resp

    def _dispatch(self, request: Request) -> tuple[str, str, str, Callable[[], Any]]:
        """Route; return (operation, namespace, table, handler).

        Raises for an unknown endpoint, a method it does not take, or a name in the
        path that is not a valid name (SPEC §1: 400 ``invalid_request``).
        """
        path = request.path
        method = request.method
        if path.startswith("/v1/namespaces/") and self.data_api:  # the data endpoints
            parts = path.split("/")  # "", "v1", "namespaces", ns, "tables", table, ...
            n = len(parts)
            if n == 8 and parts[6] == "rows" and parts[4] == "tables" and method == "GET":
                ns, table = _name(parts[3], "namespace"), _name(parts[5], "table")
                return (
                    "read_row",
                    ns,
                    table,
                    functools.partial(self._read_row, request, ns, table, parts[7]),
                )
            if n == 7 and parts[4] == "tables" and method == "POST":
                post = self._data_posts.get(parts[6])
                if post is not None:
                    ns, table = _name(parts[3], "namespace"), _name(parts[5], "table")
                    return parts[6], ns, table, functools.partial(post, request, ns, table)
        if not path.startswith("/"):  # "*" (OPTIONS *) or another odd target
            raise not_found(path)
        parts = path.split("/")[1:]
        n = len(parts)
        if n == 1:
            simple = {
                "healthz": self._healthz,
                "readyz": self._readyz,
                "metrics": self._metrics,
                "openapi.json": self._openapi_json,
            }.get(parts[0])
            if simple is not None:
                if method not in ("GET", "HEAD"):
                    raise method_not_allowed(method, "GET")
                return parts[0], "", "", simple
            if parts[0] != "dashboard":
                raise not_found(request.path)
        if not self.data_api:
            raise NotFoundError(
                f"{request.path} is not served here: this process only applies the log or "
                "runs background work; send API requests to a dispatcher"
            )
        if parts[0] == "dashboard":
            return self._dashboard_route(request, parts)
        if parts[0] == "v1" and n >= 2 and parts[1] == "jobs":
            return self._jobs_route(request, parts)
        if parts[0] == "v1" and n >= 2 and parts[1] == "tokens":
            return self._tokens_route(request, parts)
        if parts[0] == "v1" and n == 3 and parts[1] == "admin" and parts[2] == "backup":
            if method != "POST":
                raise method_not_allowed(method, "POST")
            return "backup", "", "", lambda: self._backup(request)
        if parts[0] != "v1" or n < 2 or parts[1] != "namespaces":
            raise not_found(request.path)
        if n == 2:
            handlers = {"GET": lambda: self._list_namespaces(request)}
            return "list_namespaces", "", "", self._route(method, handlers)
        if n > 7 or (n > 3 and parts[3] != "tables"):
            raise not_found(request.path)
        ns = _name(parts[2], "namespace")
        if n == 3:
            handlers = {
                "GET": lambda: self._get_namespace(request, ns),
                "PUT": lambda: self._put_namespace(request, ns),
                "DELETE": lambda: self._delete_namespace(request, ns),
            }
            return f"namespace_{method.lower()}", ns, "", self._route(method, handlers)
        if n == 4:
            handlers = {"GET": lambda: self._list_tables(request, ns)}
            return "list_tables", ns, "", self._route(method, handlers)
        table = _name(parts[4], "table")
        if n == 5:
            handlers = {
                "GET": lambda: self._get_table(request, ns, table),
                "PUT": lambda: self._put_table(request, ns, table),
                "DELETE": lambda: self._delete_table(request, ns, table),
            }
            return f"table_{method.lower()}", ns, table, self._route(method, handlers)
        action = parts[5]
        if n == 6:
            routes: dict[str, tuple[str, Callable[[], Any]]] = {
                "write": ("POST", lambda: self._write(request, ns, table)),
                "get": ("POST", lambda: self._multi_get(request, ns, table)),
                "scan": ("GET", lambda: self._scan(request, ns, table)),
                "expire": ("POST", lambda: self._expire(request, ns, table)),
                "hotkeys": ("GET", lambda: self._hot_keys(request, ns, table)),
                "bulkloads": ("POST", lambda: self._bulk_load(request, ns, table)),
            }
            if action in routes:
                want, handler = routes[action]
                if method != want:
                    raise method_not_allowed(method, want)
                return action, ns, table, handler
        if n == 7 and action == "rows":
            if method != "GET":
                raise method_not_allowed(method, "GET")
            return "read_row", ns, table, lambda: self._read_row(request, ns, table, parts[6])
        raise not_found(request.path)

    def _jobs_route(
        self, request: Request, parts: list[str]
    ) -> tuple[str, str, str, Callable[[], Any]]:
        method, n = request.method, len(parts)
        if n == 2:
            handlers = {"GET": lambda: self._list_jobs(request)}
            return "list_jobs", "", "", self._route(method, handlers)
        job_id = _path_bytes(parts[2]).decode("utf-8", "replace")
        if n == 3:
            handlers = {"GET": lambda: self._job_reply(request, self._job(request, job_id))}
            return "get_job", "", "", self._route(method, handlers)
        if n == 4 and parts[3] == "cancel":
            handlers = {
                "POST": lambda: self._job_reply(
                    request, self._job(request, job_id, "write", self.jobs.cancel)
                )
            }
            return "cancel_job", "", "", self._route(method, handlers)
        raise not_found(request.path)

    def _dashboard_route(
        self, request: Request, parts: list[str]
    ) -> tuple[str, str, str, Callable[[], Any]]:
        method, n = request.method, len(parts)
        handlers: dict[str, Callable[[], Any]]
        if n == 1:
            op, handlers = "dashboard", {"GET": lambda: self._dashboard_file(request, "index.html")}
        elif n == 2 and parts[1] == "data.json":
            op, handlers = "dashboard_data", {"GET": lambda: self._dashboard_data(request)}
        elif n == 2 and parts[1] == "login":
            op, handlers = "dashboard_login", {"POST": lambda: self._dashboard_login(request)}
        elif n == 3 and parts[1] == "static":
            name = parts[2]
            if name not in dashboard.STATIC:
                raise NotFoundError(f"no such dashboard file: {name[:100]!r}")
            op = "dashboard_static"
            handlers = {"GET": lambda: self._dashboard_file(request, name)}
        else:
            raise not_found(request.path)
        if method == "HEAD" and "GET" in handlers:
            method = "GET"
        return op, "", "", self._route(method, handlers)

    def _tokens_route(
        self, request: Request, parts: list[str]
    ) -> tuple[str, str, str, Callable[[], Any]]:
        method, n = request.method, len(parts)
        if n == 2:
            handlers = {
                "GET": lambda: self._list_tokens(request),
                "POST": lambda: self._create_token(request),
            }
            op = {"GET": "list_tokens", "POST": "create_token"}.get(method, "tokens")
            return op, "", "", self._route(method, handlers)
        if n == 3:
            token_id = _path_bytes(parts[2]).decode("utf-8", "replace")
            handlers = {"DELETE": lambda: self._revoke_token(request, token_id)}
            return "revoke_token", "", "", self._route(method, handlers)
        raise not_found(request.path)

    @staticmethod
    def _route(method: str, handlers: dict[str, Callable[[], Any]]) -> Callable[[], Any]:
        handler = handlers.get(method)
        if handler is None:
            raise method_not_allowed(method, ", ".join(handlers))
        return handler

    # -- service endpoints ----------------------------------------------------

    def _healthz(self) -> Response:
        return Response(200, b'{"status":"ok"}')

    def _readyz(self) -> Response:
        if not self.ready:
            raise UnavailableError("not ready: the server is starting or stopping")
        if self.store.replayer.error is not None or not self.ready_check():
            why = self.store.replayer.error or "the log or the database is unreachable"
            raise UnavailableError(f"not ready: {why}")
        return Response(200, b'{"status":"ready"}')

    def _with_peers(self, answer: Callable[[], Response]) -> Response | Awaitable[Response]:
        """``answer()``, after refreshing the other processes' metrics if there are any."""
        if self.refresh_peers is None:
            return answer()
        return self._after_refresh(self.refresh_peers(), answer)

    @staticmethod
    async def _after_refresh(
        refreshed: Awaitable[None], answer: Callable[[], Response]
    ) -> Response:
        await refreshed
        return answer()

    def _metrics(self) -> Response | Awaitable[Response]:
        def answer() -> Response:
            return Response(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")

        if self.offload is not None:  # the gauges ask the database: off the event loop
            return self._with_peers_async(self._offloaded(answer))
        return self._with_peers(answer)

    async def _with_peers_async(self, answer: Awaitable[Response]) -> Response:
        """``await answer``, after refreshing the other processes' metrics if any."""
        if self.refresh_peers is not None:
            await self.refresh_peers()
        return await answer

    def _openapi_json(self) -> Response:
        if self._openapi is None:
            self._openapi = openapi_document()
        return Response(200, self._openapi)

    # -- the dashboard ----------------------------------------------------------

    @staticmethod
    def _dashboard_file(request: Request, name: str) -> Response:
        if name == "index.html":  # ?refresh=S: how often the page polls (read by its script)
            dashboard.check_refresh(_query(request, {"refresh"}).get("refresh"))
        else:
            _query(request, set())
        return dashboard.static_file(name)

    def _dashboard_login(self, request: Request) -> Response:
        """The sign-in form: a valid admin token becomes the dashboard's cookie."""
        _query(request, set())
        token = dashboard.parse_login(request)
        if self.auth is not None:
            info = self.store.catalog.authenticate(token)
            if info is None:
                return dashboard.login_page(401, "That token is not valid (unknown or revoked).")
            if "admin" not in info.scopes:
                return dashboard.login_page(
                    403, "The dashboard needs a token with the admin scope."
                )
        secure = request.header("x-forwarded-proto") == "https" or self.tls
        headers = [
            ("location", "/dashboard"),
            ("set-cookie", dashboard.login_cookie(token, secure)),
            ("cache-control", "no-store"),
        ]
        return Response(303, b"", "text/plain; charset=utf-8", headers)

    def _dashboard_data(self, request: Request) -> Response | Awaitable[Response]:
        """Everything the dashboard shows, in one answer (``DashboardReply``)."""
        _query(request, set())
        return self._with_peers(lambda: _reply(request, self._dashboard_json()))

    def _dashboard_json(self) -> dict[str, Any]:
        keys = Wire("", "", True)  # split points as base64: any bytes fit
        namespaces = self.store.namespaces()
        tables = [t for ns in namespaces for t in self.store.tables(ns.name)]
        hot: list[dict[str, Any]] = []
        for t in tables:
            for pk, rate in self.metrics.hot_keys(t.namespace, t.name, 10):
                hot.append(
                    {
                        "namespace": t.namespace,
                        "table": t.name,
                        "pk": pk.decode("utf-8", "backslashreplace"),
                        "per_s": round(rate, 3),
                    }
                )
        hot.sort(key=lambda h: -h["per_s"])
        jobs = self.jobs.list() if self.proxy is None and self.offload is None else []
        lag = {part: int(n) for (part,), n in self.metrics.replay_lag()}
        return {
            "now_us": int(time.time() * 1e6),
            "sample_interval_s": self.dashboard.interval_s,
            "namespaces": [self._namespace_json(ns) for ns in namespaces],
            "tables": [self._table_json(t, keys) for t in tables],
            "jobs": [_job_json(j) for j in jobs[-50:]],
            "replay": {
                "lag_records": sum(lag.values()),
                "partitions": [{"partition": p, "lag_records": n} for p, n in sorted(lag.items())],
                "staleness_s": self.store.staleness_ms() / 1000.0,
                "applied_records": self.store.replayer.applied_records,
            },
            "latency": self.dashboard.latency(),
            "hot_keys": hot[:20],
            "history": self.dashboard.history.to_json(),
        }

    # -- namespaces -----------------------------------------------------------

    def _namespace_json(self, ns: NamespaceInfo) -> dict[str, Any]:
        tables = self.store.tables(ns.name)
        nbytes = self.store.namespace_bytes(ns.name)
        quotas = {
            "storage_bytes": ns.quotas.storage_bytes,
            "read_qps": ns.quotas.read_qps,
            "write_qps": ns.quotas.write_qps,
            "tables": ns.quotas.tables,
        }
        reads, writes = self.metrics.rates(ns.name)
        throttled, shed = self.metrics.refused(ns.name)
        usage = {
            "bytes": nbytes,
            "tables": len(tables),
            "read_qps": reads,
            "write_qps": writes,
            "throttled": throttled,
            "shed": shed,
        }
        return {"name": ns.name, "consistency": ns.consistency, "quotas": quotas, "usage": usage}

    def _list_namespaces(self, request: Request) -> Response | Awaitable[Response]:
        _query(request, set())  # takes none: a typo must not pass unseen
        token = request.principal
        return self._with_peers(
            lambda: _reply(
                request,
                {
                    "namespaces": [
                        self._namespace_json(ns)
                        for ns in self.store.namespaces()
                        if token is None or token.can("read", ns.name)
                    ]
                },
            )
        )

    def _get_namespace(self, request: Request, name: str) -> Response | Awaitable[Response]:
        _query(request, set())  # takes none: a typo must not pass unseen
        self.store.namespace(name)  # 404 before anything else
        return self._with_peers(
            lambda: _reply(request, {"namespace": self._namespace_json(self.store.namespace(name))})
        )

    def _put_namespace(self, request: Request, name: str) -> Response:
        _query(request, set())  # takes none: a typo must not pass unseen
        wire = Wire(request.header("content-type"), request.header("accept"), False)
        body = wire.decode(request.body, NamespaceBody) if request.body else NamespaceBody()
        fields = given(body)
        ns = self.store.put_namespace(
            name,
            consistency=fields.get("consistency", UNSET),
            quotas=fields.get("quotas", UNSET),
        )
        return _reply(request, {"namespace": self._namespace_json(ns)})

    def _delete_namespace(self, request: Request, name: str) -> Response:
        _query(request, set())  # takes none: a typo must not pass unseen
        self.store.drop_namespace(name)
        return _reply(request, {"deleted": name})

    # -- tables ---------------------------------------------------------------

    def _table_json(self, t: TableInfo, wire: Wire) -> dict[str, Any]:
        stats = self.store.backend.table_stats(t.id)
        part = t.options.partitioning
        partitioning: dict[str, Any] = {"kind": part.kind}
        if part.kind == "hash":
            partitioning["shards"] = part.shards
        else:
            partitioning["split_points"] = [wire.out(p) for p in part.split_points or []]
        return {
            "namespace": t.namespace,
            "name": t.name,
            "ttl_seconds": t.options.ttl_seconds,
            "max_versions": t.options.max_versions,
            "consistency": t.options.consistency,
            "partitioning": partitioning,
            "expire_interval_s": t.options.expire_interval_s,
            "stats": {"approx_cells": stats.approx_cells, "approx_bytes": stats.approx_bytes},
            "expiration": self._expiration_json(t),
        }

    def _expiration_json(self, t: TableInfo) -> dict[str, Any]:
        if self.expiration is None:
            return {"state": "idle", "running": None, "last_run": None, "next_run_us": None}
        return self.expiration.state(t.namespace, t.name)

    def _hot_keys(self, request: Request, ns: str, table: str) -> Response | Awaitable[Response]:
        """The table's busiest pks in the last seconds, in every process."""
        params = _query(request, {"limit", "encoding"})
        limit = _int(params, "limit")
        limit = 20 if limit is None else limit
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be from 1 to 1000")
        wire = Wire("", request.header("accept"), _base64(params))
        self.store.table_info(ns, table)

        def answer() -> Response:
            keys = [
                {"pk": wire.out(pk), "per_s": round(rate, 3)}
                for pk, rate in self.metrics.hot_keys(ns, table, limit)
            ]
            body = {"window_s": self.metrics.hot.window_s, "keys": keys}
            return Response(200, wire.encode(body), wire.content_type)

        return self._with_peers(answer)

    def _expire(self, request: Request, ns: str, table: str) -> Response:
        _query(request, set())  # takes none: a typo must not pass unseen
        if request.body:
            raise InvalidRequestError("an expire request takes no body")
        info = self.store.table_info(ns, table)
        if self.expiration is None:
            raise UnavailableError("this server runs no expiration service")
        self.expiration.run_now(ns, table)
        wire = Wire("", request.header("accept"), False)
        body = {"expiration": self._expiration_json(info)}
        return Response(202, wire.encode(body), wire.content_type)

    def _list_tables(self, request: Request, ns: str) -> Response:
        wire = _reply_wire(request)
        tables = [self._table_json(t, wire) for t in self.store.tables(ns)]
        return Response(200, wire.encode({"tables": tables}), wire.content_type)

    def _get_table(self, request: Request, ns: str, table: str) -> Response:
        wire = _reply_wire(request)
        body = {"table": self._table_json(self.store.table_info(ns, table), wire)}
        return Response(200, wire.encode(body), wire.content_type)

    def _put_table(self, request: Request, ns: str, table: str) -> Any:
        params = _query(request, {"encoding"})
        wire = Wire(request.header("content-type"), request.header("accept"), _base64(params))
        body = wire.decode(request.body, TableBody) if request.body else TableBody()
        options = given(body)
        partitioning = options.get("partitioning")
        if isinstance(partitioning, dict) and "split_points" in partitioning:
            points = partitioning["split_points"]
            assert isinstance(points, list)
            keys = [wire.key(p, f"partitioning.split_points[{i}]") for i, p in enumerate(points)]
            for key in keys:
                wire.out(key)  # a split point the answer cannot carry: 400 before any change
            partitioning["split_points"] = keys
        if isinstance(partitioning, dict) and "presplit" in partitioning:
            return self._put_table_presplit(ns, table, options, wire)
        self.store.put_table(ns, table, options)
        reply = {"table": self._table_json(self.store.table_info(ns, table), wire)}
        return Response(200, wire.encode(reply), wire.content_type)

    async def _put_table_presplit(
        self, ns: str, table: str, options: dict[str, Any], wire: Wire
    ) -> Response:
        """Split points sampled from a source (I/O, maybe S3): off the event loop."""
        self.store.namespace(ns)  # 404 before any I/O

        def create() -> TableInfo:
            self.store.put_table(ns, table, resolve_presplit(options))
            return self.store.table_info(ns, table)

        info = await asyncio.get_running_loop().run_in_executor(None, create)
        return Response(
            200, wire.encode({"table": self._table_json(info, wire)}), wire.content_type
        )

    def _delete_table(self, request: Request, ns: str, table: str) -> Response:
        _query(request, set())  # takes none: a typo must not pass unseen
        self.store.drop_table(ns, table)
        return _reply(request, {"deleted": f"{ns}/{table}"})

    # -- writes ---------------------------------------------------------------

    def _write(self, request: Request, ns: str, table: str) -> Awaitable[Response]:
        params = _query(request, {"encoding"})
        wire = Wire(request.header("content-type"), request.header("accept"), _base64(params))
        body = wire.decode(request.body, WriteBody)
        records = _text_records(body.records) if not (wire.base64 or wire.msgpack_in) else None
        if records is None:
            records = self._records(body.records, wire)
        if self.proxy is not None:  # a follower: the owner appends
            table_id, mutations = self.store.prepare_write(ns, table, records, ack=body.ack)
            self.metrics.hot.hit(ns, table, [m.pk for m in mutations])
            handed = Request(
                "POST",
                request.path,
                b"",
                {
                    "accept": request.header("accept"),
                    "content-type": "application/msgpack",
                    "mussel-internal": _APPEND,
                },
                msgspec.msgpack.encode(_Append(table_id, body.ack, mutations)),
            )
            return self.proxy.forward(handed)
        count, pending = self.store.submit_write(ns, table, records, ack=body.ack)
        self.metrics.hot.hit(ns, table, [_pk_bytes(r.pk) for r in records])  # a real table
        return self._await_write(count, pending, body.ack, wire)

    @staticmethod
    def _records(raw: list[Any], wire: Wire) -> list[Put | Delete]:
        """The records of a write body, with an error that names the first bad one."""
        records: list[Put | Delete] = []
        for i, r in enumerate(raw):
            where = f"records[{i}]"
            pk = wire.key(r.pk, f"{where}.pk")
            sk = b"" if r.sk is None else wire.key(r.sk, f"{where}.sk")
            if r.op == "put":
                if r.value is None:
                    raise InvalidRequestError(f"{where}: a put needs a value")
                records.append(Put(pk, sk, wire.key(r.value, f"{where}.value"), r.ts))
            else:
                if r.value is not None:
                    raise InvalidRequestError(f"{where}: a delete takes no value")
                records.append(Delete(pk, sk, r.ts))
        return records

    async def _await_write(self, count: int, pending: Any, ack: str, wire: Wire) -> Response:
        placed = await asyncio.wrap_future(pending)
        if ack == "applied":
            target = self.store.applied_target(placed)
            wm = self.store.replayer.watermark
            if not (wm.reached(target) and self.store.followers_reached(target)):
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self.store.wait_applied, placed)
        return Response(200, wire.encode({"written": count}), wire.content_type)

    # -- reads ----------------------------------------------------------------

    def _with_barrier(
        self,
        ns: str,
        table: str,
        pks: list[bytes] | None,
        consistency: Any,
        read: Callable[[], Response],
    ) -> Response | Awaitable[Response]:
        """Run ``read`` now if it needs no wait, else after the strong-read barrier.

        Eventual reads carry ``Mussel-Staleness-Ms`` (SPEC §3).
        """
        if self.store.is_strong(ns, table, consistency):
            target = self.store.strong_target(ns, table, pks, consistency)
            if target is not None:
                return self._after_barrier(target, read)
            return read()
        resp = read()
        resp.headers.append(("mussel-staleness-ms", str(int(self.store.staleness_ms()))))
        return resp

    async def _after_barrier(
        self, target: dict[int, int], read: Callable[[], Response]
    ) -> Response:
        wm = self.store.replayer.watermark
        timeout = self.store.config.strong_read_timeout_s
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, wm.wait, target, timeout):
            raise UnavailableError(
                f"a strong read could not catch up with recent writes in {timeout:g}s; "
                "retry, or read with consistency=eventual"
            )
        if self.offload is not None:
            return await loop.run_in_executor(self.offload, read)
        return read()

    def _read_row(self, request: Request, ns: str, table: str, raw_pk: str) -> Any:
        params = _query(request, _ROW_PARAMS)
        if "sk" in params and params.keys() <= _POINT_PARAMS:
            point = self._point_read(request, ns, table, raw_pk, params)
            if point is not None:
                return point
        wire = Wire("", request.header("accept"), _base64(params))
        pk = _path_bytes(raw_pk)
        if wire.base64:  # base64url (or standard, percent-encoded) text
            pk = wire.key(pk.decode("ascii", "replace"), "pk")
        keys = {
            name: _key_param(params, name, wire)
            for name in ("sk", "sk_prefix", "sk_start", "sk_end")
            if name in params
        }
        consistency = _consistency(params)
        versions = _int(params, "versions")
        limit = _int(params, "limit")

        def read() -> Response:
            page = self.store.read_row(
                ns,
                table,
                pk,
                sk=keys.get("sk"),
                sk_prefix=keys.get("sk_prefix"),
                sk_start=keys.get("sk_start"),
                sk_end=keys.get("sk_end"),
                min_ts=_int(params, "min_ts"),
                max_ts=_int(params, "max_ts"),
                versions=1 if versions is None else versions,
                limit=1000 if limit is None else limit,
                cursor=params.get("cursor"),
                consistency="eventual",
            )
            if "sk" in keys and not page.cells and page.cursor is None:
                raise KeyNotFoundError("no visible cell at that pk and sk")
            cells = [
                {"sk": wire.out(c.sk), "ts": c.ts, "value": wire.out(c.value)} for c in page.cells
            ]
            body = {"pk": wire.out(page.pk), "cells": cells, "cursor": page.cursor}
            return Response(200, wire.encode(body), wire.content_type)

        self.store.table_info(ns, table)  # 404 before any wait
        self.metrics.hot.hit(ns, table, (pk,))
        return self._with_barrier(ns, table, [pk], consistency, read)

    def _point_read(
        self, request: Request, ns: str, table: str, raw_pk: str, params: dict[str, str]
    ) -> Response | None:
        """The hot path: one cell (``sk`` given), newest version. None when a strong
        read must wait (the caller then takes the general path, which waits off the
        event loop and counts the hot key)."""
        wire = _wire("", request.headers.get("accept", ""), _base64(params))
        pk = _path_bytes(raw_pk)
        if wire.base64:  # base64url (or standard, percent-encoded) text
            pk = wire.key(pk.decode("ascii", "replace"), "pk")
        sk = _key_param(params, "sk", wire)
        got = self.store.get_nowait(ns, table, pk, sk, _consistency(params))
        if got is None:
            return None
        self.metrics.hot.hit_one(ns, table, pk)
        cell, staleness = got
        if cell is None:
            raise KeyNotFoundError("no visible cell at that pk and sk")
        out = wire.out
        body = _RowOut(out(pk), [_CellOut(out(cell.sk), cell.ts, out(cell.value))], None)
        resp = Response(200, wire.encode(body), wire.content_type)
        if staleness is not None:  # an eventual read (SPEC §3)
            resp.headers.append(("mussel-staleness-ms", str(int(staleness))))
        return resp

    def _multi_get(self, request: Request, ns: str, table: str) -> Any:
        params = _query(request, {"encoding"})
        headers = request.headers
        wire = _wire(headers.get("content-type", ""), headers.get("accept", ""), _base64(params))
        body = wire.decode(request.body, GetBody)
        keys = _get_keys(body.keys, wire)
        if body.versions == 1 and all(sk is not None for _, sk in keys):
            fast = self._multi_get_now(ns, table, keys, body.consistency, wire)  # type: ignore[arg-type]
            if fast is not None:
                return fast

        def read() -> Response:
            pages = self.store.multi_get(
                ns, table, keys, versions=body.versions, consistency="eventual"
            )
            results = [
                {
                    "pk": wire.out(p.pk),
                    "cells": [
                        {"sk": wire.out(c.sk), "ts": c.ts, "value": wire.out(c.value)}
                        for c in p.cells
                    ],
                }
                for p in pages
            ]
            return Response(200, wire.encode({"results": results}), wire.content_type)

        self.store.table_info(ns, table)
        self.metrics.hot.hit(ns, table, [pk for pk, _ in keys])
        return self._with_barrier(ns, table, [pk for pk, _ in keys], body.consistency, read)

    def _multi_get_now(
        self,
        ns: str,
        table: str,
        keys: list[tuple[bytes, bytes]],
        consistency: Any,
        wire: Wire,
    ) -> Response | None:
        """The hot path of a multi-get: one cell per key (every sk given), newest
        version, answered now; None when a strong read must wait (the caller then
        takes the general path, which waits off the event loop)."""
        got = self.store.multi_get_nowait(ns, table, keys, consistency)
        if got is None:
            return None
        cells, staleness = got
        pks = [pk for pk, _ in keys]
        self.metrics.hot.hit(ns, table, pks)
        out = wire.out
        results = [
            _RowOut(out(pk), [] if c is None else [_CellOut(out(c.sk), c.ts, out(c.value))])
            for pk, c in zip(pks, cells, strict=True)
        ]
        resp = Response(200, wire.encode(_ResultsOut(results)), wire.content_type)
        if staleness is not None:  # an eventual read (SPEC §3)
            resp.headers.append(("mussel-staleness-ms", str(int(staleness))))
        return resp

    def _scan(self, request: Request, ns: str, table: str) -> Any:
        params = _query(request, _SCAN_PARAMS)
        wire = Wire("", request.header("accept"), _base64(params))
        keys = {
            name: _key_param(params, name, wire)
            for name in ("pk_start", "pk_end", "pk_prefix")
            if name in params
        }
        consistency = _consistency(params)
        versions = _int(params, "versions")
        limit = _int(params, "limit")

        def read() -> Response:
            page = self.store.scan(
                ns,
                table,
                pk_start=keys.get("pk_start"),
                pk_end=keys.get("pk_end"),
                pk_prefix=keys.get("pk_prefix"),
                min_ts=_int(params, "min_ts"),
                max_ts=_int(params, "max_ts"),
                versions=1 if versions is None else versions,
                limit=1000 if limit is None else limit,
                cursor=params.get("cursor"),
                consistency="eventual",
            )
            cells = [
                {
                    "pk": wire.out(c.pk),
                    "sk": wire.out(c.sk),
                    "ts": c.ts,
                    "value": wire.out(c.value),
                }
                for c in page.cells
            ]
            return Response(
                200, wire.encode({"cells": cells, "cursor": page.cursor}), wire.content_type
            )

        self.store.table_info(ns, table)
        return self._with_barrier(ns, table, None, consistency, read)

    # -- backups (embedded mode) -----------------------------------------------

    def _backup(self, request: Request) -> Awaitable[Response]:
        """``POST /v1/admin/backup``: a consistent backup while writes go on
        (``engine/backup.py``), into a new directory inside ``backup_dir``."""
        _query(request, set())
        wire = Wire(request.header("content-type"), request.header("accept"), False)
        body = wire.decode(request.body, BackupBody)
        if self.store.role != "embedded":
            raise InvalidRequestError(
                "backups in distributed mode are the database's and Kafka's job (e.g. "
                "pg_dump or your database's backups, and the topic's retention or "
                "replication); this endpoint backs up an embedded server"
            )
        if self.backup_dir is None:
            raise InvalidRequestError(
                "backups over HTTP are off: start the server with --backup-dir DIR, or "
                "stop it and run mussel backup --data DATA_DIR DEST"
            )
        root = self.backup_dir.resolve()
        try:
            target = (root / body.path).resolve()
        except (ValueError, OSError) as exc:
            raise InvalidRequestError(f"bad backup path: {exc}") from None
        if root not in target.parents:
            raise InvalidRequestError(
                f"the backup path must name a directory inside the server's backup directory {root}"
            )

        async def run() -> Response:
            loop = asyncio.get_running_loop()
            m = await loop.run_in_executor(None, create_backup, self.store, target)
            out = {
                "path": str(target),
                "created_us": m.created_us,
                "partitions": m.partitions,
                "applied": m.applied,
                "log_end": m.log_end,
                "files": len(m.files),
                "bytes": m.total_bytes,
            }
            return Response(200, wire.encode({"backup": out}), wire.content_type)

        return run()

    # -- bulk loads and jobs ----------------------------------------------------

    # -- tokens (SPEC §6) -------------------------------------------------------

    def _create_token(self, request: Request) -> Response:
        _query(request, set())  # takes none: a typo must not pass unseen
        wire = Wire(request.header("content-type"), request.header("accept"), False)
        body = wire.decode(request.body, TokenBody)
        info, secret = self.store.catalog.create_token(body.name, list(body.scopes))
        out = {"id": info.id, "name": info.name, "scopes": list(info.scopes), "token": secret}
        return Response(201, wire.encode(out), wire.content_type)

    def _list_tokens(self, request: Request) -> Response:
        _query(request, set())
        tokens = [
            {"id": t.id, "name": t.name, "scopes": list(t.scopes), "created_us": t.created_us}
            for t in self.store.catalog.list_tokens()
        ]
        return _reply(request, {"tokens": tokens})

    def _revoke_token(self, request: Request, token_id: str) -> Response:
        _query(request, set())
        self.store.catalog.revoke_token(token_id)
        return _reply(request, {"revoked": token_id})

    def _bulk_load(self, request: Request, ns: str, table: str) -> Awaitable[Response]:
        _query(request, set())  # takes none: a typo must not pass unseen
        wire = Wire(request.header("content-type"), request.header("accept"), False)
        body = wire.decode(request.body, BulkLoadBody)
        self.store.table_info(ns, table)  # 404 before any I/O
        self.store.check_storage_quota(ns)  # 507: no bulk load past the storage quota

        def submit() -> JobInfo:
            return self.jobs.submit(
                ns,
                table,
                body.source,
                mode=body.mode,
                layout=body.layout,
                columns=body.columns,
                ts=body.ts,
                job_id=body.id,
            )

        async def run() -> Response:
            # listing the source and reading its footers is I/O (maybe S3): off the loop
            job = await asyncio.get_running_loop().run_in_executor(None, submit)
            out = Wire("", request.header("accept"), False)
            return Response(202, out.encode({"job": _job_json(job)}), out.content_type)

        return run()

    def _list_jobs(self, request: Request) -> Response:
        params = _query(request, {"namespace"})
        token = request.principal
        jobs = [
            j
            for j in self.jobs.list(params.get("namespace"))
            if token is None or token.can("read", j.spec.namespace)
        ]
        return _reply(request, {"jobs": [_job_json(j) for j in jobs]})

    def _job(
        self,
        request: Request,
        job_id: str,
        right: Right = "read",
        then: Callable[[str], JobInfo] | None = None,
    ) -> JobInfo:
        """The job, if the request's token has ``right`` on its namespace; then
        ``then(job_id)`` (e.g. cancel) once that is checked."""
        job = self.jobs.get(job_id)
        require(request.principal, right, job.spec.namespace)
        return job if then is None else then(job_id)

    def _job_reply(self, request: Request, job: JobInfo) -> Response:
        _query(request, set())
        return _reply(request, {"job": _job_json(job)})


def _job_json(job: JobInfo) -> dict[str, Any]:
    spec = job.spec
    p = job.progress
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "namespace": spec.namespace,
        "table": spec.table,
        "source": spec.source,
        "mode": spec.mode,
        "layout": spec.layout,
        "ts": job.ts_us,
        "progress": {
            "phase": p.phase,
            "rows": p.rows,
            "bytes": p.bytes,
            "fraction": p.fraction,
            "total_rows": p.total_rows,
            "total_bytes": p.total_bytes,
            "cells": p.cells,
            "duplicates_dropped": p.duplicates_dropped,
            "skipped_existing": p.skipped_existing,
            "rate_rows_s": p.rate_rows_s,
            "eta_s": p.eta_s,
        },
        "duplicates_dropped": p.duplicates_dropped,
        "error": None
        if job.error is None
        else {"code": job.error.code, "message": job.error.message},
        "created_us": job.created_us,
        "started_us": job.started_us,
        "finished_us": job.finished_us,
    }


def _pk_bytes(pk: bytes | str) -> bytes:
    return pk if isinstance(pk, bytes) else pk.encode("utf-8", "surrogatepass")


def _text_records(raw: list[Any]) -> list[Put | Delete] | None:
    """The records of a JSON write body with text keys, in one pass (the hot path of
    writes); None if any record is not well formed (``App._records`` then says which)."""
    enc = str.encode
    try:
        records: list[Put | Delete | None] = [
            Put(
                enc(r.pk, "utf-8", "surrogatepass"),
                b"" if r.sk is None else enc(r.sk, "utf-8", "surrogatepass"),
                enc(r.value, "utf-8", "surrogatepass"),
                r.ts,
            )
            if r.op == "put"
            else (
                Delete(
                    enc(r.pk, "utf-8", "surrogatepass"),
                    b"" if r.sk is None else enc(r.sk, "utf-8", "surrogatepass"),
                    r.ts,
                )
                if r.value is None
                else None
            )
            for r in raw
        ]
    except (TypeError, AttributeError):  # a put without a value
        return None
    if None in records:  # a delete with a value
        return None
    return records  # type: ignore[return-value]


def _reply_wire(request: Request) -> Wire:
    """The codec of a GET's answer: Accept, and ``encoding=base64`` for keys in it."""
    return Wire("", request.header("accept"), _base64(_query(request, {"encoding"})))


def _reply(request: Request, obj: Any) -> Response:
    """A 200 answer in the representation the client accepts."""
    wire = Wire("", request.header("accept"), False)
    return Response(200, wire.encode(obj), wire.content_type)
