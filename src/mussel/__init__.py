"""Mussel: a key-value store for derived data.

The embedded API::

    import mussel
    with mussel.Store.open("./data") as store:
        store.put_namespace("shop")
        users = store.put_table("shop", "users")
        users.put("u1", "email", "a@example.com")
        print(users.get("u1", "email"))
"""

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

__version__ = "0.1.0"

__all__ = [
    "Cell",
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
