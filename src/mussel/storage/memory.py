"""``MemoryBackend``: the reference backend, plain dictionaries, no persistence.

Deliberately simple (it sorts on every read): it is the model the differential
tests hold RocksBackend to, and a test double for layers above.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from mussel.codec.keys import data_key, decode_cell_key, decode_data_key
from mussel.errors import ConflictError, FencedError
from mussel.model import OP_DELETE, Cell, Mutation, ScanCell
from mussel.storage.base import (
    RANGE_DELETE_MIN,
    IngestCounts,
    RowQuery,
    ScanQuery,
    SkRange,
    SweepDeleted,
    SweepPage,
    TableStats,
)
from mussel.storage.sweep import SweepCollector
from mussel.storage.versions import ReadFilter, Visibility, page_versions, removable_versions

__all__ = ["MemoryBackend"]


def _token(tombstone: bool, epoch: int) -> bytes:
    return bytes((int(tombstone),)) + epoch.to_bytes(4, "big")


# ts -> (is_tombstone, epoch, value)
_Versions = dict[int, tuple[bool, int, bytes]]


class MemoryBackend:
    def __init__(self) -> None:
        self._tables: dict[int, dict[bytes, dict[bytes, _Versions]]] = {}
        self._meta: dict[bytes, bytes] = {}
        self._positions: dict[int, int] = {}
        self._lock = threading.RLock()

    # -- writes ---------------------------------------------------------------

    def apply(
        self,
        mutations: Sequence[Mutation],
        epochs: Mapping[int, int],
        positions: Mapping[int, int],
        *,
        expect: Mapping[int, int] | None = None,
    ) -> None:
        with self._lock:
            for part, first in (expect or {}).items():
                stored = self._positions.get(part)
                if stored is not None and stored > first:
                    raise FencedError(
                        f"partition {part} was applied up to offset {stored} by another "
                        f"replayer; this batch starts at {first}"
                    )
            for m in mutations:
                epoch = epochs.get(m.table_id)
                if epoch is None:
                    continue
                row = self._tables.setdefault(m.table_id, {}).setdefault(m.pk, {})
                row.setdefault(m.sk, {})[m.ts] = (m.op == OP_DELETE, epoch, m.value)
            self._positions.update(positions)

    def applied_positions(self) -> dict[int, int]:
        with self._lock:
            return dict(self._positions)

    def sync(self) -> None:
        return None

    def drop_table_data(self, table_id: int) -> None:
        with self._lock:
            self._tables.pop(table_id, None)

    def presplit(self, table_id: int, pks: Sequence[bytes]) -> None:
        """Nothing to split: every table is a key range of one keyspace."""

    # -- reads ----------------------------------------------------------------

    @staticmethod
    def _stored(versions: _Versions) -> list[tuple[int, bool, int, bytes]]:
        return [(ts, *versions[ts]) for ts in sorted(versions, reverse=True)]

    def read_row(
        self, table_id: int, vis: Visibility, pk: bytes, q: RowQuery
    ) -> tuple[list[Cell], bool]:
        with self._lock:
            row = self._tables.get(table_id, {}).get(pk, {})
            sks = sorted(
                sk for sk in row if q.sks.admits(sk) and (q.after is None or sk >= q.after[0])
            )
            groups = [(sk, self._stored(row[sk])) for sk in sks]
        page, more = page_versions(groups, vis, q.rf, q.limit, q.after)
        return [Cell(sk, ts, value) for sk, ts, value in page], more

    def get_cell(
        self, table_id: int, vis: Visibility, pk: bytes, sk: bytes, rf: ReadFilter
    ) -> list[Cell]:
        return self.read_row(table_id, vis, pk, RowQuery(SkRange(sk=sk), rf, rf.versions))[0]

    def get_latest(
        self, table_id: int, pk: bytes, sk: bytes, expired_before_us: int | None
    ) -> Cell | None:
        vis = Visibility(expired_before_us=expired_before_us)
        found = self.get_cell(table_id, vis, pk, sk, ReadFilter())
        return found[0] if found else None

    def multi_get(
        self,
        table_id: int,
        vis: Visibility,
        keys: Sequence[tuple[bytes, bytes | None]],
        rf: ReadFilter,
        limit_per_key: int,
    ) -> list[list[Cell]]:
        return [
            self.read_row(table_id, vis, pk, RowQuery(SkRange(sk=sk), rf, limit_per_key))[0]
            for pk, sk in keys
        ]

    def scan(self, table_id: int, vis: Visibility, q: ScanQuery) -> tuple[list[ScanCell], bool]:
        with self._lock:
            table = self._tables.get(table_id, {})
            groups = [
                ((pk, sk), self._stored(table[pk][sk]))
                for pk in sorted(p for p in table if q.admits_pk(p))
                for sk in sorted(table[pk])
                if q.after is None or (pk, sk) >= q.after[:2]
            ]
        after = None if q.after is None else ((q.after[0], q.after[1]), q.after[2])
        page, more = page_versions(groups, vis, q.rf, q.limit, after)
        return [ScanCell(pk, sk, ts, value) for (pk, sk), ts, value in page], more

    def table_stats(self, table_id: int) -> TableStats:
        with self._lock:
            cells = nbytes = 0
            for pk, row in self._tables.get(table_id, {}).items():
                for sk, versions in row.items():
                    cells += len(versions)
                    nbytes += sum(len(pk) + len(sk) + 8 + len(v[2]) for v in versions.values())
            return TableStats(cells, nbytes)

    # -- expiration -----------------------------------------------------------

    def sweep_scan(
        self,
        table_id: int,
        vis: Visibility,
        start: tuple[bytes, bytes] | None,
        pk_end: bytes | None,
        max_versions: int,
        *,
        pending: frozenset[int] = frozenset(),
        tombstones_before_us: int | None = None,
        min_run: int = RANGE_DELETE_MIN,
    ) -> SweepPage:
        with self._lock:
            table = self._tables.get(table_id, {})
            cells = sorted(
                (pk, sk)
                for pk, row in table.items()
                if pk_end is None or pk < pk_end
                for sk in row
                if start is None or (pk, sk) >= start
            )
            out = SweepCollector(min_run)
            for n, (pk, sk) in enumerate(cells):
                if out.examined >= max_versions:
                    return out.page(cells[n])
                stored = self._stored(table[pk][sk])
                gone = removable_versions(
                    [(ts, tomb, epoch) for ts, tomb, epoch, _ in stored],
                    vis,
                    pending=pending,
                    tombstones_before_us=tombstones_before_us,
                )
                for (ts, tomb, epoch, value), g in zip(stored, gone, strict=True):
                    out.add(
                        data_key(table_id, pk, sk, ts),
                        _token(tomb, epoch),
                        len(pk) + len(sk) + 8 + len(value),
                        g,
                    )
            return out.page(None)

    def _keys_between(self, table_id: int, lo: bytes, hi: bytes) -> list[tuple[bytes, bytes]]:
        """(key, token) of every stored version with lo <= key <= hi, in key order."""
        table = self._tables.get(table_id, {})
        return sorted(
            (key, _token(tomb, epoch))
            for pk, row in table.items()
            for sk, versions in row.items()
            for ts, (tomb, epoch, _) in versions.items()
            if lo <= (key := data_key(table_id, pk, sk, ts)) <= hi
        )

    def sweep_delete(
        self,
        table_id: int,
        candidates: Sequence[tuple[bytes, bytes]],
        runs: Sequence[tuple[int, int]] = (),
    ) -> SweepDeleted:
        """A run goes whole when the versions between its first and last key are still
        exactly its candidates (the reference for the range deletes of the others)."""
        removed = nbytes = ranges = 0
        with self._lock:
            table = self._tables.get(table_id, {})
            whole: set[int] = set()
            for i, j in runs:
                run = list(candidates[i:j])
                if run and self._keys_between(table_id, run[0][0], run[-1][0]) == run:
                    whole.update(range(i, j))
                    ranges += 1
            for n, (key, token) in enumerate(candidates):
                _, pk, sk, ts = decode_data_key(key)
                versions = table.get(pk, {}).get(sk, {})
                current = versions.get(ts)
                if current is not None and (n in whole or _token(current[0], current[1]) == token):
                    del versions[ts]
                    removed += 1
                    nbytes += len(pk) + len(sk) + 8 + len(current[2])
                    if not versions:
                        del table[pk][sk]
                        if not table[pk]:
                            del table[pk]
        return SweepDeleted(removed, nbytes, ranges)

    def split_points(self, table_id: int, target_bytes: int) -> list[bytes]:
        with self._lock:
            pks = sorted(self._tables.get(table_id, {}))
        return pks[len(pks) // 2 : len(pks) // 2 + 1] if len(pks) > 1 else []

    def compact(self, table_id: int, pk_start: bytes | None, pk_end: bytes | None) -> None:
        return None

    def disk_bytes(self, table_id: int) -> int | None:
        return None  # nothing on disk

    # -- metadata -------------------------------------------------------------

    def meta_get(self, key: bytes) -> bytes | None:
        with self._lock:
            return self._meta.get(key)

    def meta_scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        with self._lock:
            return sorted((k, v) for k, v in self._meta.items() if k.startswith(prefix))

    def meta_write(
        self,
        items: Mapping[bytes, bytes | None],
        *,
        expect: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        with self._lock:
            for k, want in (expect or {}).items():
                if self._meta.get(k) != want:
                    raise ConflictError(
                        f"metadata item {k!r} changed concurrently: compare-and-set failed"
                    )
            for k, v in items.items():
                if v is None:
                    self._meta.pop(k, None)
                else:
                    self._meta[k] = v

    def bulk_ingest(
        self, table_id: int, epoch: int, workdir: Path, lock: AbstractContextManager[object]
    ) -> _MemoryIngest:
        return _MemoryIngest(self, table_id, epoch, lock)

    def close(self) -> None:
        return None


class _MemoryIngest:
    """Direct inserts; cells colliding with a stored (pk, sk, ts) wait for the commit."""

    def __init__(
        self,
        backend: MemoryBackend,
        table_id: int,
        epoch: int,
        lock: AbstractContextManager[object],
    ) -> None:
        self._b = backend
        self._table_id = table_id
        self._epoch = epoch
        self._lock = lock
        self._deferred: list[tuple[bytes, bytes, int, bytes]] = []

    def add(self, cell_keys: Sequence[bytes], values: Sequence[bytes]) -> IngestCounts:
        written = deferred = nbytes = 0
        with self._lock, self._b._lock:
            table = self._b._tables.setdefault(self._table_id, {})
            for key, value in zip(cell_keys, values, strict=True):
                pk, sk, ts = decode_cell_key(key)
                versions = table.setdefault(pk, {}).setdefault(sk, {})
                nbytes += len(pk) + len(sk) + 8 + len(value)
                if ts in versions:
                    self._deferred.append((pk, sk, ts, value))
                    deferred += 1
                else:
                    versions[ts] = (False, self._epoch, value)
                    written += 1
        return IngestCounts(written, deferred, nbytes)

    def commit_write(self, items: Mapping[bytes, bytes | None]) -> None:
        with self._b._lock:
            table = self._b._tables.setdefault(self._table_id, {})
            for pk, sk, ts, value in self._deferred:
                table.setdefault(pk, {}).setdefault(sk, {})[ts] = (False, self._epoch, value)
            self._b.meta_write(items)
            self._deferred = []

    def discard(self) -> None:
        self._deferred = []
