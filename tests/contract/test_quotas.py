"""SPEC §5/§7: storage and table quotas per namespace (507 ``quota_exceeded``)."""

from __future__ import annotations

import time

from tests.contract.conftest import Api, error_code, values


def test_writes_stop_at_the_storage_quota_and_reads_go_on(api: Api, ns: str) -> None:
    assert (
        api.put(f"/v1/namespaces/{ns}", json={"quotas": {"storage_bytes": 5000}}).status_code == 200
    )
    t = api.put_table(ns, "t")
    written = 0
    status = 200
    deadline = time.monotonic() + 30
    while status == 200:
        assert time.monotonic() < deadline, "the quota never stopped the writes"
        batch = [{"pk": f"k{written + i}", "value": "x" * 200} for i in range(5)]
        resp = t.write(*batch, ack="applied")
        status = resp.status_code
        if status == 200:
            written += 5
    assert status == 507 and error_code(resp) == "quota_exceeded"
    assert "storage quota" in resp.json()["error"]["message"]
    assert written >= 20  # 5000 bytes of ~210-byte cells, give or take the counters
    # nothing of the refused batch was written; reads go on
    assert values(t.row(f"k{written}")) == []
    assert values(t.row("k0")) == [("", "x" * 200)]
    # a bulk load is refused too, before it starts
    resp = api.post(f"{t.path}/bulkloads", json={"source": "/nonexistent.parquet"})
    assert resp.status_code == 507
    # more quota: writes are taken again
    api.put(f"/v1/namespaces/{ns}", json={"quotas": {"storage_bytes": 10**9}})
    time.sleep(0.6)  # the usage figure is cached for half a second
    assert t.write({"pk": "again", "value": "v"}).status_code == 200


def test_the_table_quota_stops_new_tables(api: Api, ns: str) -> None:
    api.put(f"/v1/namespaces/{ns}", json={"quotas": {"tables": 2}})
    api.put_table(ns, "a")
    api.put_table(ns, "b")
    resp = api.put(f"/v1/namespaces/{ns}/tables/c", json={})
    assert resp.status_code == 507 and error_code(resp) == "quota_exceeded"
    # altering an existing table is not creating one
    assert api.put(f"/v1/namespaces/{ns}/tables/a", json={"max_versions": 2}).status_code == 200
    api.delete(f"/v1/namespaces/{ns}/tables/b")
    assert api.put(f"/v1/namespaces/{ns}/tables/c", json={}).status_code == 200
