"""The web dashboard (``GET /dashboard``): its files, its login, and its history.

The page (``static/``: hand-written HTML, CSS and JavaScript, no CDN) polls
``GET /dashboard/data.json``, which ``App`` builds from the same functions as the
namespace, table, job and hot-key endpoints, plus ``Sampler``'s history: every
``interval_s`` the owner process records rates, latency quantiles and replay lag in
a ring buffer (``observability/history.py``), an hour of it by default.

With ``--auth token`` every dashboard request needs an admin token: as a bearer
token (scripts), or as the ``mussel_token`` cookie that ``POST /dashboard/login``
sets (browsers, which cannot add a header to a page they navigate to). The cookie is
HttpOnly and SameSite=Strict, scoped to ``/dashboard``, and only the dashboard's
read-only GETs accept it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from mussel.dispatch.http import Request, Response
from mussel.dispatch.metrics import ServerMetrics
from mussel.engine import Store
from mussel.errors import InvalidRequestError, NotFoundError
from mussel.observability.history import CounterRates, HistogramWindow, History
from mussel.observability.metrics import LATENCY_BUCKETS_S

__all__ = [
    "COOKIE",
    "REFRESH_S",
    "Sampler",
    "check_refresh",
    "cookie_token",
    "login_cookie",
    "login_page",
    "parse_login",
    "static_file",
]

log = logging.getLogger("mussel.dashboard")

COOKIE = "mussel_token"
"""The cookie that carries a browser's admin token (``POST /dashboard/login``)."""

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
STATIC = frozenset(_TYPES) - {"index.html"}
"""The files under ``/dashboard/static/``."""

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = [
    ("content-security-policy", _CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
]


_LOGIN_CSP = _CSP.replace("style-src 'self'", "style-src 'unsafe-inline'")
_LOGIN_CSS = (
    "body{font:14px/1.4 system-ui,sans-serif;color:#1d2430;background:#f7f8fa;margin:0}"
    "main{max-width:28rem;margin:10vh auto;background:#fff;border:1px solid #d9dee7;"
    "border-radius:6px;padding:1.5rem}.note{color:#667085}"
    "input{width:100%;margin:.5rem 0 1rem;padding:.4rem}"
)


def _read(name: str) -> bytes:
    return resources.files("mussel.dispatch").joinpath("static", name).read_bytes()


def static_file(name: str) -> Response:
    """``index.html`` or a file of ``STATIC``; 404 for any other name."""
    if name not in _TYPES:
        raise NotFoundError(f"no such dashboard file: {name[:100]!r}")
    return Response(200, _read(name), _TYPES[name], list(_SECURITY_HEADERS))


_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
REFRESH_S = (0.5, 3600.0)
"""The page's polling period may be set from ``?refresh=`` within these bounds (s)."""


def check_refresh(raw: str | None) -> None:
    """400 unless ``raw`` (``/dashboard?refresh=``) is absent or a number of seconds
    within ``REFRESH_S``."""
    if raw is None:
        return
    value = float(raw) if _DECIMAL.fullmatch(raw) else math.nan  # not "1_0", " 5", "inf"
    low, high = REFRESH_S
    if not low <= value <= high:  # NaN too
        raise InvalidRequestError(
            f"refresh must be a number of seconds from {low:g} to {high:g}, not {raw[:50]!r}"
        )


def login_page(status: int, message: str) -> Response:
    """The sign-in form (no script): it posts the token to ``/dashboard/login``."""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mussel dashboard: sign in</title>
<link rel="icon" href="data:,">
<style>{_LOGIN_CSS}</style></head>
<body><main><h1>Mussel dashboard</h1>
<p class="note">{html.escape(message)}</p>
<form method="post" action="/dashboard/login">
<input type="text" name="username" value="admin" autocomplete="username" hidden>
<label>Admin token <input type="password" name="token" autocomplete="current-password"
required autofocus></label> <button type="submit">Sign in</button></form></main></body></html>
"""
    # its files need a sign-in: its style is inline (allowed for this page alone)
    headers = [
        (k, _LOGIN_CSP if k == "content-security-policy" else v) for k, v in _SECURITY_HEADERS
    ]
    if status == 401:
        headers.append(("www-authenticate", 'Bearer realm="mussel"'))
    return Response(status, body.encode(), "text/html; charset=utf-8", headers)


def parse_login(request: Request) -> str:
    """The token of a sign-in form (``application/x-www-form-urlencoded``)."""
    ctype = request.header("content-type").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequestError(
            "the sign-in form is sent as application/x-www-form-urlencoded with a token field"
        )
    try:
        fields = dict(parse_qsl(request.body.decode("utf-8"), strict_parsing=True))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError(f"malformed sign-in form: {exc}") from None
    token = fields.get("token", "").strip()
    if not token:
        raise InvalidRequestError("the sign-in form needs a token")
    return token


def cookie_token(request: Request) -> str | None:
    """The ``mussel_token`` cookie of a request, if it has one."""
    for part in request.header("cookie").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return unquote(value)
    return None


def login_cookie(token: str, secure: bool) -> str:
    """The ``Set-Cookie`` value that keeps a browser's admin token (percent-encoded: a
    ``MUSSEL_ADMIN_TOKEN`` may hold any character) for 12 hours."""
    attrs = f"{COOKIE}={quote(token, safe='')}; Path=/dashboard; HttpOnly; SameSite=Strict"
    attrs += "; Max-Age=43200"
    return attrs + ("; Secure" if secure else "")


QUANTILES = (0.5, 0.99)


class Sampler:
    """The dashboard's history: one sample every ``interval_s`` (``run``), ``capacity``
    samples kept (720 at 5 s: the last hour)."""

    def __init__(
        self,
        metrics: ServerMetrics,
        store: Store,
        interval_s: float = 5.0,
        capacity: int = 720,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.interval_s = interval_s
        self.history = History(capacity)
        self._counters = CounterRates()
        self._latency = HistogramWindow(LATENCY_BUCKETS_S, keep=max(2, round(60 / interval_s)))

    def sample(self, now: float | None = None) -> None:
        """Record one sample at ``now`` (Unix seconds; default: the time now). The
        metrics' ``peers`` must be fresh (``run`` refreshes them first)."""
        t = time.time() if now is None else now
        m = self.metrics
        values: dict[str, float | None] = {}
        reads = writes = 0.0
        for ns in self.store.namespaces():
            r, w = m.rates(ns.name)
            reads += r
            writes += w
        values["reads_per_s"] = reads
        values["writes_per_s"] = writes
        shed = sum(v for _, v in m.shed_requests.snapshot_items()) + sum(
            v
            for p in m.peers
            for _, v in p.get("registry", {}).get("mussel_shed_requests_total", [])
        )
        rates = self._counters.update(t, {"throttled": m.throttled_total(), "shed": shed})
        values["throttled_per_s"] = rates.get("throttled")
        values["shed_per_s"] = rates.get("shed")
        self._latency.add(
            {op: c for op, c in m.latency_by_operation().items() if not op.startswith("dashboard")}
        )
        for op, q in self._latency.quantiles(QUANTILES, last_only=True).items():
            if q["count"]:
                values[f"p50_s:{op}"] = q["q0.5"]
                values[f"p99_s:{op}"] = q["q0.99"]
        values["replay_lag_records"] = sum(v for _, v in m.replay_lag())
        values["staleness_s"] = self.store.staleness_ms() / 1000.0
        self.history.add(t, values)

    def latency(self) -> list[dict[str, Any]]:
        """p50 and p99 per operation over the last minute (from the samples; the
        dashboard's own requests left out)."""
        out = []
        for op, q in sorted(self._latency.quantiles(QUANTILES).items()):
            if q["count"]:
                out.append(
                    {"operation": op, "count": q["count"], "p50_s": q["q0.5"], "p99_s": q["q0.99"]}
                )
        return out

    async def run(
        self,
        refresh: Callable[[], Awaitable[None]] | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        """Sample every ``interval_s`` until cancelled (``refresh``: the peers' metrics;
        ``executor``: where a sample runs when it may wait on a database, else inline)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if refresh is not None:
                    await refresh()
                if executor is None:
                    self.sample()
                else:
                    await loop.run_in_executor(executor, self.sample)
            except Exception:  # a sample may fail (a store closing); the next one tries again
                log.exception("dashboard sample failed")
            await asyncio.sleep(self.interval_s)
