"""The authentication and authorization stage of the request pipeline (SPEC §6).

``--auth none``: every request passes (the server then listens on loopback only).
``--auth token``: every request but ``/healthz``, ``/readyz`` and ``/openapi.json``
carries ``Authorization: Bearer <token>``; the token must exist (else 401
``unauthenticated``) and give the operation's right on the namespace in its path
(else 403 ``forbidden``):

* ``admin``: namespaces (create, alter, drop), tokens, ``/metrics``, ``/dashboard``
  (whose pages also take the token from the cookie its sign-in form sets);
* ``<ns>:write``: tables (create, alter, drop), writes, bulk loads, expire;
* ``<ns>:read``: reads, table and namespace descriptions.

Listing namespaces or jobs needs a valid token and shows only what it may read;
a job is read and cancelled with the rights of its namespace (checked where the job
is known). The check runs after routing, which looks at the path only, so nothing
about a namespace (not even whether it exists) is told to a caller without rights.
Tokens are never logged: the stage reads the header and keeps the token's id only.

With mTLS (``--tls-client-ca``), a request without a bearer token is authorized as
the token whose id is its verified client certificate's subject CN: the identity
comes from the certificate the TLS handshake verified, never from a header. A
follower that hands a request over to the owner passes the CN along on the owner's
Unix socket (``Mussel-Internal-Cert``), which only the server's own processes reach.
"""

from __future__ import annotations

from typing import Literal

from mussel.catalog import Catalog
from mussel.catalog.tokens import Right, TokenInfo
from mussel.dispatch.dashboard import cookie_token
from mussel.dispatch.http import Request
from mussel.errors import ForbiddenError, UnauthenticatedError

__all__ = ["AuthMode", "Authorizer", "REQUIRED"]

AuthMode = Literal["none", "token"]

OPEN = frozenset({"healthz", "readyz", "openapi.json", "dashboard_login"})
"""Operations that never need a token (the dashboard's sign-in form checks the token
it is given itself)."""

COOKIE_OPS = frozenset({"dashboard", "dashboard_data", "dashboard_static"})
"""The dashboard's read-only GETs: a browser's token may come in its cookie."""

REQUIRED: dict[str, Right | None] = {
    "metrics": "admin",
    "dashboard": "admin",
    "dashboard_data": "admin",
    "dashboard_static": "admin",
    "list_namespaces": None,  # any token; the list is filtered
    "namespace_get": "read",
    "namespace_put": "admin",
    "namespace_delete": "admin",
    "list_tables": "read",
    "table_get": "read",
    "table_put": "write",
    "table_delete": "write",
    "write": "write",
    "read_row": "read",
    "get": "read",
    "scan": "read",
    "expire": "write",
    "hotkeys": "read",
    "bulkloads": "write",
    "list_jobs": None,  # filtered
    "get_job": None,  # checked on the job's namespace
    "cancel_job": None,  # idem
    "create_token": "admin",
    "list_tokens": "admin",
    "revoke_token": "admin",
}


class Authorizer:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def check(self, request: Request, op: str, namespace: str) -> TokenInfo | None:
        """The token of a request allowed to run ``op`` on ``namespace`` (None for an
        open operation); raises 401 or 403 otherwise."""
        if op in OPEN:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        token: TokenInfo | None
        if scheme.lower() == "bearer" and secret.strip():
            token = self._catalog.authenticate(secret.strip())
            if token is None:
                raise UnauthenticatedError("the token is not valid (unknown or revoked)")
        elif op in COOKIE_OPS and (cookie := cookie_token(request)) is not None:
            token = self._catalog.authenticate(cookie)
            if token is None:
                raise UnauthenticatedError(
                    "the dashboard's sign-in is no longer valid (the token is unknown or "
                    "revoked); sign in again"
                )
        elif request.cert_name is not None:  # mTLS: the certificate names a token
            token = self._catalog.token_by_id(request.cert_name)
            if token is None:
                raise UnauthenticatedError(
                    f"the client certificate names no token ({request.cert_name!r})"
                )
        else:
            raise UnauthenticatedError(
                "this server needs a token: send 'Authorization: Bearer <token>'"
            )
        right = REQUIRED.get(op, "admin")  # an operation not listed: admins only
        if right is not None and not token.can(right, namespace):
            where = f" on namespace {namespace!r}" if namespace and right != "admin" else ""
            raise ForbiddenError(f"the token has no {right} right{where}")
        return token


def require(token: TokenInfo | None, right: Right, namespace: str) -> None:
    """For checks that need what the handler found (a job's namespace)."""
    if token is not None and not token.can(right, namespace):
        raise ForbiddenError(f"the token has no {right} right on namespace {namespace!r}")
