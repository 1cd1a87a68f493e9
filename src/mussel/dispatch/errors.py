"""One place where errors become HTTP answers (SPEC §5)."""

from __future__ import annotations

from mussel.dispatch.http import Request, Response
from mussel.dispatch.wire import Wire
from mussel.errors import MusselError, NotFoundError

__all__ = ["MethodNotAllowedError", "error_to_response", "method_not_allowed", "not_found"]


class MethodNotAllowedError(MusselError):
    code = "method_not_allowed"
    http_status = 405

    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


def not_found(path: str) -> NotFoundError:
    return NotFoundError(f"no such endpoint: {path[:200]}")


def method_not_allowed(method: str, allowed: str) -> MethodNotAllowedError:
    return MethodNotAllowedError(f"{method} is not allowed here; use {allowed}", allowed)


def error_to_response(exc: MusselError, request: Request) -> Response:
    """The SPEC §5 envelope, with Retry-After on 429/503, Allow on 405 and
    WWW-Authenticate on 401."""
    wire = Wire("", request.header("accept"), False)
    headers: list[tuple[str, str]] = []
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers.append(("retry-after", str(max(1, round(retry_after)))))
    if isinstance(exc, MethodNotAllowedError):
        headers.append(("allow", exc.allowed))
    if exc.http_status == 401:
        headers.append(("www-authenticate", 'Bearer realm="mussel"'))
    return Response(exc.http_status, wire.encode(exc.to_dict()), wire.content_type, headers)
