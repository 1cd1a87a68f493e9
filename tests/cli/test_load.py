"""``mussel load`` and ``mussel job``: a real bulk load through the CLI."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mussel import Client
from tests.cli.conftest import Mussel


def test_load_replace_and_jobs(mussel: Mussel, client: Client, table: str, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "sk": ["a", "b"], "value": ["1", "2"]}), src)
    out = mussel.ok(
        "load", str(src), "--table", table, "--mode", "replace", "--column", "pk=user_id",
        "--id", f"{table.replace('/', '-')}-1",
    )  # fmt: skip
    assert "committed: 2 rows, 2 cells" in out
    ns, name = table.split("/")
    assert [c.value for c in client.get(ns, name, "u2", "b")] == [b"2"]
    job_id = f"{table.replace('/', '-')}-1"
    doc = mussel.json("job", "show", job_id)
    assert doc["job"]["state"] == "committed" and doc["job"]["progress"]["rows"] == 2
    listed = mussel.json("job", "list", "--namespace", ns)
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    assert "committed" in mussel.ok("job", "list", "--namespace", ns)
    assert mussel.json("job", "cancel", job_id)["job"]["state"] == "committed"


def test_load_no_wait_json(mussel: Mussel, table: str, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"pk": ["a"], "x": [1]}), src)
    doc = mussel.json("load", str(src), "--table", table, "--layout", "wide", "--no-wait")
    assert doc["job"]["layout"] == "wide"


def test_load_failures(mussel: Mussel, table: str, tmp_path: Path) -> None:
    err = mussel.fails("load", str(tmp_path / "missing.parquet"), "--table", table)
    assert "does not exist" in err and "(invalid_request)" in err
    src = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"pk": ["a", ""], "sk": ["", ""], "value": ["1", "2"]}), src)
    result = mussel("load", str(src), "--table", table)
    assert result.exit_code == 1
    assert "bad.parquet, row 1: the pk is empty" in result.stdout
    assert "failed" in result.stderr
    assert mussel.fails("load", "x", "--table", "nonsense", code=2)
    assert "job_not_found" in mussel.fails("job", "show", "nope")
