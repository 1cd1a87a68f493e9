"""How Mussel lays data out in its one RocksDB database.

Keys are those of ``mussel.codec.keys``: every table is a key prefix
(``0x01 table_id``) in the default column family, so a table costs one catalog
entry and nothing else (no column family, memtable or file per table).

A stored value is::

    value   := kind(1) epoch(uint32, big-endian) payload
    kind    := 0x00 put | 0x01 tombstone            (a tombstone's payload is empty)

Metadata items live under ``0x00`` (``codec.keys.meta_key``): the catalog, and the
replayer's applied positions ``meta_key("pos", "<partition>") -> uint64`` and
per-table counters ``meta_key("stats", "<table_id>") -> [versions, bytes]``
written in the same WriteBatch as the data they describe.
"""

from __future__ import annotations

import struct

from mussel.codec.keys import meta_key

__all__ = ["KIND_PUT", "KIND_TOMBSTONE", "U64", "header", "pos_key", "stats_key"]

KIND_PUT = 0
KIND_TOMBSTONE = 1
U64 = struct.Struct(">Q")


def header(kind: int, epoch: int) -> bytes:
    return bytes((kind,)) + epoch.to_bytes(4, "big")


def pos_key(partition: int) -> bytes:
    return meta_key("pos", f"{partition:05d}")


def stats_key(table_id: int) -> bytes:
    return meta_key("stats", f"{table_id:010d}")
