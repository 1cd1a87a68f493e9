"""``MusselHook``: the ``mussel`` connection type and a ``mussel.Client`` made from it.

A connection holds the server's host, port (default 7070), schema (the scheme, ``http``
or ``https``) and, in the password field, the bearer token (empty: no token). As an
environment variable::

    AIRFLOW_CONN_MUSSEL_DEFAULT='{"conn_type": "mussel", "host": "kv.internal",
                                  "port": 7070, "schema": "http", "password": "tok_..."}'
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from mussel.client import AsyncClient, Client
from mussel.errors import MusselError
from mussel.integrations.airflow._connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    UI_FIELD_BEHAVIOUR,
    base_url,
)


class MusselHook(BaseHook):
    """Connects to a Mussel server through the Airflow connection ``mussel_conn_id``.

    ``timeout`` (seconds, per request) and ``retries`` are passed to the client (see
    ``mussel.Client``). A connection with no host or a schema other than http/https
    raises ``ValueError`` naming the connection.
    """

    conn_name_attr = "mussel_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        mussel_conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: float = 30.0,
        retries: int = 3,
    ) -> None:
        super().__init__()
        self.mussel_conn_id = mussel_conn_id
        self.timeout = timeout
        self.retries = retries

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the connection form shows the fields: no login and no extra; the password
        is the token and the schema is the scheme. (Airflow 3.2 and later read the same
        from ``get_provider_info``'s ``ui-field-behaviour``.)"""
        return copy.deepcopy(UI_FIELD_BEHAVIOUR)

    @staticmethod
    def _settings(conn: Any) -> tuple[str, str | None]:
        try:
            url = base_url(conn.host, conn.port, conn.schema)
        except ValueError as e:
            raise ValueError(f"connection {conn.conn_id!r}: {e}") from None
        return url, conn.password or None

    def get_conn(self) -> Client:
        """A new ``mussel.Client`` for the connection; the caller closes it (``with``)."""
        url, token = self._settings(self.get_connection(self.mussel_conn_id))
        return Client(url, token=token, timeout=self.timeout, retries=self.retries)

    async def aget_conn(self) -> AsyncClient:
        """A new ``mussel.AsyncClient`` for the connection (for triggers); the caller
        closes it (``async with``)."""
        try:
            conn = await self.aget_connection(self.mussel_conn_id)
        except AirflowNotFoundException:
            # `airflow dags test` runs triggers in-process, where the async lookup
            # reaches environment variables and secrets backends but not connections
            # stored in the database (its in-process channel has no async send); the
            # blocking lookup does reach them, so it gets one try in a thread.
            conn = await asyncio.to_thread(self.get_connection, self.mussel_conn_id)
        url, token = self._settings(conn)
        return AsyncClient(url, token=token, timeout=self.timeout, retries=self.retries)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: asks the server for its health."""
        try:
            with self.get_conn() as client:
                health = client.health()
        except (MusselError, ValueError) as e:
            return False, str(e)
        return True, f"Mussel at {client.base_url} answers: {health.get('status', health)}"
