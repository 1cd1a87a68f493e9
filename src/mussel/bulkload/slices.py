"""How a distributed bulk load is cut into subtasks: runs of whole row groups.

A ``Slice`` is consecutive row groups of one source file, about ``slice_rows`` rows
(a row group is never split: it is Parquet's unit of independent reading). It carries
what a worker needs to load it exactly as the one-process loader would: the file's
row number of its first row (errors name the file and row) and ``seq0``, the number of
rows before it in source order (files in path order, rows in file order), so
duplicates keep the last in source order across slices too.
"""

from __future__ import annotations

import msgspec

from mussel.bulkload.source import ParquetSource

__all__ = ["Slice", "plan_slices"]


class Slice(msgspec.Struct, frozen=True):
    path: str
    row_groups: tuple[int, ...]
    first_row: int
    seq0: int
    rows: int
    bytes: int
    """The slice's share of its file's size (for progress)."""


def plan_slices(src: ParquetSource, slice_rows: int = 250_000) -> list[Slice]:
    """The source cut into slices, in source order (reads each file's footer)."""
    out: list[Slice] = []
    seq = 0
    for f in src.files:
        groups = src.row_group_rows(f)
        row = 0
        start = 0
        while start < len(groups):
            end, n = start, 0
            while end < len(groups) and (n == 0 or n + groups[end] <= slice_rows):
                n += groups[end]
                end += 1
            size = f.size_bytes * n // max(f.rows, 1)
            out.append(Slice(f.path, tuple(range(start, end)), row, seq, n, size))
            row += n
            seq += n
            start = end
    return out
