"""Mussel: a key-value store for derived data.

The embedded API::

    import mussel
    with mussel.Store.open("./data") as store:
        store.put_namespace("shop")
        users = store.put_table("shop", "users")
        users.put("u1", "email", "a@example.com")
        print(users.get("u1", "email"))

The client of a running server (``mussel serve``)::

    with mussel.Client("http://127.0.0.1:7070") as client:
        client.put("shop", "users", "u1", "email", "a@example.com")

``Client`` and ``AsyncClient`` are imported on first use, so that ``import mussel``
(and so the server and the CLI) does not pay for importing ``httpx``.
"""

import typing as _typing

from mussel.clock import Clock, ManualClock, SystemClock
from mussel.engine import Store, StoreConfig, Table
from mussel.errors import (
    ConflictError,
    CorruptionError,
    ForbiddenError,
    InvalidCursorError,
    InvalidRequestError,
    JobNotFoundError,
    KeyNotFoundError,
    MusselError,
    NamespaceNotFoundError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    TableNotFoundError,
    TooLargeError,
    UnauthenticatedError,
    UnavailableError,
)
from mussel.limits import Limits
from mussel.model import Cell, Delete, NamespaceInfo, Put, RowPage, ScanCell, ScanPage, TableInfo

if _typing.TYPE_CHECKING:
    from mussel.client import AsyncClient, Client

__version__ = "0.1.0"

_LAZY = {"AsyncClient", "Client"}


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import mussel.client  # noqa: PLC0415  (deferred: see the module docstring)

        return getattr(mussel.client, name)
    raise AttributeError(f"module 'mussel' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)


__all__ = [
    "AsyncClient",
    "Cell",
    "Client",
    "Clock",
    "ConflictError",
    "CorruptionError",
    "Delete",
    "ForbiddenError",
    "InvalidCursorError",
    "InvalidRequestError",
    "JobNotFoundError",
    "KeyNotFoundError",
    "Limits",
    "ManualClock",
    "MusselError",
    "NamespaceInfo",
    "NamespaceNotFoundError",
    "NotFoundError",
    "Put",
    "QuotaExceededError",
    "RateLimitedError",
    "RowPage",
    "ScanCell",
    "ScanPage",
    "Store",
    "StoreConfig",
    "SystemClock",
    "Table",
    "TableInfo",
    "TableNotFoundError",
    "TooLargeError",
    "UnauthenticatedError",
    "UnavailableError",
    "__version__",
]
