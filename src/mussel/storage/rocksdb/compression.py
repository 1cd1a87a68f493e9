"""The compression of RocksDB's files, by name (``[rocksdb] compression``): one place for
the database's options and the SST files bulk loads build."""

from __future__ import annotations

from rocksdict import DBCompressionType, Options

from mussel.errors import InvalidRequestError

__all__ = ["COMPRESSIONS", "compression_type", "sst_options"]

COMPRESSIONS = ("lz4", "zstd", "none")


def compression_type(name: str) -> DBCompressionType:
    """``InvalidRequestError`` for a name not in ``COMPRESSIONS``."""
    if name not in COMPRESSIONS:
        raise InvalidRequestError(f"[rocksdb] compression must be lz4, zstd or none, not {name!r}")
    kind: DBCompressionType = getattr(DBCompressionType, name)()
    return kind


def sst_options(name: str) -> Options:
    """Options for an ``SstFileWriter`` whose file is ingested into the database: the
    database's compression (rocksdict's default would be Snappy)."""
    opts = Options(raw_mode=True)
    opts.set_compression_type(compression_type(name))
    return opts
