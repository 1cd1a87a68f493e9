"""SPEC §4 ``POST .../tables/{t}/expire``: an expiration run of that table, now."""

from __future__ import annotations

import time

from tests.contract.conftest import Api, ClusterServer, Table, error_code, values


def _wait_for_run(api: Api, table: Table, timeout: float = 30.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        exp = api.get(table.path).json()["table"]["expiration"]
        if exp["last_run"] is not None and exp["state"] == "idle":
            return exp
        assert time.monotonic() < deadline, exp
        time.sleep(0.05)


def test_expire_runs_the_table_and_removes_only_invisible_versions(api: Api, table: Table) -> None:
    now = int(time.time() * 1e6)
    old = now - 3_600_000_000
    for i in range(5):  # max_versions is 3: two surplus versions per cell
        table.write(
            *({"pk": f"p{k}", "sk": "s", "value": f"v{i}", "ts": now - 5 + i} for k in range(10))
        )
    table.write({"pk": "expired", "sk": "s", "value": "x", "ts": old})
    assert api.put(table.path, json={"ttl_seconds": 600}).status_code == 200
    before = [values(table.row(f"p{k}", {"versions": 5})) for k in range(10)]
    resp = api.post(f"{table.path}/expire")
    assert resp.status_code == 202
    assert resp.json()["expiration"]["state"] in ("queued", "running", "idle")
    exp = _wait_for_run(api, table)
    run = exp["last_run"]
    assert run["state"] == "done" and run["reason"] == "on_demand"
    assert run["examined"] == 51 and run["removed"] == 21
    assert run["removed_bytes"] > 0 and run["ended_us"] >= run["started_us"]
    assert exp["next_run_us"] > run["ended_us"]
    assert [values(table.row(f"p{k}", {"versions": 5})) for k in range(10)] == before
    stats = api.get(table.path).json()["table"]["stats"]
    assert stats["approx_cells"] == 30
    text = api.get("/metrics").text
    assert f'mussel_expire_last_run_removed_versions{{namespace="{table.ns}",table="t"}} 21' in text


def test_expire_of_an_unknown_table_is_404(api: Api, ns: str) -> None:
    resp = api.post(f"/v1/namespaces/{ns}/tables/nope/expire")
    assert resp.status_code == 404 and error_code(resp) == "table_not_found"


def test_expire_takes_no_body_and_no_query(api: Api, table: Table) -> None:
    assert error_code(api.post(f"{table.path}/expire", json={"x": 1})) == "invalid_request"
    assert error_code(api.post(f"{table.path}/expire", params={"now": "1"})) == "invalid_request"
    resp = api.get(f"{table.path}/expire")
    assert resp.status_code == 405


def test_a_new_table_shows_an_idle_expiration(api: Api, table: Table) -> None:
    exp = api.get(table.path).json()["table"]["expiration"]
    assert exp["state"] == "idle" and exp["last_run"] is None and exp["running"] is None
    assert isinstance(exp["next_run_us"], int)


def test_a_table_has_its_own_expiration_interval(api: Api, table: Table) -> None:
    got = api.get(table.path).json()["table"]
    assert got["expire_interval_s"] is None  # the server's interval
    server_next = got["expiration"]["next_run_us"]
    resp = api.put(table.path, json={"expire_interval_s": 7})
    assert resp.status_code == 200 and resp.json()["table"]["expire_interval_s"] == 7
    got = api.get(table.path).json()["table"]
    assert got["expire_interval_s"] == 7
    assert got["expiration"]["next_run_us"] < server_next  # 7 s after creation, not 1 h
    for bad in (0, -3, 1.5, "10", True, 10**12, 2**63 - 1):
        resp = api.put(table.path, json={"expire_interval_s": bad})
        assert resp.status_code == 400 and error_code(resp) == "invalid_request", bad
    resp = api.put(table.path, json={"expire_interval_s": None})
    assert resp.status_code == 200 and resp.json()["table"]["expire_interval_s"] is None
    assert api.get(table.path).json()["table"]["expiration"]["next_run_us"] == server_next


def test_a_run_reports_logical_bytes_and_bytes_returned_to_the_file_system(
    api: Api, table: Table, shared_server: object
) -> None:
    """Embedded (RocksDB): the table's SST files shrink. Distributed (PostgreSQL): the
    shared cells relation is measured and keeps its size (space is reused, returned to
    the file system only by VACUUM FULL), so nothing is reported returned."""
    rocksdb = not isinstance(shared_server, ClusterServer)
    old = int(time.time() * 1e6) - 7_200_000_000
    blob = "x" * 2000
    for k in range(40):
        resp = table.write(
            *({"pk": f"old{k}", "sk": f"s{j}", "value": blob, "ts": old} for j in range(25)),
            ack="applied",
        )
        assert resp.status_code == 200, resp.text
    assert api.put(table.path, json={"ttl_seconds": 600}).status_code == 200
    assert api.post(f"{table.path}/expire").status_code == 202
    run = _wait_for_run(api, table)["last_run"]
    assert run["removed"] == 1000 and run["removed_bytes"] > 2_000_000
    assert run["range_deletes"] >= 1  # 1000 consecutive dead versions
    before, after = run["disk_bytes_before"], run["disk_bytes_after"]
    assert isinstance(before, int) and isinstance(after, int)
    assert run["disk_reclaimed"] == max(0, before - after)
    if rocksdb:
        assert after < before
    text = api.get("/metrics").text
    line = f'mussel_expire_last_run_reclaimed_disk_bytes{{namespace="{table.ns}",table="t"}} '
    shown = [ln for ln in text.splitlines() if ln.startswith(line)]
    assert len(shown) == 1 and float(shown[0][len(line) :]) == max(0, before - after)
