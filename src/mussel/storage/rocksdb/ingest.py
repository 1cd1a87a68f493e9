"""Bulk ingest into RocksDB: SST files built with ``SstFileWriter``, then ingested.

One ``add`` call becomes one SST file:

1. without any lock: encode the keys (``codec.keys`` grammar) and values
   (``layout.header(put, epoch) + value``) and write them, in order, to
   ``workdir/NNNNNN.sst``;
2. holding the apply lock: walk the stored keys between the file's first and last
   key; a stored key equal to a loaded one is a *collision* (ingesting would replace
   the stored version, even while the job's epoch is invisible). With no collision
   (the usual case) the file is ingested as is (``move_files``: a rename). Otherwise
   it is written again without the colliding cells, which go to ``deferred.sst``;
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

from rocksdict import IngestExternalFileOptions, Options, SstFileWriter

from mussel.codec.keys import table_prefix
from mussel.storage.base import IngestCounts
from mussel.storage.rocksdb.errors import map_backend_errors
from mussel.storage.rocksdb.layout import KIND_PUT, header

if TYPE_CHECKING:
    from mussel.storage.rocksdb.backend import RocksBackend

__all__ = ["RocksIngest"]


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
        self._opts = Options(raw_mode=True)

    def _writer(self, path: Path) -> SstFileWriter:
        w = SstFileWriter(options=self._opts)
        w.open(str(path))
        return w

    def add(self, cell_keys: Sequence[bytes], values: Sequence[bytes]) -> IngestCounts:
        if not cell_keys:
            return IngestCounts()
        tp, h = self._prefix, self._header
        keys = [tp + k for k in cell_keys]
        vals = [h + v for v in values]
        self._files += 1
        path = self._workdir / f"{self._files:06d}.sst"
        with map_backend_errors("bulk ingest (write SST)"):
            w = self._writer(path)
            for k, v in zip(keys, vals, strict=True):
                w[k] = v
            w.finish()
        nbytes = sum(map(len, keys)) + sum(map(len, values))
        with self._lock:
            clash = self._collisions(keys)
            with map_backend_errors("bulk ingest"):
                if clash:
                    path.unlink()
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
                self._backend.db.ingest_external_file([str(path)], _ingest_options())
            written = len(keys) - len(clash)
            self._backend._count_ingested(self._table_id, len(keys), nbytes)
        return IngestCounts(written, len(clash), nbytes)

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
