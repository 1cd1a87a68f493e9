"""``mussel expire``: a run now (``--wait`` for its figures) and ``--report``."""

from __future__ import annotations

import time

from mussel import Client, Put
from tests.cli.conftest import Mussel, fresh


def _old_versions(client: Client, table: str) -> None:
    ns, name = table.split("/")
    now = int(time.time() * 1e6)
    client.write(
        ns, name, [Put(f"k{i}", "s", f"v{v}", ts=now - v) for i in range(20) for v in range(5)]
    )


def test_expire_wait_removes_surplus_versions_and_reports(
    mussel: Mussel, client: Client, table: str
) -> None:
    _old_versions(client, table)  # max_versions 3: 2 surplus versions per cell
    out = mussel.ok("expire", table, "--wait")
    assert "versions removed" in out and "40" in out
    assert "physically removed" in out
    doc = mussel.json("expire", table, "--report")
    (t,) = doc["tables"]
    assert t["last_run"]["removed"] == 40 and t["last_run"]["state"] == "done"
    assert t["max_versions"] == 3 and t["state"] == "idle"
    # logical bytes and bytes measured on the file system (RocksDB: before/after)
    run = t["last_run"]
    assert run["removed_bytes"] > 0 and isinstance(run["disk_bytes_before"], int)
    assert run["disk_reclaimed"] == max(0, run["disk_bytes_before"] - run["disk_bytes_after"])
    assert "bytes removed (logical)" in out and "returned to the file system" in out


def test_expire_without_wait_says_it_started(mussel: Mussel, table: str) -> None:
    out = mussel.ok("expire", table)
    assert f"expiration of {table}:" in out
    doc = mussel.json("expire", table)
    assert doc["expiration"]["state"] in ("queued", "running", "idle")


def test_report_of_a_namespace_lists_every_table(mussel: Mussel, client: Client, ns: str) -> None:
    for name in ("a", "b"):
        client.put_table(ns, name, ttl_seconds=60)
    out = mussel.ok("expire", ns, "--report")
    assert f"{ns}/a" in out and f"{ns}/b" in out
    assert "No expiration run of this table has completed yet." in out
    doc = mussel.json("expire", ns, "--report")
    assert [t["table"] for t in doc["tables"]] == ["a", "b"]


def test_expire_errors_are_clear(mussel: Mussel, ns: str) -> None:
    err = mussel.fails("expire", f"{ns}/{fresh()}")
    assert "table_not_found" in err
    err = mussel.fails("expire", "no-slash", code=2)  # a usage error: a run needs NS/TABLE
    assert "NS/TABLE" in err or "ns/table" in err.lower()
