"""Order-preserving encoding of cell keys, so a byte-ordered store sorts cells as SPEC §1 says.

Grammar of an encoded key (every integer big-endian)::

    key        := data_key | meta_key
    data_key   := 0x01 table_id pk_part sk_part ts_desc
    table_id   := uint32
    pk_part    := escaped(pk) 0x00 0x01
    sk_part    := escaped(sk) 0x00 0x01
    escaped(b) := b, with every 0x00 byte written as 0x00 0xFF
    ts_desc    := uint64( 0x7FFF_FFFF_FFFF_FFFF - ts )      # ts is int64 microseconds
    meta_key   := 0x00 utf8(kind) 0x00 utf8(name)

Properties the readers rely on:

* bytewise order of ``data_key`` is (table_id, pk, sk) ascending by bytes, then ts
  descending: the newest version of a cell comes first;
* ``escaped`` never produces ``0x00 0x01``, so a terminator ends a part unambiguously,
  and ``escaped(p)`` is a prefix of ``escaped(s)`` whenever ``p`` is a prefix of ``s``:
  an sk-prefix read is one contiguous key range;
* every key of a table starts with ``table_prefix(table_id)``: dropping a table is
  one range delete.
"""

from __future__ import annotations

import struct

__all__ = [
    "META",
    "TERM",
    "cell_key",
    "cell_prefix",
    "data_key",
    "decode_cell_key",
    "decode_data_key",
    "decode_ts",
    "encode_ts",
    "escape",
    "meta_key",
    "prefix_end",
    "row_prefix",
    "sk_part",
    "split_cell_suffix",
    "table_prefix",
    "unescape",
]

DATA = b"\x01"
META = b"\x00"
TERM = b"\x00\x01"
_TS_BIAS = 0x7FFF_FFFF_FFFF_FFFF
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def escape(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff")


def unescape(enc: bytes) -> bytes:
    return enc.replace(b"\x00\xff", b"\x00")


def encode_ts(ts: int) -> bytes:
    """8 bytes that sort newest (largest ts) first."""
    return _U64.pack(_TS_BIAS - ts)


def decode_ts(raw: bytes) -> int:
    (inv,) = _U64.unpack(raw)
    return _TS_BIAS - int(inv)


def table_prefix(table_id: int) -> bytes:
    return DATA + _U32.pack(table_id)


def row_prefix(table_id: int, pk: bytes) -> bytes:
    return DATA + _U32.pack(table_id) + pk.replace(b"\x00", b"\x00\xff") + TERM


def sk_part(sk: bytes) -> bytes:
    return sk.replace(b"\x00", b"\x00\xff") + TERM


def cell_prefix(table_id: int, pk: bytes, sk: bytes) -> bytes:
    return row_prefix(table_id, pk) + sk_part(sk)


def data_key(table_id: int, pk: bytes, sk: bytes, ts: int) -> bytes:
    return (
        DATA
        + _U32.pack(table_id)
        + pk.replace(b"\x00", b"\x00\xff")
        + TERM
        + sk.replace(b"\x00", b"\x00\xff")
        + TERM
        + _U64.pack(_TS_BIAS - ts)
    )


def cell_key(pk: bytes, sk: bytes, ts: int) -> bytes:
    """``pk_part sk_part ts_desc``: a data key without its ``0x01 table_id`` prefix.

    Bulk loads sort and hand over cells in this form (its bytewise order is the
    store's order, whatever the table)."""
    return (
        pk.replace(b"\x00", b"\x00\xff")
        + TERM
        + sk.replace(b"\x00", b"\x00\xff")
        + TERM
        + _U64.pack(_TS_BIAS - ts)
    )


def decode_cell_key(key: bytes) -> tuple[bytes, bytes, int]:
    """Inverse of :func:`cell_key`: (pk, sk, ts)."""
    end = key.find(TERM)
    if end < 0 or len(key) < end + 2 + 2 + 8:
        raise ValueError("not a cell key")
    sk, ts = split_cell_suffix(key[end + 2 :])
    return key[:end].replace(b"\x00\xff", b"\x00"), sk, ts


def split_cell_suffix(suffix: bytes) -> tuple[bytes, int]:
    """Decode ``sk_part ts_desc`` (what follows a row prefix) into (sk, ts)."""
    (inv,) = _U64.unpack_from(suffix, len(suffix) - 8)
    return suffix[:-10].replace(b"\x00\xff", b"\x00"), _TS_BIAS - int(inv)


def decode_data_key(key: bytes) -> tuple[int, bytes, bytes, int]:
    """Inverse of :func:`data_key`: (table_id, pk, sk, ts)."""
    if key[:1] != DATA or len(key) < 1 + 4 + 2 + 2 + 8:
        raise ValueError("not a data key")
    (table_id,) = _U32.unpack_from(key, 1)
    end = key.find(TERM, 5)
    if end < 0:
        raise ValueError("data key without a pk terminator")
    pk = key[5:end].replace(b"\x00\xff", b"\x00")
    sk, ts = split_cell_suffix(key[end + 2 :])
    return int(table_id), pk, sk, ts


def meta_key(kind: str, name: str) -> bytes:
    return META + kind.encode() + b"\x00" + name.encode()


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
