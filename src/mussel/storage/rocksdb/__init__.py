"""The embedded backend on RocksDB (rocksdict). Only this package imports rocksdict."""

from mussel.storage.rocksdb.backend import RocksBackend, RocksConfig

__all__ = ["RocksBackend", "RocksConfig"]
