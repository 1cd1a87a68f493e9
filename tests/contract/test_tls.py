"""TLS on the listener, and mTLS mapping a client certificate to a token (issue 6).

Certificates are made by the test (trustme). Every server here runs two processes,
so both the owner and a follower terminate TLS.
"""

from __future__ import annotations

import datetime
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import ServerProcess, start_server
from tests.contract.conftest import MODES
from tests.fixtures.cluster import start_cluster

ADMIN = "tls-admin-token-0123456789"


def _stop(srv: ServerProcess) -> None:
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    out = {"cert": d / "server.pem", "key": d / "server.key", "ca": d / "ca.pem"}
    server.cert_chain_pems[0].write_to_path(str(out["cert"]))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(out["cert"]), append=True)
    server.private_key_pem.write_to_path(str(out["key"]))
    ca.cert_pem.write_to_path(str(out["ca"]))
    return out


def _client_ctx(ca: trustme.CA, leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if leaf is not None:
        leaf.configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module", params=MODES)
def https(
    request: pytest.FixtureRequest,
    files: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A server that speaks HTTPS only: ``mussel serve`` of two processes, or a
    distributed cluster (its dispatchers, replayers and worker)."""
    if request.param == "distributed":
        cluster = start_cluster(
            tmp_path_factory.mktemp("https-cluster"),
            request.getfixturevalue("postgres_server"),
            request.getfixturevalue("kafka_bootstrap"),
            "--tls-cert", str(files["cert"]), "--tls-key", str(files["key"]),
        )  # fmt: skip
        yield cluster.url.replace("http://", "https://")
        cluster.cluster.stop()
        return
    srv = start_server(
        tmp_path_factory.mktemp("https") / "data",
        "--tls-cert", str(files["cert"]), "--tls-key", str(files["key"]),
    )  # fmt: skip
    yield f"https://127.0.0.1:{srv.port}"
    _stop(srv)


def test_https_serves_clients_that_trust_its_ca(https: str, ca: trustme.CA) -> None:
    for _ in range(4):  # new connections: both processes
        with httpx.Client(verify=_client_ctx(ca), timeout=10) as c:
            assert c.put(f"{https}/v1/namespaces/tls", json={}).status_code == 200
            assert c.get(f"{https}/v1/namespaces/tls").status_code == 200


def test_https_refuses_plain_http_and_untrusting_clients(https: str) -> None:
    with httpx.Client(timeout=10) as c, pytest.raises(httpx.ConnectError):
        c.get(f"{https}/healthz")  # the system CAs do not know the test CA
    plain = https.replace("https://", "http://")
    with httpx.Client(timeout=10) as c, pytest.raises(httpx.HTTPError):
        c.get(f"{plain}/healthz")


@pytest.fixture(scope="module", params=MODES)
def mtls(
    request: pytest.FixtureRequest,
    files: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Tokens, HTTPS and client certificates: ``mussel serve`` of two processes, or a
    distributed cluster whose dispatchers take clients' certificates (its replayers
    and worker run with tokens, serving only their metrics)."""
    if request.param == "distributed":
        cluster = start_cluster(
            tmp_path_factory.mktemp("mtls-cluster"),
            request.getfixturevalue("postgres_server"),
            request.getfixturevalue("kafka_bootstrap"),
            "--auth",
            "token",
            env={"MUSSEL_ADMIN_TOKEN": ADMIN},
            dispatcher_extra=(
                *("--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])),
                *("--tls-client-ca", str(files["ca"])),
            ),
        )
        yield cluster.url.replace("http://", "https://")
        cluster.cluster.stop()
        return
    os.environ["MUSSEL_ADMIN_TOKEN"] = ADMIN
    try:
        srv = start_server(
            tmp_path_factory.mktemp("mtls") / "data",
            "--auth", "token",
            "--tls-cert", str(files["cert"]), "--tls-key", str(files["key"]),
            "--tls-client-ca", str(files["ca"]),
        )  # fmt: skip
    finally:
        del os.environ["MUSSEL_ADMIN_TOKEN"]
    yield f"https://127.0.0.1:{srv.port}"
    _stop(srv)


def test_mtls_maps_a_certificate_to_its_token(mtls: str, ca: trustme.CA) -> None:
    admin_cert = ca.issue_cert("admin-client", common_name="admin-client")
    headers = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(verify=_client_ctx(ca, admin_cert), timeout=10, headers=headers) as c:
        assert c.put(f"{mtls}/v1/namespaces/shop", json={}).status_code == 200
        assert c.put(f"{mtls}/v1/namespaces/shop/tables/t", json={}).status_code == 200
        token = c.post(f"{mtls}/v1/tokens", json={"scopes": ["shop:read"]}).json()
    reader = ca.issue_cert("reader", common_name=token["id"])
    stranger = ca.issue_cert("stranger", common_name="no-such-token")
    for _ in range(4):  # both processes; no bearer token: the certificate decides
        with httpx.Client(verify=_client_ctx(ca, reader), timeout=10) as c:
            assert c.get(f"{mtls}/v1/namespaces/shop/tables/t/scan").status_code == 200
            r = c.put(f"{mtls}/v1/namespaces/shop/tables/u", json={})  # handed to the owner
            assert r.status_code == 403
            # a header cannot claim another identity
            r = c.put(
                f"{mtls}/v1/namespaces/shop/tables/u",
                json={},
                headers={"mussel-internal-cert": "admin-env"},
            )
            assert r.status_code == 403
        with httpx.Client(verify=_client_ctx(ca, stranger), timeout=10) as c:
            assert c.get(f"{mtls}/v1/namespaces/shop/tables/t/scan").status_code == 401


def test_mtls_refuses_no_certificate_a_foreign_ca_and_an_expired_one(
    mtls: str, ca: trustme.CA
) -> None:
    foreign = trustme.CA().issue_cert("x", common_name="admin-env")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    expired = ca.issue_cert(
        "x", common_name="admin-env", not_before=past - datetime.timedelta(days=2), not_after=past
    )
    for leaf in (None, foreign, expired):
        with (
            httpx.Client(verify=_client_ctx(ca, leaf), timeout=10) as c,
            pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        ):
            c.get(f"{mtls}/v1/namespaces")


def test_tls_files_that_do_not_work_stop_the_start(tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(RuntimeError, match="cannot use the TLS files"):
        start_server(
            tmp_path / "a", "--tls-cert", str(files["key"]), "--tls-key", str(files["key"])
        )
    with pytest.raises(RuntimeError, match="needs both --tls-cert and --tls-key"):
        start_server(tmp_path / "b", "--tls-cert", str(files["cert"]))
