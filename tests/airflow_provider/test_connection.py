"""The ``mussel`` connection's fields to a base URL, and what importing the provider's
package costs (no Airflow: Airflow loads ``get_provider_info`` while starting up)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mussel.integrations.airflow._connection import base_url
from mussel.integrations.airflow.provider_info import get_provider_info


@pytest.mark.parametrize(
    ("host", "port", "schema", "url"),
    [
        ("127.0.0.1", 7071, "http", "http://127.0.0.1:7071"),
        ("kv.internal", None, None, "http://kv.internal:7070"),
        ("kv.internal", 443, "HTTPS", "https://kv.internal:443"),
        (" kv.internal ", None, "", "http://kv.internal:7070"),
        ("https://kv.example.com", None, None, "https://kv.example.com:7070"),
        ("https://kv.example.com:8443/", None, "https", "https://kv.example.com:8443"),
        ("http://[::1]:7070", None, None, "http://[::1]:7070"),
        ("http://[::1]", 9000, None, "http://[::1]:9000"),
    ],
)
def test_base_url(host: str, port: int | None, schema: str | None, url: str) -> None:
    assert base_url(host, port, schema) == url


@pytest.mark.parametrize(
    ("host", "port", "schema", "message"),
    [
        (None, 7070, "http", "has no host"),
        ("  ", 7070, "http", "has no host"),
        ("kv", 7070, "grpc", "must be http or https, not 'grpc'"),
        ("ftp://kv", None, None, "has scheme 'ftp'"),
        ("https://kv", None, "http", "is https:// but its schema is http"),
        ("http://kv:1/", 2, None, "has a port and its port is 2"),
        ("kv/v1", None, None, "must not have a path"),
        ("http://kv/v1", None, None, "must not have a path"),
    ],
)
def test_base_url_errors(host: str | None, port: int | None, schema: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        base_url(host, port, schema)


def test_provider_info_names_the_distribution() -> None:
    info = get_provider_info()
    assert info["package-name"] == "mussel-kv"
    [conn] = info["connection-types"]
    assert conn["connection-type"] == "mussel"
    assert conn["hook-class-name"] == "mussel.integrations.airflow.hooks.MusselHook"


def test_importing_the_package_does_not_import_airflow() -> None:
    code = (
        "import sys, mussel, mussel.client, mussel.cli.main, mussel.integrations.airflow\n"
        "from mussel.integrations.airflow.provider_info import get_provider_info\n"
        "get_provider_info()\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow'], 'airflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
