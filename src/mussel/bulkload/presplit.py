"""Presplit: split points of a range-partitioned table, computed by sampling a source.

SPEC §1: ``{"kind":"range","presplit":{"sample":"<url>","shards":N}}``. The table is
created with ``split_points`` taken at the N-quantiles of the pks of a sample of the
Parquet at ``sample`` (read like a bulk-load source: a file, a directory, a glob; the
pk column is ``pk`` unless ``"pk_column"`` says otherwise). ``resolve_presplit``
turns table options holding a presplit into options holding the computed
split points, which is what the catalog stores.

The sample is up to ``sample_rows`` pks, spread over the files: from each file, row
groups evenly spaced through it. Fewer distinct pks than shards give fewer split
points (never an empty or repeated one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mussel.bulkload.layouts import _is_keylike, _to_binary
from mussel.bulkload.source import open_source
from mussel.errors import InvalidRequestError

__all__ = ["resolve_presplit", "split_points"]

MAX_SHARDS = 4096


def split_points(
    url: str, shards: int, pk_column: str = "pk", sample_rows: int = 200_000
) -> list[bytes]:
    """``shards - 1`` (or fewer) strictly increasing, non-empty pks splitting the sample."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InvalidRequestError(f"presplit.shards must be an integer from 1 to {MAX_SHARDS}")
    src = open_source(url)
    per_file = max(1, sample_rows // max(1, len(src.files)))
    parts: list[pa.Array] = []
    for f in src.files:
        if pk_column not in f.schema.names or not _is_keylike(f.schema.field(pk_column).type):
            raise InvalidRequestError(
                f"{f.path}: no string or binary pk column {pk_column!r} to sample"
            )
        try:
            with src.fs.open_input_file(f.path) as handle:
                pf = pq.ParquetFile(handle)
                groups = pf.metadata.num_row_groups
                if groups == 0:
                    continue
                want = per_file
                step = max(1, groups // max(1, min(groups, 8)))
                for g in range(0, groups, step):
                    col = pf.read_row_group(g, columns=[pk_column]).column(pk_column)
                    arr = _to_binary(col.combine_chunks())
                    take = min(want, len(arr))
                    if take == 0:
                        continue
                    stride = max(1, len(arr) // take)
                    parts.append(arr.take(pa.array(range(0, len(arr), stride))[:take]))
                    want -= take
                    if want <= 0:
                        break
        except (OSError, pa.ArrowException) as exc:
            raise InvalidRequestError(f"{f.path}: cannot sample it: {exc}") from exc
    if shards == 1 or not parts:
        return []
    sample = pa.concat_arrays(parts)
    keys = pc.unique(sample.filter(pc.greater(pc.binary_length(sample), 0)))
    ordered = keys.take(pc.sort_indices(keys)).to_pylist()
    n = len(ordered)
    points: list[bytes] = []
    for i in range(1, shards):
        p = ordered[min(n - 1, i * n // shards)]
        if p and (not points or p > points[-1]):
            points.append(p)
    return points


def resolve_presplit(options: Mapping[str, Any]) -> dict[str, Any]:
    """Table options with a ``partitioning.presplit`` replaced by computed split points
    (other options unchanged; options without a presplit are returned as they are)."""
    out = dict(options)
    part = out.get("partitioning")
    if not isinstance(part, Mapping) or "presplit" not in part:
        return out
    if part.get("kind", "hash") != "range":
        raise InvalidRequestError("presplit is for range partitioning (kind 'range')")
    if "split_points" in part:
        raise InvalidRequestError("give either split_points or presplit, not both")
    spec = part["presplit"]
    if not isinstance(spec, Mapping) or not isinstance(spec.get("sample"), str):
        raise InvalidRequestError('presplit must be {"sample": url, "shards": N}')
    unknown = set(spec) - {"sample", "shards", "pk_column"}
    if unknown:
        raise InvalidRequestError(f"unknown presplit field(s): {', '.join(sorted(unknown))}")
    pk_column = spec.get("pk_column", "pk")
    if not isinstance(pk_column, str) or not pk_column:
        raise InvalidRequestError("presplit.pk_column must be a column name")
    points = split_points(spec["sample"], spec.get("shards"), pk_column)  # type: ignore[arg-type]
    rest = {k: v for k, v in part.items() if k != "presplit"}
    out["partitioning"] = {**rest, "kind": "range", "split_points": points}
    return out
