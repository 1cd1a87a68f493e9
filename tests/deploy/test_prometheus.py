"""The Grafana dashboard's queries, run by a real Prometheus that scrapes a real server.

Prometheus comes from Debian's ``prometheus`` package (``apt-get install prometheus``;
no wheel ships it). Where it is not installed this module is skipped: the parse-and-
name checks of test_grafana.py still run everywhere.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, start_server
from tests.deploy.test_grafana import expressions, load_dashboard

PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="no `prometheus` binary (Debian: apt-get install prometheus); "
        "the dashboard's queries are still parsed and checked by test_grafana.py",
    ),
]

SCRAPE_INTERVAL_S = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, ServerProcess]]:
    """(Prometheus's URL, the server it scrapes every second)."""
    config = tmp_path / "mussel.toml"
    # No read meets this target: batch requests are shed (503) and counted.
    config.write_text("[server]\nonline_latency_target_s = 0.0\n")
    srv = start_server(tmp_path / "data", "--config", str(config), processes=2)
    port = _free_port()
    (tmp_path / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
        "scrape_configs:\n  - job_name: mussel\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{srv.port}']\n"
    )
    assert PROMETHEUS is not None
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus did not start"
            time.sleep(0.1)
        yield url, srv
    finally:
        proc.terminate()
        proc.wait(30)
        srv.stop()
        if srv.proc.stderr:
            srv.proc.stderr.close()


def _workload(c: httpx.Client, seconds: float) -> None:
    """A little of everything the dashboard plots, including every kind of refusal."""
    users = "/v1/namespaces/shop/tables/users"
    assert c.put("/v1/namespaces/shop", json={}).status_code == 200
    assert c.put(users, json={"max_versions": 1}).status_code == 200
    assert c.put("/v1/namespaces/metered", json={"quotas": {"read_qps": 1}}).status_code == 200
    assert c.put("/v1/namespaces/metered/tables/t", json={}).status_code == 200
    full = {"quotas": {"storage_bytes": 1}}
    assert c.put("/v1/namespaces/full", json=full).status_code == 200
    assert c.put("/v1/namespaces/full/tables/t", json={}).status_code == 200
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        i += 1
        records = [{"pk": f"u{k}", "sk": "n", "value": f"v{i}"} for k in range(5)]
        seen.add(c.post(f"{users}/write", json={"records": records}).status_code)
        for k in range(10):
            seen.add(c.get(f"{users}/rows/u{k % 5}").status_code)
        seen.add(c.get(f"{users}/scan", headers={"mussel-priority": "batch"}).status_code)
        seen.add(c.get("/v1/namespaces/metered/tables/t/rows/p").status_code)
        record = {"records": [{"pk": "p", "value": "x" * 100}]}
        seen.add(c.post("/v1/namespaces/full/tables/t/write", json=record).status_code)
        time.sleep(0.05)
    assert c.post(f"{users}/expire").status_code == 202
    deadline = time.monotonic() + 30
    while c.get(users).json()["table"]["expiration"]["last_run"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert {200, 429, 503, 507} <= seen, seen


def _query(url: str, expr: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body: dict[str, Any] = r.json()
    return body


def test_every_dashboard_query_runs_and_returns_series(
    prometheus: tuple[str, ServerProcess],
) -> None:
    url, srv = prometheus
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        _workload(c, seconds=6)
    time.sleep(3 * SCRAPE_INTERVAL_S)  # the last requests and the expiration run scraped
    empty: list[str] = []
    for where, expr in expressions(load_dashboard()):
        # what Grafana sends with the namespace variable at "All"
        query = expr.replace("$__rate_interval", "10s").replace("$namespace", ".*")
        body = _query(url, query)
        assert body["status"] == "success", (where, query, body)
        if not body["data"]["result"]:
            empty.append(f"{where}: {query}")
    assert empty == []
    # and the query check does see a wrong name: Prometheus answers, with nothing
    assert _query(url, "rate(mussel_request_total[10s])")["data"]["result"] == []
