"""The ``mussel`` connection type, without Airflow: its names and how its fields make a
base URL. ``hooks.py`` reads an Airflow connection and calls ``base_url`` with its fields.
"""

from __future__ import annotations

from typing import Any

CONN_TYPE = "mussel"
HOOK_NAME = "Mussel"
DEFAULT_CONN_ID = "mussel_default"
DEFAULT_PORT = 7070
SCHEMES = ("http", "https")

# How Airflow's connection form shows a mussel connection: the token is the password
# field and the scheme the schema field; login and extra are unused.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["login", "extra"],
    "relabeling": {"password": "Token", "schema": "Scheme"},
    "placeholders": {
        "host": "kv.internal",
        "port": "7070",
        "schema": "http or https",
        "password": "a Mussel token (empty if the server needs none)",
    },
}


def base_url(host: str | None, port: int | None, schema: str | None) -> str:
    """The server's base URL from a connection's host, port and schema.

    ``schema`` is the scheme, ``http`` (when empty) or ``https``; ``port`` defaults to
    7070. A host written as a URL (``https://kv.example.com:8443``) is taken as it is,
    and then a schema or a port that contradicts it is an error. Raises ``ValueError``
    with what is wrong: no host, an unknown scheme, a host with a path.
    """
    host = (host or "").strip()
    scheme = (schema or "").strip().lower()
    if not host:
        raise ValueError("the mussel connection has no host")
    if scheme and scheme not in SCHEMES:
        raise ValueError(f"the mussel connection's schema must be http or https, not {schema!r}")
    if "://" in host:
        given, rest = host.split("://", 1)
        given = given.lower()
        if given not in SCHEMES:
            raise ValueError(
                f"the mussel connection's host has scheme {given!r}: use http or https"
            )
        if scheme and scheme != given:
            raise ValueError(
                f"the mussel connection's host is {given}:// but its schema is {scheme}"
            )
        rest = rest.rstrip("/")
        if "/" in rest:
            raise ValueError(f"the mussel connection's host must not have a path: {host!r}")
        if ":" in rest.rsplit("]", 1)[-1]:
            if port:
                raise ValueError(
                    f"the mussel connection's host {host!r} has a port and its port is {port}"
                )
            return f"{given}://{rest}"
        return f"{given}://{rest}:{port or DEFAULT_PORT}"
    if "/" in host:
        raise ValueError(f"the mussel connection's host must not have a path: {host!r}")
    return f"{scheme or 'http'}://{host}:{port or DEFAULT_PORT}"
