"""The Python client of Mussel's HTTP API v1 (SPEC §4): ``Client`` and ``AsyncClient``.

This package talks to a server over HTTP and imports only the model, the errors and
the limits of Mussel (never the engine, the dispatcher or storage), so it can ship
on its own. Requests, answers, errors and retries are built once in
``_transport.py``; ``client.py`` and ``async_client.py`` only send.
"""

from mussel.client._models import (
    BackupDescription,
    CreatedToken,
    Expiration,
    ExpirationRun,
    HotKey,
    JobDescription,
    JobErrorDetail,
    JobProgress,
    NamespaceDescription,
    NamespaceUsage,
    TableDescription,
    TableStats,
    TokenDescription,
)
from mussel.client._transport import RetryPolicy
from mussel.client.async_client import AsyncClient
from mussel.client.client import BulkLoad, Client
from mussel.client.writer import AsyncWriter, Writer

__all__ = [
    "AsyncClient",
    "AsyncWriter",
    "BackupDescription",
    "BulkLoad",
    "Client",
    "CreatedToken",
    "Expiration",
    "ExpirationRun",
    "HotKey",
    "JobDescription",
    "JobErrorDetail",
    "JobProgress",
    "NamespaceDescription",
    "NamespaceUsage",
    "RetryPolicy",
    "TableDescription",
    "TableStats",
    "TokenDescription",
    "Writer",
]
