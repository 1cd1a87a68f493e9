"""RocksDB checkpoints of a ``RocksBackend``: the database half of a backup.

A checkpoint is a consistent copy of the database at one moment (RocksDB flushes the
memtable, then hard-links the SST files and copies the small ones). The replayer stores
its applied positions in the same ``WriteBatch`` as the data (``layout.py``), so the
positions a checkpoint holds are exactly what its data reflects: replaying the write
log from them onwards brings it up to date, nothing lost, nothing doubled.
"""

from __future__ import annotations

import os
from pathlib import Path

from rocksdict import AccessType, Checkpoint, Options, Rdict

from mussel.errors import InvalidRequestError
from mussel.storage.rocksdb.backend import RocksBackend
from mussel.storage.rocksdb.errors import map_backend_errors
from mussel.storage.rocksdb.layout import U64, pos_key

__all__ = ["create_checkpoint", "stored_positions"]


def create_checkpoint(backend: RocksBackend, dest: str | os.PathLike[str]) -> dict[int, int]:
    """Write a checkpoint of ``backend`` (a primary) into ``dest``, which must not exist
    yet; return the applied positions it holds (partition -> next offset to apply).

    Safe while the replayer applies: the checkpoint is one point in the apply order.
    """
    if backend.secondary:
        raise InvalidRequestError("a checkpoint is taken from the primary, not a secondary")
    target = Path(dest)
    if target.exists():
        raise InvalidRequestError(f"{target} already exists: a checkpoint needs a new directory")
    with map_backend_errors("checkpoint"):
        Checkpoint(backend.db).create_checkpoint(str(target))
    return stored_positions(target)


def stored_positions(path: str | os.PathLike[str]) -> dict[int, int]:
    """The applied positions stored in the (closed) database or checkpoint at ``path``,
    read through a read-only open that changes nothing."""
    opts = Options(raw_mode=True)
    prefix = pos_key(0)[:-5]
    out: dict[int, int] = {}
    with map_backend_errors(f"read the applied positions of {path}"):
        db = Rdict(str(path), opts, access_type=AccessType.read_only())
        try:
            it = db.iter()
            it.seek(prefix)
            while it.valid():
                k: bytes = it.key()
                if not k.startswith(prefix):
                    break
                out[int(k.rsplit(b"\x00", 1)[1])] = U64.unpack(it.value())[0]
                it.next()
            del it
        finally:
            db.close()
    return out
