"""SPEC §4 bulk loads and jobs over HTTP: POST .../bulkloads, GET /v1/jobs[/{id}], cancel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.contract.conftest import Api, Table, error_code, values


def parquet(path: Path, rows: list[tuple[str, str, str]], **kw: Any) -> Path:
    pq.write_table(
        pa.table(
            {
                "pk": [r[0] for r in rows],
                "sk": [r[1] for r in rows],
                "value": [r[2] for r in rows],
            }
        ),
        path,
        **kw,
    )
    return path


def wait_job(api: Api, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        resp = api.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()["job"]
        if job["state"] in ("committed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_bulk_load_replace_then_read(api: Api, table: Table, tmp_path: Path) -> None:
    table.put("old", "", "gone", ts=1)
    src = parquet(tmp_path / "in.parquet", [("a", "x", "1"), ("b", "", "2"), ("a", "x", "dup")])
    resp = api.post(f"{table.path}/bulkloads", json={"source": str(src), "mode": "replace"})
    assert resp.status_code == 202, resp.text
    job = resp.json()["job"]
    assert job["state"] in ("pending", "running", "committed")
    job = wait_job(api, job["id"])
    assert job["state"] == "committed", job
    assert job["duplicates_dropped"] == 1
    assert job["progress"]["rows"] == 3 and job["progress"]["fraction"] == 1.0
    assert job["error"] is None
    cells = api.get(f"{table.path}/scan").json()["cells"]
    assert [(c["pk"], c["sk"], c["value"]) for c in cells] == [("a", "x", "dup"), ("b", "", "2")]
    assert values(table.row("a")) == [("x", "dup")]
    listed = api.get("/v1/jobs", params={"namespace": table.ns}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_client_chosen_job_id_is_idempotent(api: Api, table: Table, tmp_path: Path) -> None:
    src = parquet(tmp_path / "in.parquet", [("a", "", "1")])
    body = {"source": f"file://{src}", "id": f"{table.ns}-load-1", "ts": 42}
    first = api.post(f"{table.path}/bulkloads", json=body)
    assert first.status_code == 202
    wait_job(api, body["id"])
    again = api.post(f"{table.path}/bulkloads", json=body)
    assert again.status_code == 202
    assert again.json()["job"]["state"] == "committed"
    other = api.post(f"{table.path}/bulkloads", json={**body, "mode": "insert_ignore"})
    assert other.status_code == 409 and error_code(other) == "conflict"
    cells = api.get(f"{table.path}/scan").json()["cells"]
    assert [(c["pk"], c["ts"]) for c in cells] == [("a", 42)]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"source": "/nonexistent/x.parquet"}, "invalid_request"),
        ({"source": "/tmp", "mode": "upsert"}, "invalid_request"),
        ({"source": "/tmp", "layout": "tall"}, "invalid_request"),
        ({"mode": "merge"}, "invalid_request"),
        ({"source": "/tmp", "colour": 1}, "invalid_request"),
    ],
)
def test_bad_bulk_load_requests(api: Api, table: Table, body: dict[str, Any], code: str) -> None:
    resp = api.post(f"{table.path}/bulkloads", json=body)
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == code


def test_not_parquet_and_missing_columns_are_400(api: Api, table: Table, tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_text("hello")
    resp = api.post(f"{table.path}/bulkloads", json={"source": str(tmp_path / "x.parquet")})
    assert resp.status_code == 400 and "x.parquet" in resp.json()["error"]["message"]
    pq.write_table(pa.table({"pk": ["a"]}), tmp_path / "y.parquet")
    resp = api.post(f"{table.path}/bulkloads", json={"source": str(tmp_path / "y.parquet")})
    assert resp.status_code == 400 and "no sk column" in resp.json()["error"]["message"]


def test_unknown_table_and_job(api: Api, ns: str) -> None:
    resp = api.post(f"/v1/namespaces/{ns}/tables/nope/bulkloads", json={"source": "/tmp"})
    assert resp.status_code == 404 and error_code(resp) == "table_not_found"
    resp = api.get("/v1/jobs/no-such-job")
    assert resp.status_code == 404 and error_code(resp) == "job_not_found"
    resp = api.post("/v1/jobs/no-such-job/cancel")
    assert resp.status_code == 404 and error_code(resp) == "job_not_found"


def test_a_failed_job_reports_file_and_row(api: Api, table: Table, tmp_path: Path) -> None:
    src = parquet(tmp_path / "bad.parquet", [("a", "", "1"), ("x" * 5000, "", "2")])
    resp = api.post(f"{table.path}/bulkloads", json={"source": str(src)})
    assert resp.status_code == 202
    job = wait_job(api, resp.json()["job"]["id"])
    assert job["state"] == "failed"
    assert job["error"]["code"] == "too_large"
    assert "bad.parquet, row 1" in job["error"]["message"]
    assert api.get(f"{table.path}/scan").json()["cells"] == []


def test_cancel_a_job(api: Api, table: Table, tmp_path: Path) -> None:
    rows = [(f"k{i:07d}", "", "v" * 50) for i in range(300_000)]
    src = parquet(tmp_path / "big.parquet", rows, row_group_size=5000)
    resp = api.post(f"{table.path}/bulkloads", json={"source": str(src)})
    job_id = resp.json()["job"]["id"]
    resp = api.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 200
    job = wait_job(api, job_id)
    assert job["state"] in ("cancelled", "committed")
    if job["state"] == "cancelled":
        assert api.get(f"{table.path}/scan", params={"limit": 1}).json()["cells"] == []


def test_put_table_with_presplit_samples_the_source(api: Api, ns: str, tmp_path: Path) -> None:
    src = parquet(tmp_path / "s.parquet", [(f"k{i:04d}", "", "v") for i in range(1000)])
    body = {"partitioning": {"kind": "range", "presplit": {"sample": str(src), "shards": 4}}}
    resp = api.put(f"/v1/namespaces/{ns}/tables/pre", json=body)
    assert resp.status_code == 200, resp.text
    part = resp.json()["table"]["partitioning"]
    assert part["kind"] == "range" and len(part["split_points"]) == 3
    assert part["split_points"] == sorted(part["split_points"])
    bad = {"partitioning": {"kind": "range", "presplit": {"sample": "/nope", "shards": 4}}}
    resp = api.put(f"/v1/namespaces/{ns}/tables/pre2", json=bad)
    assert resp.status_code == 400 and error_code(resp) == "invalid_request"
