"""SPEC §7 priorities: ``Mussel-Priority: online|batch``; batch work waits (503 with
``Retry-After``) while online reads are slow; usage shows refused requests."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, start_server
from tests.contract.conftest import MODES, Api, Table, error_code
from tests.fixtures.cluster import ClusterServer, start_cluster


def test_priority_header_is_checked(api: Api, table: Table) -> None:
    table.put("p", "s", "v")
    for priority in ("online", "batch"):
        assert table.scan(headers={"mussel-priority": priority}).status_code == 200
    resp = table.scan(headers={"mussel-priority": "urgent"})
    assert resp.status_code == 400 and error_code(resp) == "invalid_request"


@pytest.mark.parametrize("mode", MODES)
def test_batch_requests_wait_while_online_reads_are_slow(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # a target no read can meet: every batch request is held back, online ones are not
    config = tmp_path / "mussel.toml"
    config.write_text("[server]\nonline_latency_target_s = 0.0\n")
    srv: ServerProcess | ClusterServer
    if mode == "distributed":  # one dispatcher: the p99 is each process's own
        srv = start_cluster(
            tmp_path / "cluster",
            request.getfixturevalue("postgres_server"),
            request.getfixturevalue("kafka_bootstrap"),
            "--config",
            str(config),
            dispatchers=1,
        )
    else:
        srv = start_server(tmp_path / "data", "--config", str(config), processes=1)
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            c.put("/v1/namespaces/ns", json={})
            c.put("/v1/namespaces/ns/tables/t", json={})
            c.post(
                "/v1/namespaces/ns/tables/t/write", json={"records": [{"pk": "p", "value": "v"}]}
            )
            for _ in range(60):  # enough online reads for a p99
                assert c.get("/v1/namespaces/ns/tables/t/rows/p?sk=").status_code == 200
            r = c.get("/v1/namespaces/ns/tables/t/scan", headers={"mussel-priority": "batch"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
            assert int(r.headers["retry-after"]) >= 1
            online = c.get("/v1/namespaces/ns/tables/t/scan")
            assert online.status_code == 200
            usage = c.get("/v1/namespaces/ns").json()["namespace"]["usage"]
            assert usage["shed"] == 1 and usage["throttled"] == 0
            # names a client makes up never become label values (bounded cardinality)
            ghost = c.get(
                "/v1/namespaces/ghost/tables/t/scan", headers={"mussel-priority": "batch"}
            )
            assert ghost.status_code == 503
            bad = c.post("/v1/namespaces/ghost2/tables/t/write", content=b"{not json")
            assert bad.status_code == 400
            text = c.get("/metrics").text
            assert 'mussel_shed_requests_total{namespace="ns",priority="batch"} 1' in text
            assert 'mussel_shed_requests_total{namespace="",priority="batch"} 1' in text
            assert "ghost" not in text
    finally:
        srv.stop()
        if isinstance(srv, ClusterServer):
            srv.cluster.stop()
        elif srv.proc.stderr:
            srv.proc.stderr.close()
