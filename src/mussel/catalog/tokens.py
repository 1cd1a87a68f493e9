"""Bearer tokens (SPEC §6): scopes, secrets, and how they are stored.

A token is ``mus_<id>_<secret>``: ``id`` (12 hex digits) names it in lists and
revocations; the whole string is the secret the client sends. Only its SHA-256 is
stored (``TokenInfo.hash``), so the catalog never holds a usable secret; the secret is
shown once, when the token is created. Tokens are random (192 bits), so a plain
SHA-256 is enough: there is nothing to brute-force. A token given by the operator
(``MUSSEL_ADMIN_TOKEN``) is stored the same way.

Scopes: ``admin``, ``<ns>:read``, ``<ns>:write`` (write implies read).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Literal

import msgspec

from mussel.errors import InvalidRequestError
from mussel.model import check_name

__all__ = ["Right", "TokenInfo", "check_scopes", "hash_secret", "new_secret"]

Right = Literal["read", "write", "admin"]


class TokenInfo(msgspec.Struct, frozen=True):
    """A token as the catalog stores it: never its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    hash: str
    created_us: int = 0

    def can(self, right: Right, namespace: str = "") -> bool:
        """Whether the token gives ``right`` on ``namespace`` (admin: on everything)."""
        if "admin" in self.scopes:
            return True
        if right == "admin":
            return False
        if f"{namespace}:write" in self.scopes:
            return True
        return right == "read" and f"{namespace}:read" in self.scopes


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> tuple[str, str]:
    """(id, secret) of a new token."""
    token_id = secrets.token_hex(6)
    return token_id, f"mus_{token_id}_{secrets.token_urlsafe(24)}"


def check_scopes(scopes: Iterable[object]) -> tuple[str, ...]:
    """The scopes, checked (``InvalidRequestError`` for a malformed one), in order,
    without duplicates."""
    out: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str):
            raise InvalidRequestError("a scope is a string: admin, <ns>:read or <ns>:write")
        if scope != "admin":
            ns, sep, right = scope.rpartition(":")
            if not sep or right not in ("read", "write"):
                raise InvalidRequestError(f"scope {scope!r} is not admin, <ns>:read or <ns>:write")
            check_name(ns, "namespace name in a scope")
        if scope not in out:
            out.append(scope)
    if not out:
        raise InvalidRequestError("a token needs at least one scope")
    return tuple(out)
