"""Sources, layouts and bad input: a clear error, and the table as it was."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mussel.bulkload import JobManager
from mussel.engine import Store
from mussel.errors import InvalidRequestError, TableNotFoundError
from mussel.model import Put
from tests.unit.bulkload.conftest import T0, content, load, write_cells

BEFORE = [(b"keep", b"", 1, b"before")]


@pytest.fixture(autouse=True)
def _existing(store: Store) -> None:
    store.table("ns", "t").write([Put("keep", "", "before", ts=1)], ack="applied")


def test_directory_of_spark_output_with_hive_partitions(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    d = tmp_path / "out"
    write_cells(d / "day=2024-01-01" / "part-00000-a.snappy.parquet", [("a", "x", "1")])
    write_cells(d / "day=2024-01-02" / "part-00000-b.snappy.parquet", [("b", "x", "2")])
    (d / "_SUCCESS").write_bytes(b"")
    (d / ".part-00000-a.snappy.parquet.crc").write_bytes(b"junk")
    (d / "_temporary").mkdir()
    (d / "_temporary" / "junk.parquet").write_bytes(b"junk")
    job = load(jobs, d, mode="merge")
    assert job.state == "committed", job.error
    assert content(store) == [(b"a", b"x", T0, b"1"), (b"b", b"x", T0, b"2"), *BEFORE]


def test_wide_layout_gets_hive_partition_columns_as_cells(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    d = tmp_path / "out"
    path = d / "region=eu" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["u1"], "score": [3]}), path)
    job = load(jobs, f"file://{d}", layout="wide", columns={"pk": "id"})
    assert job.state == "committed", job.error
    assert content(store)[1:] == [(b"u1", b"region", T0, b"eu"), (b"u1", b"score", T0, b"3")]


def test_glob_source(store: Store, jobs: JobManager, tmp_path: Path) -> None:
    write_cells(tmp_path / "g" / "a-1.parquet", [("a", "", "1")])
    write_cells(tmp_path / "g" / "b-1.parquet", [("b", "", "1")])
    write_cells(tmp_path / "g" / "a-2.parquet", [("c", "", "1")])
    job = load(jobs, str(tmp_path / "g" / "a-*.parquet"))
    assert job.state == "committed", job.error
    assert [pk for pk, *_ in content(store)] == [b"a", b"c", b"keep"]


def test_wide_layout_encodes_every_type_reversibly(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "pk": ["u1", "u2"],
            "name": ["Ann", None],
            "raw": pa.array([b"\x00\xff", b"x"], pa.binary()),
            "n": pa.array([-42, 7], pa.int64()),
            "f": pa.array([0.1, 1e20], pa.float64()),
            "ok": [True, False],
            "d": pa.array([Decimal("12.340"), None], pa.decimal128(5, 3)),
            "tags": [["a", "b"], []],
            "s": [{"x": 1, "y": "z"}, None],
            "updated": pa.array([5, 6], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "w.parquet")
    job = load(jobs, tmp_path / "w.parquet", layout="wide", columns={"ts": "updated"})
    assert job.state == "committed", job.error
    u1 = {sk: (ts, v) for pk, sk, ts, v in content(store) if pk == b"u1"}
    assert u1 == {
        b"name": (5, b"Ann"),
        b"raw": (5, b"\x00\xff"),
        b"n": (5, b"-42"),
        b"f": (5, b"0.1"),
        b"ok": (5, b"true"),
        b"d": (5, b"12.340"),
        b"tags": (5, b'["a","b"]'),
        b"s": (5, b'{"x":1,"y":"z"}'),
    }
    u2 = {sk: v for pk, sk, _, v in content(store) if pk == b"u2"}
    assert set(u2) == {b"raw", b"n", b"f", b"ok", b"tags"}  # nulls are no cell
    assert float(u2[b"f"]) == 1e20 and u2[b"ok"] == b"false"
    assert json.loads(u2[b"tags"]) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "upsert"}, "mode must be one of"),
        ({"layout": "tall"}, "layout must be one of"),
        ({"columns": {"colour": "x"}}, "unknown column role"),
        ({"ts": "yesterday"}, "ts must be an integer"),
    ],
)
def test_bad_request_fields_are_rejected_at_submission(
    store: Store, jobs: JobManager, tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    src = write_cells(tmp_path / "in.parquet", [("a", "", "v")])
    with pytest.raises(InvalidRequestError, match=match):
        jobs.submit("ns", "t", str(src), **kwargs)  # type: ignore[arg-type]
    assert jobs.list() == []
    assert content(store) == BEFORE


def test_missing_file_not_parquet_and_truncated_are_rejected_naming_the_file(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        jobs.submit("ns", "t", str(tmp_path / "nope.parquet"))
    (tmp_path / "text.parquet").write_text("pk,sk,value\n")
    with pytest.raises(InvalidRequestError, match=r"text\.parquet is not a readable Parquet"):
        jobs.submit("ns", "t", str(tmp_path / "text.parquet"))
    good = write_cells(tmp_path / "good.parquet", [("a", "", "v")] * 100)
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[:-20])
    with pytest.raises(InvalidRequestError, match=r"cut\.parquet"):
        jobs.submit("ns", "t", str(tmp_path / "cut.parquet"))
    with pytest.raises(InvalidRequestError, match="no file matches"):
        jobs.submit("ns", "t", str(tmp_path / "*.nothing"))
    with pytest.raises(TableNotFoundError):
        jobs.submit("ns", "nope", str(good))
    assert content(store) == BEFORE


def test_missing_and_mistyped_columns_are_rejected(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    pq.write_table(pa.table({"pk": ["a"], "value": ["v"]}), tmp_path / "nosk.parquet")
    with pytest.raises(InvalidRequestError, match="no sk column 'sk'"):
        jobs.submit("ns", "t", str(tmp_path / "nosk.parquet"))
    pq.write_table(pa.table({"pk": [1], "sk": ["s"], "value": ["v"]}), tmp_path / "int.parquet")
    with pytest.raises(InvalidRequestError, match="pk column 'pk' is int64"):
        jobs.submit("ns", "t", str(tmp_path / "int.parquet"))
    pq.write_table(
        pa.table({"pk": ["a"], "sk": ["s"], "value": ["v"], "ts": ["x"]}), tmp_path / "ts.parquet"
    )
    with pytest.raises(InvalidRequestError, match="ts column 'ts' is string"):
        jobs.submit("ns", "t", str(tmp_path / "ts.parquet"))
    with pytest.raises(InvalidRequestError, match="no ts column 'when'"):
        jobs.submit("ns", "t", str(tmp_path / "nosk.parquet"), columns={"sk": "pk", "ts": "when"})
    assert content(store) == BEFORE


def test_a_bad_row_fails_the_job_naming_file_and_row_and_leaves_the_table(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    rows = [(f"k{i}", "", "v") for i in range(2500)]
    rows[2100] = ("x" * 2000, "", "v")
    src = write_cells(tmp_path / "big-pk.parquet", rows)
    job = load(jobs, src)
    assert job.state == "failed"
    assert job.error is not None and job.error.code == "too_large"
    assert "big-pk.parquet, row 2100: the pk is 2000 bytes" in job.error.message
    assert content(store) == BEFORE
    info = store.table_info("ns", "t")
    assert info.pending_epochs == () and info.aborted_epochs == (job.epoch,)


def test_null_and_empty_keys_fail_the_job(store: Store, jobs: JobManager, tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"pk": ["a", None], "sk": ["", ""], "value": ["v", "v"]}), tmp_path / "n.parquet"
    )
    job = load(jobs, tmp_path / "n.parquet")
    assert job.state == "failed" and job.error is not None
    assert "n.parquet, row 1: the pk is null" in job.error.message
    src = write_cells(tmp_path / "e.parquet", [("a", "", "v"), ("", "", "v")])
    job = load(jobs, src)
    assert job.state == "failed" and job.error is not None
    assert "e.parquet, row 1: the pk is empty" in job.error.message
    assert content(store) == BEFORE


def test_corrupt_data_pages_fail_the_job_naming_the_file(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    """The footer is intact (submission passes); the pages are not."""
    src = write_cells(
        tmp_path / "in.parquet", [(f"k{i}", "", f"value-{i}" * 5) for i in range(5000)]
    )
    data = bytearray(src.read_bytes())
    for i in range(8, len(data) // 2):
        data[i] = 0xAB
    src.write_bytes(bytes(data))
    job = load(jobs, src, mode="replace")
    assert job.state == "failed", job
    assert job.error is not None and "in.parquet" in job.error.message
    assert content(store) == BEFORE  # the replace never committed


def test_any_fsspec_url(store: Store, jobs: JobManager) -> None:
    """A scheme pyarrow has no filesystem for goes through fsspec (here its memory://)."""
    import io

    import fsspec

    fs = fsspec.filesystem("memory")
    buf = io.BytesIO()
    pq.write_table(pa.table({"pk": ["m"], "sk": [""], "value": ["mem"]}), buf)
    with fs.open("/bulk-test/part-0.parquet", "wb") as f:
        f.write(buf.getvalue())
    fs.pipe("/bulk-test/_SUCCESS", b"")
    try:
        job = load(jobs, "memory://bulk-test/")
        assert job.state == "committed", job.error
        assert (b"m", b"", T0, b"mem") in content(store)
    finally:
        fs.rm("/bulk-test", recursive=True)
