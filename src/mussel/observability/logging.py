"""Structured logs: one JSON object per line (or readable text) from every server process.

Every line has ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``role``
(the process: ``owner``, ``follower-1``, ``dispatcher``, ...), ``pid`` and ``msg``; a
record logged with ``extra={"fields": {...}}`` adds those fields, and an exception adds
``exc`` (its traceback, as text). The access log (logger ``mussel.access``, one line
per request, written by :class:`AccessLog`) adds ``request_id``, ``method``, ``op``,
``namespace``, ``table``, ``status`` and ``latency_ms``. It never holds a path, a query,
a header, a key, a value or a token: the operation and the names say what was asked
(the path of a row read holds its key, so it is not logged).

Request ids: a request's ``X-Request-Id`` header is kept when it is 1-128 characters
of ``[A-Za-z0-9._:-]``; otherwise the server makes one (a random per-process prefix
and a counter) and the answer carries it back in ``X-Request-Id``.

``configure_logging(format, role)`` installs the formatter on the root logger of a
process; ``format`` is ``json``, ``text``, or ``auto`` (JSON unless stderr is a
terminal).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import sys
import time
from typing import IO, Any, Final, Literal

import msgspec

__all__ = [
    "LOG_FORMATS",
    "AccessLog",
    "JsonFormatter",
    "LogFormat",
    "RequestIds",
    "TextFormatter",
    "configure_logging",
]

LogFormat = Literal["json", "text", "auto"]
LOG_FORMATS: Final = ("json", "text", "auto")

_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ENCODER: Final = msgspec.json.Encoder()


_second: list[Any] = [-1, ""]  # (whole second, its formatted prefix): strftime is slow


def _iso(created: float) -> str:
    whole = int(created)
    if whole != _second[0]:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line (newlines in text are escaped)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "role": self.role,
            "pid": self.pid,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(doc).decode()


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>[<role>] <message> key=value ...``, for people."""

    def __init__(self, role: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s[" + role + "] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def configure_logging(
    fmt: LogFormat = "auto", role: str = "server", stream: IO[str] | None = None
) -> None:
    """Send every log record of this process (INFO and above) to ``stream`` (default
    stderr) in ``fmt``, tagged with ``role``; replaces the root logger's handlers."""
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(role) if fmt == "json" else TextFormatter(role))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    _direct[:] = [handler, out, role, os.getpid()] if fmt == "json" else []


_direct: list[Any] = []
"""With JSON logs: (handler, stream, role, pid), for the access log's fast path."""


class RequestIds:
    """Request ids: the client's ``X-Request-Id`` if it is a safe token, else a new one."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def of(self, given: str | None) -> str:
        if given is not None and _ID_RE.fullmatch(given):
            return given
        return f"{self._prefix}-{next(self._counter):x}"


class AccessLog:
    """One INFO line per answered request on the ``mussel.access`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("mussel.access")

    def request(
        self,
        request_id: str,
        method: str,
        op: str,
        namespace: str,
        table: str,
        status: int,
        latency_s: float,
    ) -> None:
        """Log one answered request (names only: never keys, values or tokens)."""
        if not self._log.isEnabledFor(logging.INFO):
            return
        latency_ms = round(latency_s * 1000.0, 3)
        direct = _direct
        if direct and self._log.name == "mussel.access" and not self._log.filters:
            # The line JsonFormatter would write, without a LogRecord (measured: ~5 µs
            # a line instead of ~30 through logging); one write, under the handler's lock.
            handler, stream, role, pid = direct
            now = time.time()
            line = _ENCODER.encode(
                {
                    "ts": _iso(now),
                    "level": "info",
                    "logger": "mussel.access",
                    "role": role,
                    "pid": pid,
                    "msg": "request",
                    "request_id": request_id,
                    "method": method,
                    "op": op,
                    "namespace": namespace,
                    "table": table,
                    "status": status,
                    "latency_ms": latency_ms,
                }
            )
            handler.acquire()
            try:
                stream.write(line.decode() + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # as logging does: a log that cannot be written never fails a request
            finally:
                handler.release()
            return
        fields = {
            "request_id": request_id,
            "method": method,
            "op": op,
            "namespace": namespace,
            "table": table,
            "status": status,
            "latency_ms": latency_ms,
        }
        self._log.info("request", extra={"fields": fields})
