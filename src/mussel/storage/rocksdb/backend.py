"""``RocksBackend``: cells and metadata in one RocksDB database (see ``layout.py``).

Threading: RocksDB is thread-safe; ``apply`` is called by one replayer thread,
reads by any number of threads. Every read uses one iterator, whose implicit
snapshot makes the read consistent.

Two modes. The *primary* (the default) owns the database: one process, which runs
the replayer. A *secondary* (``RocksConfig.secondary_path``) is a read-only view
of a primary's database from another process (RocksDB's secondary instance): it
sees what the primary wrote up to its last ``catch_up()``, which replays the
primary's new WAL records and manifest entries. A secondary can see applies only
if the primary writes them to its WAL, so a primary with secondaries runs with
``RocksConfig.wal=True``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import repeat
from operator import add as _ADD
from operator import attrgetter
from operator import sub as _SUB
from operator import truth as _TRUTH
from pathlib import Path
from typing import Any

import msgspec
from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from mussel.codec.keys import (
    TERM,
    decode_data_key,
    decode_ts,
    escape,
    prefix_end,
    row_prefix,
    sk_part,
    table_prefix,
    unescape,
)
from mussel.errors import ConflictError, FencedError, InvalidRequestError, MusselError
from mussel.model import OP_DELETE, OP_PUT, Cell, Mutation, ScanCell
from mussel.storage.base import (
    RANGE_DELETE_MIN,
    RowQuery,
    ScanQuery,
    SkRange,
    SweepDeleted,
    SweepPage,
    TableStats,
)
from mussel.storage.rocksdb.compression import compression_type
from mussel.storage.rocksdb.errors import map_backend_errors
from mussel.storage.rocksdb.ingest import RocksIngest
from mussel.storage.rocksdb.layout import (
    KIND_PUT,
    KIND_TOMBSTONE,
    U64,
    header,
    pos_key,
    stats_key,
)
from mussel.storage.rocksdb.ranged import MARKER_PREFIX, RangeDeletes, marker_key
from mussel.storage.rocksdb.sstbuild import SstBuilders
from mussel.storage.versions import (
    ReadFilter,
    Visibility,
    page_versions,
    removable_versions,
    single_version_rule,
    visible_versions,
)

__all__ = ["RocksBackend", "RocksConfig"]

_Stored = tuple[int, bool, int, bytes]
_STATS = msgspec.msgpack.Decoder(tuple[int, int])
_TS_BIAS = 0x7FFF_FFFF_FFFF_FFFF
_ENC = msgspec.msgpack.Encoder()
_TABLE_ID, _OP, _PK, _SK, _TS, _VALUE = map(
    attrgetter, ("table_id", "op", "pk", "sk", "ts", "value")
)
_JOIN = b"".join
_REPLACE = bytes.replace
_PACK_TS = U64.pack
_UNPACK_TS = U64.unpack_from
_consume = deque  # deque(iterator, maxlen=0) runs an iterator at C speed, keeping nothing


@dataclass(frozen=True, slots=True)
class RocksConfig:
    """Tuning. The block cache holds the hot data: the OS page cache keeps little here."""

    block_cache_bytes: int = 512 << 20
    """RocksDB's block cache (shared by every table)."""
    write_buffer_bytes: int = 64 << 20
    """RocksDB's memtable size before a flush."""
    max_background_jobs: int = 2
    compression: str = "lz4"
    """Compression of RocksDB's files: ``lz4``, ``zstd`` or ``none``."""
    wal: bool = False
    """Write applies to RocksDB's WAL too (not synced: the write log is what makes
    writes durable). Needed when secondaries follow this database."""
    bulk_builders: int = 2
    """Worker processes that build a bulk load's SST files (``sstbuild.py``); 0 builds
    them in the job's thread."""
    bulk_builder_nice: int = 0
    """How much lower the SST builders' CPU priority is (``os.nice``); 0: the same as the
    store's process."""
    bulk_parallel_min_cells: int = 20_000
    """Chunks of fewer cells are built in the job's thread (no process round trip)."""
    secondary_path: str | None = None
    """Open as a read-only secondary of the primary at ``path``; this directory holds
    the secondary's own files (its info log)."""


def _options(cfg: RocksConfig) -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_max_background_jobs(cfg.max_background_jobs)
    opts.set_write_buffer_size(cfg.write_buffer_bytes)
    opts.set_level_compaction_dynamic_level_bytes(True)
    opts.set_compression_type(compression_type(cfg.compression))
    table = BlockBasedOptions()
    table.set_block_cache(Cache(cfg.block_cache_bytes))
    table.set_bloom_filter(10, False)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    opts.set_block_based_table_factory(table)
    return opts


def _status_ok(it: Any) -> bool:
    """Whether an iterator that is not valid just reached the end (not an error)."""
    try:
        it.status()
    except Exception:  # rocksdict raises the iterator's error status
        return False
    return True


def _marker_delete(table_id: int) -> WriteBatch:
    wb = WriteBatch(raw_mode=True)
    wb.delete(marker_key(table_id))
    return wb


class RocksBackend:
    """The embedded backend. ``path`` is a directory owned by this backend."""

    def __init__(self, path: str | os.PathLike[str], config: RocksConfig | None = None) -> None:
        self._cfg = config or RocksConfig()
        self._path = Path(path)
        self._closed = False
        self.secondary = self._cfg.secondary_path is not None
        with map_backend_errors("open"):
            if self._cfg.secondary_path is None:
                self._path.mkdir(parents=True, exist_ok=True)
                self._db = Rdict(str(self._path), _options(self._cfg))
            else:
                for stale in Path(self._cfg.secondary_path).parent.glob(
                    f"{Path(self._cfg.secondary_path).name}.r*"
                ):  # the directories of an earlier process's reopens
                    shutil.rmtree(stale, ignore_errors=True)
                self._db = self._open_secondary(self._cfg.secondary_path)
        self.reopens = 0
        """How many times ``reopen_secondary`` replaced this secondary's instance."""
        self._ro = ReadOptions()
        # Point reads reuse one iterator per thread (see ``_point_iter``): a tailing
        # one on a primary; on a secondary (where tailing iterators see nothing) an
        # ordinary one, dropped at each ``catch_up``.
        self._ro_point = ReadOptions()
        if not self.secondary:
            self._ro_point.set_tailing(True)
        self._local = threading.local()
        self._point_iters: list[object] = []
        self._iters_lock = threading.Lock()
        self._wo_apply = WriteOptions()
        if not self._cfg.wal:
            self._wo_apply.disable_wal = True  # type: ignore[method-assign,assignment]  # wrong stub
        self._wo_wal = WriteOptions()
        self._wo_sync = WriteOptions()
        self._wo_sync.sync = True
        self._meta_lock = threading.Lock()
        self._headers: dict[tuple[int, int], bytes] = {}
        self._prefixes: dict[int, bytes] = {}
        self._stats: dict[int, tuple[int, int]] = {}
        self._positions: dict[int, int] = {}
        self._builders: SstBuilders | None = None
        self._load_counters()
        # Sweeps' range deletes not compacted yet: point reads of those tables check
        # what the tailing iterator finds (see ``ranged.py``)
        self._ranged = RangeDeletes(
            () if self.secondary else (int(k[-10:]) for k, _ in self.meta_scan(MARKER_PREFIX))
        )
        self._ranged_tables = self._ranged.tables

    def _open_secondary(self, secondary_path: str) -> Rdict:
        Path(secondary_path).mkdir(parents=True, exist_ok=True)
        access = AccessType.secondary(secondary_path)
        return Rdict(str(self._path), _options(self._cfg), access_type=access)

    def reopen_secondary(self) -> None:
        """On a secondary: read from a fresh secondary instance of the primary from now on.

        The cure for RocksDB's stale secondary memtable (facebook/rocksdb#15051, fixed
        upstream by PR #15066, after the RocksDB that rocksdict bundles): entries a
        secondary replayed from a WAL that the primary then flushed stay in the
        secondary's memtable, and point gets (iterators too, once a bottommost
        compaction ran) return them instead of the newer flushed values, until new WAL
        data reaches the secondary. A fresh instance starts from the primary's files
        and has no such memtable (about 6 ms to open; its block cache starts cold).

        The old instance is not closed: reads in flight on other threads may still use
        it or its iterators, and it goes with the last reference. So each reopen
        opens in a directory of its own (``<secondary_path>.r<n>``): RocksDB waits
        about a second to open a secondary where a live one keeps its files.
        """
        if not self.secondary or self._cfg.secondary_path is None:
            raise InvalidRequestError("reopen_secondary() is for secondary instances")
        base = self._cfg.secondary_path
        with map_backend_errors("reopen the secondary"):
            fresh = self._open_secondary(f"{base}.r{self.reopens + 1}")
        with self._iters_lock:  # point-read iterators read the old instance
            self._db = fresh
            self._point_iters.clear()
            self._local = threading.local()
        self.reopens += 1
        if self.reopens >= 2:  # the instance before the last one: long unreferenced
            older = f"{base}.r{self.reopens - 2}" if self.reopens > 2 else base
            shutil.rmtree(older, ignore_errors=True)
        self._load_counters()

    def _load_counters(self) -> None:
        positions = {
            int(key.rsplit(b"\x00", 1)[1]): U64.unpack(value)[0]
            for key, value in self.meta_scan(pos_key(0)[:-5])
        }
        stats = {
            int(key.rsplit(b"\x00", 1)[1]): _STATS.decode(value)
            for key, value in self.meta_scan(stats_key(0)[:-10])
        }
        self._positions, self._stats = positions, stats

    @property
    def db(self) -> Rdict:
        """The rocksdict handle, for sibling adapters (bulk ingest, checkpoints)."""
        return self._db

    def catch_up(self) -> None:
        """On a secondary: see everything the primary has written so far.

        Replays the primary's new WAL records and manifest entries, then re-reads the
        applied positions and table counters. Costs about a millisecond plus ~1 µs
        per record written since the last call, holding the GIL (measured).
        """
        if not self.secondary:
            raise InvalidRequestError("catch_up() is for secondary instances")
        with map_backend_errors("catch up with the primary"):
            self._db.try_catch_up_with_primary()
        with self._iters_lock:  # point-read iterators still show the old state
            self._point_iters.clear()
            self._local = threading.local()
        self._load_counters()

    # -- writes ---------------------------------------------------------------

    def _header(self, op: int, epoch: int) -> bytes:
        h = self._headers.get((op, epoch))
        if h is None:
            kind = KIND_TOMBSTONE if op == OP_DELETE else KIND_PUT
            h = self._headers[(op, epoch)] = header(kind, epoch)
        return h

    def apply(
        self,
        mutations: Sequence[Mutation],
        epochs: Mapping[int, int],
        positions: Mapping[int, int],
        *,
        expect: Mapping[int, int] | None = None,
    ) -> None:
        """One WriteBatch for data, positions and counters, written without the WAL
        (unless ``RocksConfig.wal``; then to the WAL, not synced).

        The write log is the WAL: until ``sync()`` flushes the memtable, a crash loses
        data and positions together and the replayer applies them again.
        """
        for part, first in (expect or {}).items():
            # One process applies (the replayer); the cached positions are the stored ones.
            stored = self._positions.get(part)
            if stored is not None and stored > first:
                raise FencedError(
                    f"partition {part} was applied up to offset {stored} by another "
                    f"replayer; this batch starts at {first}"
                )
        wb = WriteBatch(raw_mode=True)
        put = wb.put
        # Per-table counters come from the batch's own size at each change of table,
        # so nothing is counted per record. Each run of one table's records is encoded
        # column by column with C-level ``map``s (no Python bytecode per record): the
        # same keys and values as ``data_key`` and ``header(...) + value``.
        marks: list[tuple[int, int, int]] = []  # (table id, records before, bytes before)
        for table_id, group in itertools.groupby(mutations, _TABLE_ID):
            epoch = epochs.get(table_id)
            if epoch is None:  # a dropped table: its records are skipped
                continue
            run = list(group)
            marks.append((table_id, wb.len(), wb.size_in_bytes()))
            n = len(run)
            pks: Iterable[bytes] = list(map(_PK, run))
            sks: Iterable[bytes] = list(map(_SK, run))
            if b"\x00" in _JOIN(pks) or b"\x00" in _JOIN(sks):  # else escaping changes nothing
                pks = map(_REPLACE, pks, repeat(b"\x00", n), repeat(b"\x00\xff", n))
                sks = map(_REPLACE, sks, repeat(b"\x00", n), repeat(b"\x00\xff", n))
            keys = map(
                _JOIN,
                zip(
                    repeat(table_prefix(table_id), n),
                    pks,
                    repeat(TERM, n),
                    sks,
                    repeat(TERM, n),
                    map(_PACK_TS, map(_SUB, repeat(_TS_BIAS, n), map(_TS, run))),
                    strict=True,
                ),
            )
            put_header = self._header(OP_PUT, epoch)
            if any(map(_OP, run)):  # some deletes (OP_DELETE is 1, OP_PUT 0)
                headers = (put_header, self._header(OP_DELETE, epoch))
                values: Iterable[bytes] = map(
                    _ADD, map(headers.__getitem__, map(_TRUTH, map(_OP, run))), map(_VALUE, run)
                )
            else:
                values = map(_ADD, repeat(put_header, n), map(_VALUE, run))
            _consume(map(put, keys, values), maxlen=0)
        marks.append((-1, wb.len(), wb.size_in_bytes()))
        new_stats: dict[int, tuple[int, int]] = {}
        for (tid, n0, b0), (_, n1, b1) in itertools.pairwise(marks):
            old = new_stats.get(tid) or self._stats.get(tid, (0, 0))
            new_stats[tid] = (old[0] + n1 - n0, old[1] + b1 - b0)
        for tid, value in new_stats.items():
            put(stats_key(tid), _ENC.encode(value))
        for partition, offset in positions.items():
            put(pos_key(partition), U64.pack(offset))
        with map_backend_errors("apply"):
            self._db.write(wb, self._wo_apply)
        self._stats.update(new_stats)
        self._positions.update(positions)

    def applied_positions(self) -> dict[int, int]:
        return dict(self._positions)

    def sync(self) -> None:
        """Flush the memtable: everything applied so far is on disk, in SST files."""
        with map_backend_errors("flush"):
            self._flush()

    def _flush(self) -> None:
        self._db.flush(True)

    def drop_table_data(self, table_id: int) -> None:
        tp = table_prefix(table_id)
        end = prefix_end(tp)
        assert end is not None
        wb = WriteBatch(raw_mode=True)
        wb.delete_range(tp, end)
        wb.delete(stats_key(table_id))
        with map_backend_errors("drop table"):
            self._db.write(wb, self._wo_sync)
        self._stats.pop(table_id, None)

    def presplit(self, table_id: int, pks: Sequence[bytes]) -> None:
        """Nothing to split: every table is a key range of one keyspace."""

    # -- reads ----------------------------------------------------------------

    def _iter_from(self, start: bytes) -> object:
        it = self._db.iter(self._ro)
        it.seek(start)
        return it

    def _cell_versions(self, it: object, prefix: bytes, floors: bool) -> Iterator[_Stored]:
        """Stored versions of the cell whose keys start with ``prefix``, newest first."""
        n = len(prefix)
        while it.valid():  # type: ignore[attr-defined]
            k: bytes = it.key()  # type: ignore[attr-defined]
            if k[:n] != prefix:
                return
            v: bytes = it.value()  # type: ignore[attr-defined]
            epoch = int.from_bytes(v[1:5], "big") if floors else 0
            yield decode_ts(k[-8:]), v[0] == KIND_TOMBSTONE, epoch, v[5:]
            it.next()  # type: ignore[attr-defined]

    def get_latest(
        self, table_id: int, pk: bytes, sk: bytes, expired_before_us: int | None
    ) -> Cell | None:
        """The newest visible version of a cell, for tables without replace floors.

        The hot path of point reads: the first stored version decides alone (a
        tombstone or an expired version means nothing is visible).
        """
        tp = self._prefixes.get(table_id)
        if tp is None:
            tp = self._prefixes[table_id] = table_prefix(table_id)
        esc_pk, esc_sk = pk.replace(b"\x00", b"\x00\xff"), sk.replace(b"\x00", b"\x00\xff")
        cp = _JOIN((tp, esc_pk, TERM, esc_sk, TERM))
        try:
            try:
                it = self._local.it
            except AttributeError:
                it = self._point_iter()
            it.seek(cp)
            k: bytes | None = it.key()  # None when the iterator is not valid
            if k is None and not _status_ok(it):
                # a tailing iterator that met range deletes in files a compaction
                # made: invalid, with an error status, until its next seek (see
                # ``_point_iter``): read again with an ordinary iterator
                it = self._db.iter(self._ro)
                it.seek(cp)
                k = it.key()
            if k is None or not k.startswith(cp):
                return None
            v: bytes = it.value()
            if table_id in self._ranged_tables and self._db.get(k) is None:
                # a version a sweep's range delete removed, not yet compacted away:
                # the tailing iterator does not apply range deletes (``ranged.py``);
                # read again with an ordinary iterator, which does
                it = self._db.iter(self._ro)
                it.seek(cp)
                if not it.valid():
                    return None
                k = it.key()
                if not k.startswith(cp):
                    return None
                v = it.value()
        except Exception as exc:
            with map_backend_errors("read"):
                raise exc
        if v[0] == KIND_TOMBSTONE:
            return None
        ts = _TS_BIAS - _UNPACK_TS(k, len(k) - 8)[0]
        if expired_before_us is not None and ts < expired_before_us:
            return None
        return Cell(sk, ts, v[5:])

    def get_latest_many(
        self, table_id: int, keys: Sequence[tuple[bytes, bytes]], expired_before_us: int | None
    ) -> list[Cell | None]:
        """``[get_latest(table_id, pk, sk, expired_before_us) for pk, sk in keys]``, with
        what does not depend on the key looked up once: the multi-get hot path."""
        tp = self._prefixes.get(table_id)
        if tp is None:
            tp = self._prefixes[table_id] = table_prefix(table_id)
        out: list[Cell | None] = []
        try:
            it = getattr(self._local, "it", None) or self._point_iter()
            seek, key, value = it.seek, it.key, it.value
            for pk, sk in keys:
                if table_id in self._ranged_tables:  # range deletes: get_latest checks
                    out.append(self.get_latest(table_id, pk, sk, expired_before_us))
                    continue
                cp = tp + _REPLACE(pk, b"\x00", b"\x00\xff") + TERM
                cp += _REPLACE(sk, b"\x00", b"\x00\xff") + TERM
                seek(cp)
                k: bytes | None = key()
                if k is None and not _status_ok(it):  # an error status: see get_latest
                    out.append(self.get_latest(table_id, pk, sk, expired_before_us))
                    continue
                if k is None or not k.startswith(cp):
                    out.append(None)
                    continue
                v: bytes = value()
                if v[0] == KIND_TOMBSTONE:
                    out.append(None)
                    continue
                ts = _TS_BIAS - int.from_bytes(k[-8:], "big")
                if expired_before_us is not None and ts < expired_before_us:
                    out.append(None)
                    continue
                out.append(Cell(sk, ts, v[5:]))
        except MusselError:
            raise
        except Exception as exc:
            with map_backend_errors("read"):
                raise exc
        return out

    def _point_iter(self) -> Any:
        """This thread's point-read iterator, created on first use (see ``__init__``).

        A tailing iterator sees every write made before each ``seek`` (it rebuilds
        itself when memtables or files change), and reusing it saves creating and
        destroying an iterator per read: ~1.5x the point-read rate (measured). Three
        limits, all handled: it does not apply range deletions, in memtables or files
        (Mussel deletes ranges for dropped tables, whose ids are never read again, and
        for runs of dead versions in expiration sweeps, which ``get_latest`` checks
        until they are compacted away: ``ranged.py``); RocksDB does not support range
        deletions in a tailing iterator ("Range tombstones unsupported with
        ForwardIterator"), so the first seek after a compaction wrote some into files
        comes back invalid with that error status
        (``get_latest`` then reads with an ordinary iterator; the next seek works
        again); and it cannot go backwards, which a point read never does.
        Row and scan reads use ordinary iterators, for their snapshot.
        """
        it = self._db.iter(self._ro_point)
        with self._iters_lock:
            self._point_iters.append(it)
        self._local.it = it
        return it

    def get_cell(
        self, table_id: int, vis: Visibility, pk: bytes, sk: bytes, rf: ReadFilter
    ) -> list[Cell]:
        if rf.versions == 1 and rf.min_ts is None and rf.max_ts is None and not vis.uses_epochs:
            cell = self.get_latest(table_id, pk, sk, vis.expired_before_us)
            return [] if cell is None else [cell]
        cp = (
            b"\x01"
            + table_id.to_bytes(4, "big")
            + pk.replace(b"\x00", b"\x00\xff")
            + b"\x00\x01"
            + sk.replace(b"\x00", b"\x00\xff")
            + b"\x00\x01"
        )
        try:
            it = self._db.iter(self._ro)
            it.seek(cp)
            found = visible_versions(self._cell_versions(it, cp, vis.uses_epochs), vis, rf)
        except Exception as exc:
            with map_backend_errors("read"):
                raise exc
        return [Cell(sk, ts, value) for ts, value in found]

    def _groups(
        self, it: object, end: bytes | None, prefix_len: int, floors: bool
    ) -> Iterator[tuple[bytes, list[_Stored]]]:
        """(encoded suffix, versions) per cell, from the iterator's position to ``end``.

        The suffix is what follows the first ``prefix_len`` bytes of the key, less ts.
        """
        cur: bytes | None = None
        versions: list[_Stored] = []
        while it.valid():  # type: ignore[attr-defined]
            k: bytes = it.key()  # type: ignore[attr-defined]
            if end is not None and k >= end:
                break
            body = k[prefix_len:-8]
            if body != cur:
                if cur is not None:
                    yield cur, versions
                cur, versions = body, []
            v: bytes = it.value()  # type: ignore[attr-defined]
            epoch = int.from_bytes(v[1:5], "big") if floors else 0
            versions.append((decode_ts(k[-8:]), v[0] == KIND_TOMBSTONE, epoch, v[5:]))
            it.next()  # type: ignore[attr-defined]
        if cur is not None:
            yield cur, versions

    @staticmethod
    def _sk_bounds(sks: SkRange) -> tuple[bytes, bytes | None]:
        """Bounds on the encoded (sk_part ts) suffix of a row's keys."""
        lo, hi = b"", None
        bounds: list[tuple[bytes, bytes | None]] = []
        if sks.sk is not None:
            part = sk_part(sks.sk)
            bounds.append((part, prefix_end(part)))
        if sks.prefix is not None:
            esc = escape(sks.prefix)
            bounds.append((esc, prefix_end(esc)))
        if sks.start is not None:
            bounds.append((sk_part(sks.start), None))
        if sks.end is not None:
            bounds.append((b"", sk_part(sks.end)))
        for b_lo, b_hi in bounds:
            lo = max(lo, b_lo)
            if b_hi is not None:
                hi = b_hi if hi is None else min(hi, b_hi)
        return lo, hi

    def read_row(
        self, table_id: int, vis: Visibility, pk: bytes, q: RowQuery
    ) -> tuple[list[Cell], bool]:
        if q.sks.sk is not None and q.after is None and q.limit >= q.rf.versions:
            return self.get_cell(table_id, vis, pk, q.sks.sk, q.rf), False
        rp = row_prefix(table_id, pk)
        lo, hi = self._sk_bounds(q.sks)
        start = rp + lo
        if q.after is not None:
            start = max(start, rp + sk_part(q.after[0]))
        end = rp + hi if hi is not None else prefix_end(rp)
        if end is not None and start >= end:
            return [], False
        with map_backend_errors("read"):
            it = self._iter_from(start)
            groups = (
                (unescape(body[:-2]), versions)
                for body, versions in self._groups(it, end, len(rp), vis.uses_epochs)
            )
            page, more = page_versions(groups, vis, q.rf, q.limit, q.after)
        return [Cell(sk, ts, value) for sk, ts, value in page], more

    def multi_get(
        self,
        table_id: int,
        vis: Visibility,
        keys: Sequence[tuple[bytes, bytes | None]],
        rf: ReadFilter,
        limit_per_key: int,
    ) -> list[list[Cell]]:
        out: list[list[Cell]] = []
        for pk, sk in keys:
            if sk is not None:
                out.append(self.get_cell(table_id, vis, pk, sk, rf))
            else:
                out.append(
                    self.read_row(table_id, vis, pk, RowQuery(rf=rf, limit=limit_per_key))[0]
                )
        return out

    def scan(self, table_id: int, vis: Visibility, q: ScanQuery) -> tuple[list[ScanCell], bool]:
        tp = table_prefix(table_id)
        start, end = tp, prefix_end(tp)
        if q.pk_start is not None:
            start = max(start, tp + escape(q.pk_start))
        if q.pk_prefix is not None:
            start = max(start, tp + escape(q.pk_prefix))
            p_end = prefix_end(tp + escape(q.pk_prefix))
            end = p_end if end is None or p_end is None else min(end, p_end)
        if q.pk_end is not None:
            end = min(end, tp + escape(q.pk_end)) if end is not None else tp + escape(q.pk_end)
        after = None
        if q.after is not None:
            a_pk, a_sk, a_ts = q.after
            start = max(start, tp + escape(a_pk) + TERM + sk_part(a_sk))
            after = ((a_pk, a_sk), a_ts)
        if end is not None and start >= end:
            return [], False

        def decoded(
            groups: Iterator[tuple[bytes, list[_Stored]]],
        ) -> Iterator[tuple[tuple[bytes, bytes], list[_Stored]]]:
            for body, versions in groups:
                cut = body.find(TERM)
                pk = body[:cut].replace(b"\x00\xff", b"\x00")
                sk = body[cut + 2 : -2].replace(b"\x00\xff", b"\x00")
                yield (pk, sk), versions

        with map_backend_errors("scan"):
            it = self._iter_from(start)
            groups = decoded(self._groups(it, end, len(tp), vis.uses_epochs))
            page, more = page_versions(groups, vis, q.rf, q.limit, after)
        return [ScanCell(pk, sk, ts, value) for (pk, sk), ts, value in page], more

    # -- expiration -----------------------------------------------------------

    def _pk_bound(self, table_id: int, pk: bytes | None) -> bytes | None:
        tp = table_prefix(table_id)
        return prefix_end(tp) if pk is None else tp + escape(pk)

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
        """The hot loop of a sweep, written for speed (one ``items`` iterator bounded
        by ``pk_end``; cells with one version, the usual case, decided by
        ``single_version_rule``; runs kept inline, as ``SweepCollector`` would)."""
        tp = table_prefix(table_id)
        first = tp if start is None else tp + escape(start[0]) + TERM + sk_part(start[1])
        end = self._pk_bound(table_id, pk_end)
        one = single_version_rule(vis, pending=pending, tombstones_before_us=tombstones_before_us)
        min_run = max(1, min_run)
        candidates: list[tuple[bytes, bytes]] = []
        add = candidates.append
        runs: list[tuple[int, int]] = []
        run_start = nbytes = examined = 0
        next_cell: tuple[bytes, bytes] | None = None
        tomb = KIND_TOMBSTONE
        bias = _TS_BIAS

        def many(versions: list[tuple[bytes, bytes, int]]) -> None:
            """A cell of several versions: the general rule."""
            nonlocal nbytes, run_start
            stored = [
                (bias - int.from_bytes(k[-8:], "big"), h[0] == tomb, int.from_bytes(h[1:5], "big"))
                for k, h, _ in versions
            ]
            gone = removable_versions(
                stored, vis, pending=pending, tombstones_before_us=tombstones_before_us
            )
            for (k, h, size), g in zip(versions, gone, strict=True):
                if g:
                    add((k, h))
                    nbytes += size
                else:
                    if len(candidates) - run_start >= min_run:
                        runs.append((run_start, len(candidates)))
                    run_start = len(candidates)

        ro = ReadOptions()
        if end is not None:
            ro.set_iterate_upper_bound(end)
        with map_backend_errors("sweep"):
            cell: bytes | None = None
            versions: list[tuple[bytes, bytes, int]] = []  # (key, header, bytes)
            items: Iterator[tuple[bytes, bytes]] = self._db.items(from_key=first, read_opt=ro)  # type: ignore[assignment]  # raw mode: bytes
            for k, v in items:
                body = k[:-8]
                if body != cell:
                    if len(versions) == 1:
                        k1, h1, size1 = versions[0]
                        ts = bias - int.from_bytes(k1[-8:], "big")
                        if one(ts, h1[0] == tomb, int.from_bytes(h1[1:5], "big")):
                            add((k1, h1))
                            nbytes += size1
                        else:
                            if len(candidates) - run_start >= min_run:
                                runs.append((run_start, len(candidates)))
                            run_start = len(candidates)
                    elif versions:
                        many(versions)
                    if versions and examined >= max_versions:
                        _, pk, sk, _ = decode_data_key(k)
                        next_cell = (pk, sk)
                        versions = []
                        break
                    cell, versions = body, []
                versions.append((k, v[:5], len(k) + len(v)))
                examined += 1
            if versions:
                many(versions)
        if len(candidates) - run_start >= min_run:
            runs.append((run_start, len(candidates)))
        return SweepPage(examined, candidates, nbytes, next_cell, runs)

    def _unchanged_run(self, run: Sequence[tuple[bytes, bytes]]) -> int | None:
        """The stored bytes of the run if its keys are still exactly the scanned ones
        (same tokens, no other key between them), else None."""
        ro = ReadOptions()
        ro.set_iterate_upper_bound(run[-1][0] + b"\x00")
        nbytes = 0
        n = 0
        items: Iterator[tuple[bytes, bytes]] = self._db.items(from_key=run[0][0], read_opt=ro)  # type: ignore[assignment]  # raw mode: bytes
        for (k, v), (key, token) in zip(items, run, strict=False):
            if k != key or v[:5] != token:
                return None
            nbytes += len(k) + len(v)
            n += 1
        return nbytes if n == len(run) else None

    def sweep_delete(
        self,
        table_id: int,
        candidates: Sequence[tuple[bytes, bytes]],
        runs: Sequence[tuple[int, int]] = (),
    ) -> SweepDeleted:
        """Runs are checked by one iterator over their span (under the caller's apply
        lock nothing is written meanwhile) and go as one RocksDB range tombstone
        ``[first key, last key + 0x00)``: exactly the run's keys. The other candidates
        are checked with one multi-get and deleted one by one.

        Point reads use a tailing iterator, which does not apply range deletions (see
        ``_point_iter``): until a compaction covered the run (``compact``; the
        sweep's own, at its end) ``get_latest`` checks the version it finds with a
        point get, which does, and reads again with an ordinary iterator if it was
        range-deleted."""
        if not candidates:
            return SweepDeleted()
        with map_backend_errors("sweep delete"):
            wb = WriteBatch(raw_mode=True)
            removed = nbytes = ranges = 0
            single: list[tuple[bytes, bytes]] = []
            at = 0
            for i, j in runs:
                single.extend(candidates[at:i])
                at = j
                run = candidates[i:j]
                size = self._unchanged_run(run) if run else None
                if size is None:
                    single.extend(run)
                    continue
                self._ranged.add(table_id, run[0][0], run[-1][0] + b"\x00")  # reads check
                wb.delete_range(run[0][0], run[-1][0] + b"\x00")
                removed += len(run)
                nbytes += size
                ranges += 1
            single.extend(candidates[at:])
            if single:
                current: list[bytes | None] = self._db.get([k for k, _ in single])  # type: ignore[assignment]
                for (key, token), value in zip(single, current, strict=True):
                    if value is not None and value[:5] == token:
                        wb.delete(key)
                        removed += 1
                        nbytes += len(key) + len(value)
            if ranges:
                wb.put(marker_key(table_id), b"")  # a restart knows the table is pending
            if removed:
                n, b = self._stats.get(table_id, (0, 0))
                stats = (max(0, n - removed), max(0, b - nbytes))
                wb.put(stats_key(table_id), _ENC.encode(stats))
                # To the WAL even when applies skip it: the sweep's next checkpoint is
                # a synced write, which must not outlive the deletes it counts.
                self._db.write(wb, self._wo_wal)
                self._stats[table_id] = stats
        return SweepDeleted(removed, nbytes, ranges)

    def split_points(self, table_id: int, target_bytes: int) -> list[bytes]:
        tp = table_prefix(table_id)
        end = prefix_end(tp)
        assert end is not None
        with map_backend_errors("live files"):
            files = self._db.live_files()
        starts: list[tuple[bytes, int]] = []
        for f in files:
            lo, hi = f["start_key"], f["end_key"]
            if hi < tp or lo >= end:
                continue
            starts.append((max(lo, tp), int(f["size"])))
        starts.sort()
        points: list[bytes] = []
        acc = 0
        for key, size in starts:
            if acc >= target_bytes and key > tp:
                cut = key.find(TERM, len(tp))
                pk = unescape(key[len(tp) : cut if cut >= 0 else len(key)])
                if not points or pk > points[-1]:
                    points.append(pk)
                    acc = 0
            acc += size
        return points

    def compact(self, table_id: int, pk_start: bytes | None, pk_end: bytes | None) -> None:
        tp = table_prefix(table_id)
        lo = tp if pk_start is None else tp + escape(pk_start)
        hi = self._pk_bound(table_id, pk_end)
        assert hi is not None
        seq = self._ranged.seq()
        with map_backend_errors("compact"):
            self._flush()
            self._db.compact_range(lo, hi)
            if self._ranged.compacted(table_id, lo, hi, seq):
                self._db.write(_marker_delete(table_id), self._wo_wal)

    def disk_bytes(self, table_id: int) -> int | None:
        """The sizes of the live SST files holding any of the table's keys, after a
        flush of the memtable (so every applied version is in a file). A file that
        also holds other tables' keys counts whole: an upper bound, exact for a table
        alone in its files (compaction cuts files at table boundaries only by chance)."""
        if self.secondary:
            return None
        tp = table_prefix(table_id)
        end = prefix_end(tp)
        assert end is not None
        with map_backend_errors("live files"):
            self._flush()
            files = self._db.live_files()
        return sum(
            int(f["size"]) for f in files if not (f["end_key"] < tp or f["start_key"] >= end)
        )

    def table_stats(self, table_id: int) -> TableStats:
        n, nbytes = self._stats.get(table_id, (0, 0))
        return TableStats(n, nbytes)

    # -- metadata -------------------------------------------------------------

    def meta_get(self, key: bytes) -> bytes | None:
        with map_backend_errors("metadata read"):
            value = self._db.get(key)
        return None if value is None else bytes(value)

    def meta_scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        with map_backend_errors("metadata scan"):
            it = self._iter_from(prefix)
            while it.valid():  # type: ignore[attr-defined]
                k: bytes = it.key()  # type: ignore[attr-defined]
                if not k.startswith(prefix):
                    break
                out.append((k, it.value()))  # type: ignore[attr-defined]
                it.next()  # type: ignore[attr-defined]
        return out

    def meta_write(
        self,
        items: Mapping[bytes, bytes | None],
        *,
        expect: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """One synced WriteBatch. ``expect`` is checked under a lock that every
        ``meta_write`` of this process takes (one process owns the database)."""
        wb = WriteBatch(raw_mode=True)
        for k, v in items.items():
            if v is None:
                wb.delete(k)
            else:
                wb.put(k, v)
        with self._meta_lock, map_backend_errors("metadata write"):
            for k, want in (expect or {}).items():
                current = self._db.get(k)
                if (None if current is None else bytes(current)) != want:
                    raise ConflictError(
                        f"metadata item {k!r} changed concurrently: compare-and-set failed"
                    )
            self._db.write(wb, self._wo_sync)

    # -- bulk ingest (see ``ingest.py``) ----------------------------------------

    def bulk_ingest(
        self, table_id: int, epoch: int, workdir: Path, lock: AbstractContextManager[object]
    ) -> RocksIngest:
        builders = None
        if self._cfg.bulk_builders > 0:
            with self._meta_lock:
                if self._builders is None:
                    self._builders = SstBuilders(
                        self._cfg.bulk_builders,
                        self._cfg.bulk_builder_nice,
                        self._cfg.compression,
                    )
                builders = self._builders
        return RocksIngest(
            self,
            table_id,
            epoch,
            workdir,
            lock,
            builders=builders,
            parallel_min_cells=self._cfg.bulk_parallel_min_cells,
            compression=self._cfg.compression,
        )

    def _count_ingested(self, table_id: int, cells: int, nbytes: int) -> None:
        """Add ingested versions to the table's counters (caller holds the apply lock)."""
        old = self._stats.get(table_id, (0, 0))
        new = (old[0] + cells, old[1] + nbytes)
        with map_backend_errors("bulk ingest (stats)"):
            self._db.put(stats_key(table_id), _ENC.encode(new), self._wo_sync)
        self._stats[table_id] = new

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._builders is not None:
            self._builders.close()
        with self._iters_lock:  # iterators must go before the database closes
            self._point_iters.clear()
            self._local = threading.local()
        with map_backend_errors("close"):
            if not self.secondary:
                self._db.flush(True)
            self._db.close()
