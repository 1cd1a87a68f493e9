"""Presplit: split points sampled from a source (SPEC §1 partitioning)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mussel.bulkload.presplit import resolve_presplit, split_points
from mussel.engine import Store
from mussel.errors import InvalidRequestError


def _files(root: Path, n: int = 10_000) -> Path:
    root.mkdir()
    for f in range(4):
        pks = [f"k{i:06d}" for i in range(f, n, 4)]  # every file spans the whole range
        pq.write_table(
            pa.table({"id": pks, "v": ["x"] * len(pks)}),
            root / f"part-{f}.parquet",
            row_group_size=500,
        )
    (root / "_SUCCESS").write_bytes(b"")
    return root


def test_split_points_are_near_the_quantiles(tmp_path: Path) -> None:
    src = _files(tmp_path / "s")
    points = split_points(str(src), 4, pk_column="id")
    assert len(points) == 3 and points == sorted(set(points))
    for got, want in zip(points, (2500, 5000, 7500), strict=True):
        assert abs(int(got[1:]) - want) < 600, points


def test_resolve_presplit_creates_a_range_table(tmp_path: Path) -> None:
    src = _files(tmp_path / "s")
    opts = resolve_presplit(
        {
            "max_versions": 2,
            "partitioning": {
                "kind": "range",
                "presplit": {"sample": str(src), "shards": 8, "pk_column": "id"},
            },
        }
    )
    assert opts["max_versions"] == 2 and len(opts["partitioning"]["split_points"]) == 7
    with Store.memory() as store:
        store.put_namespace("ns")
        t = store.put_table("ns", "t", opts).info
        assert t.options.partitioning.kind == "range"
        assert len(t.options.partitioning.split_points or []) == 7


def test_few_distinct_keys_give_fewer_points(tmp_path: Path) -> None:
    pq.write_table(pa.table({"pk": ["a", "a", "b"]}), tmp_path / "x.parquet")
    assert split_points(str(tmp_path / "x.parquet"), 16) in ([b"a", b"b"], [b"b"])
    assert split_points(str(tmp_path / "x.parquet"), 1) == []


@pytest.mark.parametrize(
    ("presplit", "match"),
    [
        ({"sample": "/nonexistent", "shards": 2}, "does not exist"),
        ({"sample": "S", "shards": 0}, "shards"),
        ({"sample": "S", "shards": 2, "pk_column": "nope"}, "no string or binary pk column"),
        ({"sample": "S", "shards": 2, "x": 1}, "unknown presplit field"),
        ({"shards": 2}, "presplit must be"),
    ],
)
def test_bad_presplit(tmp_path: Path, presplit: dict[str, object], match: str) -> None:
    src = _files(tmp_path / "s")
    spec = {k: (str(src) if v == "S" else v) for k, v in presplit.items()}
    with pytest.raises(InvalidRequestError, match=match):
        resolve_presplit({"partitioning": {"kind": "range", "presplit": spec}})
    with pytest.raises(InvalidRequestError, match="range"):
        resolve_presplit({"partitioning": {"kind": "hash", "presplit": spec}})
