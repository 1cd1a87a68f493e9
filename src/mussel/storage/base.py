"""The ``Backend`` protocol: where applied cells live, plus a small metadata store.

A backend stores versions of cells (see ``storage/versions.py`` for which of them
are visible) and a few metadata items (the catalog, applied log positions). It
does not validate names or sizes: callers above have done that.

Contract of every implementation (the same contract test suite runs on each):

* ``apply`` writes the mutations and the new log positions in one atomic step:
  after a crash either both are there or neither is (exactly-once replay).
  Mutations of a table missing from ``epochs`` are skipped (the table was dropped).
  Mutations are applied in order, so a later mutation with the same
  (table, pk, sk, ts) replaces an earlier one.
* ``apply(..., expect=)`` fences off a replayer that lost its partitions (a Kafka
  consumer-group rebalance): ``expect`` maps partitions to the first log offset of this
  batch; if the stored position of one of them is greater (another replayer applied
  past it), ``FencedError`` is raised and nothing is applied. Check and apply are one
  atomic step.
* ``apply`` need not be durable by itself (the log is the write-ahead log);
  ``sync`` makes everything applied so far durable, after which the log may drop
  it. A crash before ``sync`` may lose applied data, but always together with the
  positions stored with it, so the replayer applies it again.
* Reads see a consistent view of the data as of the read's start.
* ``meta_write`` is atomic and durable when it returns. With ``expect`` it is a
  compare-and-set: every key given must hold the given value (None: absent) or
  ``ConflictError`` is raised and nothing is written; check and write are atomic, also
  between processes sharing the backend (the SQL backend).
* ``bulk_ingest`` adds bulk-loaded versions stamped with a (pending) epoch. It never
  replaces a stored version: a loaded cell whose (pk, sk, ts) is already stored is
  *deferred* and written only by ``BulkIngest.commit_write``, atomically with the
  catalog item that makes the epoch visible. Everything it adds before that is
  invisible (its epoch is pending) and is removed later by the expiration service if
  the job never commits.
* Library errors surface as ``UnavailableError`` or ``CorruptionError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa

from mussel.model import Cell, Mutation, ScanCell
from mussel.storage.versions import ReadFilter, Visibility

__all__ = [
    "ArrowBulkIngest",
    "RANGE_DELETE_MIN",
    "Backend",
    "BulkIngest",
    "IngestCounts",
    "RowQuery",
    "ScanQuery",
    "SkRange",
    "SweepDeleted",
    "SweepPage",
    "TableStats",
]


@dataclass(frozen=True, slots=True)
class SkRange:
    """Which secondary keys of a row a read covers; every given bound applies."""

    sk: bytes | None = None
    prefix: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None

    def admits(self, sk: bytes) -> bool:
        return (
            (self.sk is None or sk == self.sk)
            and (self.prefix is None or sk.startswith(self.prefix))
            and (self.start is None or sk >= self.start)
            and (self.end is None or sk < self.end)
        )


@dataclass(frozen=True, slots=True)
class RowQuery:
    """A read of one row. ``after`` = (sk, ts) of the last cell already returned."""

    sks: SkRange = field(default_factory=SkRange)
    rf: ReadFilter = field(default_factory=ReadFilter)
    limit: int = 1000
    after: tuple[bytes, int] | None = None


@dataclass(frozen=True, slots=True)
class ScanQuery:
    """A table scan by pk range. ``after`` = (pk, sk, ts) of the last cell returned."""

    pk_start: bytes | None = None
    pk_end: bytes | None = None
    pk_prefix: bytes | None = None
    rf: ReadFilter = field(default_factory=ReadFilter)
    limit: int = 1000
    after: tuple[bytes, bytes, int] | None = None

    def admits_pk(self, pk: bytes) -> bool:
        return (
            (self.pk_start is None or pk >= self.pk_start)
            and (self.pk_end is None or pk < self.pk_end)
            and (self.pk_prefix is None or pk.startswith(self.pk_prefix))
        )


@dataclass(frozen=True, slots=True)
class TableStats:
    """Approximate: versions stored (tombstones and not yet swept versions included)."""

    approx_cells: int = 0
    approx_bytes: int = 0


RANGE_DELETE_MIN = 32
"""Shortest run of dead versions a sweep deletes with one range delete (shorter runs
go key by key: each range tombstone costs reads a little until compaction)."""


@dataclass(frozen=True, slots=True)
class SweepPage:
    """What one step of an expiration sweep found (``Backend.sweep_scan``).

    ``candidates`` are (key, token) pairs, opaque to callers: give them to
    ``sweep_delete`` of a backend holding the same data (the primary the scanned
    view follows). ``next_cell`` is the (pk, sk) to continue from, None at the end.
    ``runs`` are (i, j) spans of ``candidates``: ``candidates[i:j]`` were consecutive
    stored keys when scanned (nothing kept between them), ascending, disjoint.
    """

    examined: int
    candidates: list[tuple[bytes, bytes]]
    candidate_bytes: int
    next_cell: tuple[bytes, bytes] | None
    runs: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SweepDeleted:
    """What one ``sweep_delete`` removed: versions, their stored bytes, and how many
    runs went as one range delete each."""

    versions: int = 0
    nbytes: int = 0
    ranges: int = 0


@dataclass(frozen=True, slots=True)
class IngestCounts:
    """What one ``BulkIngest.add`` did: versions written now, versions deferred to the
    commit (their (pk, sk, ts) was already stored), and their bytes (keys and values)."""

    written: int = 0
    deferred: int = 0
    nbytes: int = 0


class BulkIngest(Protocol):
    """A bulk load's writer into one table at one pending epoch.

    ``add`` takes put versions as two parallel sequences: cell keys
    (``codec.keys.cell_key(pk, sk, ts)``, a data key without its table prefix) in
    ascending order, no two equal, each call's first after the previous call's last;
    and their values. It prepares the data without the apply lock, then holds ``lock``
    (the catalog's apply lock) only while it checks for stored versions at the same
    keys and publishes the data, so a streaming write cannot slip in between the check
    and the publication.
    """

    def add(self, cell_keys: Sequence[bytes], values: Sequence[bytes]) -> IngestCounts: ...

    def commit_write(self, items: Mapping[bytes, bytes | None]) -> None:
        """Write catalog ``items`` and the deferred cells in one atomic, durable step.
        Called with the apply lock held (by ``Catalog.commit_epoch``)."""
        ...

    def discard(self) -> None:
        """Remove temporary files. Safe to call more than once, after commit too."""
        ...


@runtime_checkable
class ArrowBulkIngest(BulkIngest, Protocol):
    """A ``BulkIngest`` that also takes the keys and values as pyarrow binary arrays,
    chunked or not (the same contract as ``add``), sparing the caller a Python object
    per cell and a concatenation."""

    def add_arrow(
        self, cell_keys: pa.Array | pa.ChunkedArray, values: pa.Array | pa.ChunkedArray
    ) -> IngestCounts: ...

    def expect(self, cells: int) -> None:
        """A hint, before the first ``add``: about ``cells`` versions will come (the
        ingest may start helpers now, e.g. processes that build files)."""
        ...


class Backend(Protocol):
    def apply(
        self,
        mutations: Sequence[Mutation],
        epochs: Mapping[int, int],
        positions: Mapping[int, int],
        *,
        expect: Mapping[int, int] | None = None,
    ) -> None:
        """Atomically apply ``mutations`` (stamped with their table's epoch) and store
        ``positions`` (partition -> next log offset to apply). ``expect``: partition ->
        first offset of this batch; ``FencedError`` (nothing applied) if a stored
        position is greater."""
        ...

    def applied_positions(self) -> dict[int, int]:
        """The positions stored by the last ``apply`` (empty for a new store)."""
        ...

    def sync(self) -> None:
        """Make every applied mutation durable (then the log may drop it)."""
        ...

    def read_row(
        self, table_id: int, vis: Visibility, pk: bytes, q: RowQuery
    ) -> tuple[list[Cell], bool]:
        """Visible cells of one row in (sk asc, ts desc) order, at most ``q.limit``;
        the flag says whether more cells follow."""
        ...

    def get_cell(
        self, table_id: int, vis: Visibility, pk: bytes, sk: bytes, rf: ReadFilter
    ) -> list[Cell]:
        """The visible versions of one cell admitted by ``rf``, newest first."""
        ...

    def get_latest(
        self, table_id: int, pk: bytes, sk: bytes, expired_before_us: int | None
    ) -> Cell | None:
        """The newest visible version of a cell of a table WITHOUT replace floors and
        with no time range: ``get_cell(..., Visibility(1, expired_before_us), ReadFilter())``
        as one value. The point-read fast path."""
        ...

    def multi_get(
        self,
        table_id: int,
        vis: Visibility,
        keys: Sequence[tuple[bytes, bytes | None]],
        rf: ReadFilter,
        limit_per_key: int,
    ) -> list[list[Cell]]:
        """For each (pk, sk) the cell's visible versions; for (pk, None) the row's."""
        ...

    def scan(self, table_id: int, vis: Visibility, q: ScanQuery) -> tuple[list[ScanCell], bool]:
        """Visible cells in (pk, sk asc, ts desc) order, at most ``q.limit``."""
        ...

    def drop_table_data(self, table_id: int) -> None:
        """Remove every version of the table (space returns later, on compaction)."""
        ...

    def presplit(self, table_id: int, pks: Sequence[bytes]) -> None:
        """Split the table's storage at each pk of ``pks`` (a range-partitioned table's
        split points, when it is created), so that its ranges can be spread before data
        arrives. What a split is belongs to the backend: SqlBackend makes PostgreSQL
        partitions or CockroachDB ranges; one RocksDB or in-memory keyspace has nothing
        to split. Rows already stored stay readable."""
        ...

    def table_stats(self, table_id: int) -> TableStats: ...

    # -- expiration (see ``storage.versions.removable_versions``) -------------

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
        """Examine cells from ``start`` (pk, sk; None: the table's first) up to pk
        ``pk_end`` (exclusive; None: the table's end), about ``max_versions`` stored
        versions (whole cells), and list what ``removable_versions`` says may go, with
        the runs of at least ``min_run`` of them (``storage.sweep.SweepCollector``).
        Reads only: a read-only view may run it."""
        ...

    def sweep_delete(
        self,
        table_id: int,
        candidates: Sequence[tuple[bytes, bytes]],
        runs: Sequence[tuple[int, int]] = (),
    ) -> SweepDeleted:
        """Delete the candidates still stored as they were when scanned (a version
        replaced since, by a write with the same ts, stays; a version written since
        is never removed). A run of ``runs`` (a page's ``runs``) whose keys are still
        exactly the scanned ones, with the same tokens and no other key between them,
        goes as one range delete (RocksDB: a range tombstone; SQL: one statement over
        the key range); otherwise its candidates go one by one, by the same rule. The
        versions removed are the same either way. The deletes are durable once the
        next ``meta_write`` returns (a sweep's checkpoint never outlives its deletes).
        The caller keeps applies out meanwhile (``apply_lock``)."""
        ...

    def split_points(self, table_id: int, target_bytes: int) -> list[bytes]:
        """pks that cut the table into ranges of about ``target_bytes`` each, from
        storage estimates (ascending; may be empty)."""
        ...

    def compact(self, table_id: int, pk_start: bytes | None, pk_end: bytes | None) -> None:
        """Compact the table's pk range (all of it for None, None; a dropped table's
        too) so deleted versions give their space back to the file system."""
        ...

    def disk_bytes(self, table_id: int) -> int | None:
        """Bytes the table's stored versions take on the file system now, measured
        (not the logical counters of ``table_stats``); None where nothing is on disk
        (``MemoryBackend``). RocksDB: the live SST files holding any of the table's
        keys, after flushing the memtable. SQL: the cells relation with its indexes
        and TOAST (shared by every table; PostgreSQL keeps deleted rows' space for
        reuse and returns it to the file system only on ``VACUUM FULL``)."""
        ...

    def meta_get(self, key: bytes) -> bytes | None: ...

    def meta_scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every metadata item whose key starts with ``prefix``, in key order."""
        ...

    def meta_write(
        self,
        items: Mapping[bytes, bytes | None],
        *,
        expect: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Atomically and durably put (or, for None, delete) metadata items; with
        ``expect`` only if each of its keys holds the given value (None: absent),
        else ``ConflictError`` and nothing written."""
        ...

    def bulk_ingest(
        self, table_id: int, epoch: int, workdir: Path, lock: AbstractContextManager[object]
    ) -> BulkIngest:
        """A writer of bulk-loaded versions of ``table_id`` stamped with ``epoch``;
        ``workdir`` is an empty directory it may use for temporary files."""
        ...

    def close(self) -> None: ...
