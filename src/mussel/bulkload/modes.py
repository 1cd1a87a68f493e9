"""Modes of a bulk load (SPEC §2), all at the job's timestamp T unless rows carry ts.

* ``merge``: every cell is written with the job's epoch; committing makes them
  visible, and conflicts resolve by ts exactly as for streaming writes (the newest
  ts wins; an equal ts: the commit is the later write).
* ``replace``: the same, and the commit also adds ``Floor(T, epoch)``: every version
  of an older epoch with ts <= T disappears at the instant the loaded cells appear;
  versions with ts > T (streaming writes newer than the job) stay.
* ``insert_ignore``: only cells whose (pk, sk) has no visible version when the job
  reads it (``keep_absent``) are written.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

from mussel.engine import Store
from mussel.errors import InvalidRequestError

__all__ = ["MODES", "Mode", "check_mode", "keep_absent"]

Mode = Literal["merge", "replace", "insert_ignore"]
MODES: tuple[str, ...] = ("merge", "replace", "insert_ignore")


def check_mode(mode: object) -> Mode:
    if mode == "merge":
        return "merge"
    if mode == "replace":
        return "replace"
    if mode == "insert_ignore":
        return "insert_ignore"
    raise InvalidRequestError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def keep_absent(store: Store, namespace: str, table: str, chunk: pa.Table) -> pa.Table:
    """The rows of a key-sorted chunk whose (pk, sk) has no visible version now.

    One strong scan of the chunk's pk range, merged with the chunk.
    """
    if chunk.num_rows == 0:
        return chunk
    pks = chunk.column("pk")
    first, last = pks[0].as_py(), pks[-1].as_py()
    present: set[tuple[bytes, bytes]] = set()
    for cell in store.scan_all(
        namespace, table, pk_start=first, pk_end=last + b"\x00", limit=10_000
    ):
        present.add((cell.pk, cell.sk))
    if not present:
        return chunk
    mask = [
        (pk, sk) not in present
        for pk, sk in zip(pks.to_pylist(), chunk.column("sk").to_pylist(), strict=True)
    ]
    return chunk.filter(pa.array(mask, pa.bool_())) if not all(mask) else chunk
