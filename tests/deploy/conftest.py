"""A real ``mussel serve`` that has done a little of everything, and its ``/metrics``.

The workload makes every metric the server exports carry at least one sample: requests
of several operations and status codes (404, 429 from a rate quota, 503 from load
shedding), writes the replayer applies, and a finished expiration run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_server


@dataclass
class Family:
    """One metric family of a scrape: its type, help and the label names of its samples."""

    name: str
    type: str
    help: str
    labels: set[str] = field(default_factory=set)
    samples: set[str] = field(default_factory=set)
    """The names its samples carry (a histogram's ``_bucket``, ``_sum``, ``_count``)."""


@dataclass
class Scrape:
    text: str
    families: dict[str, Family]

    def sample_names(self) -> dict[str, Family]:
        """Every name a PromQL selector can use, and the family it belongs to."""
        return {s: f for f in self.families.values() for s in f.samples}


def parse_scrape(text: str) -> Scrape:
    """The exposition, parsed by the Prometheus project's own Python parser."""
    families: dict[str, Family] = {}
    declared: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():  # the names exactly as exposed (the parser trims _total)
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            declared[name] = (kind, "")
    for fam in text_string_to_metric_families(text):
        exposed = fam.name + "_total" if fam.type == "counter" else fam.name
        if exposed not in declared:
            exposed = fam.name
        f = families[exposed] = Family(exposed, fam.type, fam.documentation)
        for s in fam.samples:
            f.samples.add(s.name)
            f.labels |= set(s.labels) - {"le"}
    assert set(families) == set(declared), (set(families), set(declared))
    return Scrape(text, families)


def _wait_for_expiration(c: httpx.Client, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        exp = c.get(path).json()["table"]["expiration"]
        if exp["last_run"] is not None and exp["state"] == "idle":
            return
        assert time.monotonic() < deadline, exp
        time.sleep(0.05)


@pytest.fixture(scope="session")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    root = tmp_path_factory.mktemp("deploy-metrics")
    config = root / "mussel.toml"
    # A latency target no read meets: batch requests are shed (503), online ones served.
    config.write_text("[server]\nonline_latency_target_s = 0.0\n")
    srv = start_server(Path(root / "data"), "--config", str(config), processes=1)
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            assert c.put("/v1/namespaces/shop", json={}).status_code == 200
            users = "/v1/namespaces/shop/tables/users"
            assert c.put(users, json={"max_versions": 1}).status_code == 200
            for i in range(3):  # surplus versions for the expiration run to remove
                records = [{"pk": f"u{k}", "sk": "name", "value": f"v{i}"} for k in range(5)]
                assert c.post(f"{users}/write", json={"records": records}).status_code == 200
            for k in range(60):  # online reads: a p99 for shedding, latencies to plot
                assert c.get(f"{users}/rows/u{k % 5}").status_code == 200
            assert c.post(f"{users}/get", json={"keys": [{"pk": "u1"}]}).status_code == 200
            assert c.get(f"{users}/scan").status_code == 200
            batch = c.get(f"{users}/scan", headers={"mussel-priority": "batch"})
            assert batch.status_code == 503
            assert c.get("/v1/namespaces/shop/tables/nope/rows/u1").status_code == 404
            assert c.post(f"{users}/expire").status_code == 202
            _wait_for_expiration(c, users)

            quota = {"quotas": {"read_qps": 1, "write_qps": 1000, "storage_bytes": 1 << 30}}
            assert c.put("/v1/namespaces/metered", json=quota).status_code == 200
            metered = "/v1/namespaces/metered/tables/t"
            assert c.put(metered, json={}).status_code == 200
            codes = {c.get(f"{metered}/rows/p").status_code for _ in range(5)}
            assert 429 in codes, codes
            text = c.get("/metrics").text
    finally:
        srv.stop()
        if srv.proc.stderr:
            srv.proc.stderr.close()
    yield parse_scrape(text)
