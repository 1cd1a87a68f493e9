"""Bulk ingest into RocksDB: SST files built with ``SstFileWriter``, then ingested.

One ``add`` call (cell keys and values as byte sequences or pyarrow binary arrays)
becomes one SST file, or one per builder process for a large chunk:

1. without any lock: encode the keys (``codec.keys`` grammar) and values
   (``layout.header(put, epoch) + value``) with Arrow kernels and write them, in
   order, to ``workdir/NNNNNN[-i].sst``; chunks of at least ``parallel_min_cells``
   are cut into consecutive key ranges built in parallel by ``SstBuilders`` worker
   processes (``sstbuild.py``), smaller ones in the calling thread;
2. holding the apply lock: walk the stored keys between the chunk's first and last
   key; a stored key equal to a loaded one is a *collision* (ingesting would replace
   the stored version, even while the job's epoch is invisible). With no collision
   (the usual case; an empty range is one seek) the files are ingested as they are,
   in one ``ingest_external_file`` call (``move_files``: a rename). Otherwise the
   chunk is written again as one file without the colliding cells, which go to
   ``deferred.sst``;
3. the table's stats counters grow by what was ingested.

``commit_write`` makes the epoch visible: the catalog items are written to a small
SST of their own and ingested *together with* ``deferred.sst`` in one
``ingest_external_file`` call, which RocksDB applies atomically (one version edit),
so the deferred cells replace their stored twins at the very instant the catalog
says the epoch is committed. Without deferred cells it is a plain ``meta_write``.

Holding the apply lock during step 2 delays the replayer (never the write log's
acknowledgements) for about the time of one scan of the range plus one ingest.
"""

from __future__ import annotations

import bisect
import shutil
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from rocksdict import IngestExternalFileOptions, SstFileWriter

from mussel.codec.keys import table_prefix
from mussel.errors import MusselError, UnavailableError
from mussel.storage.base import IngestCounts
from mussel.storage.rocksdb.compression import sst_options
from mussel.storage.rocksdb.errors import map_backend_errors
from mussel.storage.rocksdb.layout import KIND_PUT, header
from mussel.storage.rocksdb.sstbuild import SstBuilders, write_sst

if TYPE_CHECKING:
    from mussel.storage.rocksdb.backend import RocksBackend

__all__ = ["RocksIngest"]


def _binary(seq: Sequence[bytes] | pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A binary array; chunked arrays stay chunked (no concatenation copy)."""
    if isinstance(seq, pa.Array | pa.ChunkedArray):
        return seq if seq.type == pa.binary() else seq.cast(pa.binary())
    return pa.array(seq, pa.binary())


def _total_len(arr: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(pc.binary_length(arr)).as_py() or 0)


def _prefixed(prefix: bytes, arr: pa.Array | pa.ChunkedArray) -> list[bytes]:
    joined = pc.binary_join_element_wise(
        pa.scalar(prefix, pa.binary()), arr, pa.scalar(b"", pa.binary())
    )
    return joined.to_pylist()  # type: ignore[no-any-return]


def _ingest_options() -> IngestExternalFileOptions:
    opts = IngestExternalFileOptions()
    opts.set_move_files(True)
    opts.set_allow_global_seqno(True)
    opts.set_allow_blocking_flush(True)
    opts.set_snapshot_consistency(True)
    return opts


class RocksIngest:
    def __init__(
        self,
        backend: RocksBackend,
        table_id: int,
        epoch: int,
        workdir: Path,
        lock: AbstractContextManager[object],
        *,
        builders: SstBuilders | None = None,
        parallel_min_cells: int = 20_000,
        compression: str = "lz4",
    ) -> None:
        self._backend = backend
        self._table_id = table_id
        self._prefix = table_prefix(table_id)
        self._header = header(KIND_PUT, epoch)
        self._workdir = Path(workdir)
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._lock = lock
        self._files = 0
        self._deferred: SstFileWriter | None = None
        self._deferred_path = self._workdir / "deferred.sst"
        self._deferred_cells = 0
        self._deferred_bytes = 0
        self._compression = compression
        self._opts = sst_options(compression)
        self._builders = builders
        self._parallel_min_cells = parallel_min_cells

    def _writer(self, path: Path) -> SstFileWriter:
        w = SstFileWriter(options=self._opts)
        w.open(str(path))
        return w

    def add(
        self,
        cell_keys: Sequence[bytes] | pa.Array | pa.ChunkedArray,
        values: Sequence[bytes] | pa.Array | pa.ChunkedArray,
    ) -> IngestCounts:
        n = len(cell_keys)
        if not n:
            return IngestCounts()
        karr = _binary(cell_keys)
        varr = _binary(values)
        nbytes = n * len(self._prefix) + _total_len(karr) + _total_len(varr)
        self._files += 1
        name = f"{self._files:06d}"
        paths = self._build(name, karr, varr)
        first = self._prefix + karr[0].as_py()
        last = self._prefix + karr[n - 1].as_py()
        keys: list[bytes] | None = None
        if not self._range_empty(first, last):
            # stored keys in the range: the exact check needs the keys (before the lock)
            keys = _prefixed(self._prefix, karr)
        with self._lock:
            if keys is None and not self._range_empty(first, last):
                keys = _prefixed(self._prefix, karr)  # a streaming write got in meanwhile
            clash = self._collisions(keys) if keys is not None else set()
            with map_backend_errors("bulk ingest"):
                if clash:
                    assert keys is not None
                    for p in paths:
                        p.unlink()
                    vals = _prefixed(self._header, varr)
                    path = self._workdir / f"{name}.sst"
                    keep = [i for i in range(len(keys)) if i not in clash]
                    if keep:
                        w = self._writer(path)
                        for i in keep:
                            w[keys[i]] = vals[i]
                        w.finish()
                    if self._deferred is None:
                        self._deferred = self._writer(self._deferred_path)
                    for i in sorted(clash):
                        self._deferred[keys[i]] = vals[i]
                    self._deferred_cells += len(clash)
                    if not keep:
                        return IngestCounts(0, len(clash), nbytes)
                    paths = [path]
                self._backend.db.ingest_external_file([str(p) for p in paths], _ingest_options())
            written = n - len(clash)
            self._backend._count_ingested(self._table_id, n, nbytes)
        return IngestCounts(written, len(clash), nbytes)

    def add_arrow(
        self, cell_keys: pa.Array | pa.ChunkedArray, values: pa.Array | pa.ChunkedArray
    ) -> IngestCounts:
        return self.add(cell_keys, values)

    def expect(self, cells: int) -> None:
        """Start the builder processes now if the chunks will be large enough for them,
        so they are ready when the sorted cells come."""
        if self._builders is not None and cells >= self._parallel_min_cells:
            with map_backend_errors("bulk ingest (start SST builders)"):
                self._builders.warm()

    def _build(
        self, name: str, keys: pa.Array | pa.ChunkedArray, values: pa.Array | pa.ChunkedArray
    ) -> list[Path]:
        """The chunk's SST file(s), without any lock: in the builder processes when the
        chunk is large enough, else in this thread."""
        if self._builders is not None and len(keys) >= self._parallel_min_cells:
            try:
                return self._builders.build(
                    self._workdir, name, self._prefix, self._header, keys, values
                )
            except MusselError:
                raise
            except Exception as exc:  # a worker died, a full disk, ...
                raise UnavailableError(f"bulk ingest (build SST files): {exc}") from exc
        path = self._workdir / f"{name}.sst"
        with map_backend_errors("bulk ingest (write SST)"):
            write_sst(str(path), self._prefix, self._header, keys, values, self._compression)
        return [path]

    def _range_empty(self, first: bytes, last: bytes) -> bool:
        """Whether no stored key lies in ``[first, last]``."""
        with map_backend_errors("bulk ingest (collision check)"):
            it = self._backend.db.iter(self._backend._ro)
            it.seek(first)
            empty = not it.valid() or it.key() > last
            del it
        return empty

    def _collisions(self, keys: list[bytes]) -> set[int]:
        """Indexes of ``keys`` (sorted) that are already stored."""
        first, last = keys[0], keys[-1]
        found: set[int] = set()
        with map_backend_errors("bulk ingest (collision check)"):
            it = self._backend.db.iter(self._backend._ro)
            it.seek(first)
            while it.valid():
                k: bytes = it.key()
                if k > last:
                    break
                i = bisect.bisect_left(keys, k)
                if i < len(keys) and keys[i] == k:
                    found.add(i)
                    it.next()
                elif i < len(keys):
                    it.seek(keys[i])  # skip stored keys that are not loaded
                else:
                    break
            del it
        return found

    def commit_write(self, items: Mapping[bytes, bytes | None]) -> None:
        if self._deferred is None:
            self._backend.meta_write(items)
            return
        with map_backend_errors("bulk commit"):
            self._deferred.finish()
            self._deferred = None
            meta_path = self._workdir / "commit-meta.sst"
            w = self._writer(meta_path)
            for k in sorted(items):
                v = items[k]
                if v is None:
                    raise ValueError("a bulk commit writes catalog items, never deletes")
                w[k] = v
            w.finish()
            self._backend.db.ingest_external_file(
                [str(meta_path), str(self._deferred_path)], _ingest_options()
            )

    def discard(self) -> None:
        self._deferred = None
        shutil.rmtree(self._workdir, ignore_errors=True)
