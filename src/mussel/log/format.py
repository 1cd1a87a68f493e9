"""Record framing of the local write log: how frames and their payloads are laid out.

A segment file is a sequence of frames; the first frame of every segment is a
SEGMENT_HEADER, every later one a BATCH (all records of one ``append`` call). Integers
in frame headers are little-endian::

    segment  := frame*
    frame    := checksum:u32  length:u32  type:u8  payload:byte[length]
    checksum := mask(crc32(length || type || payload))       (bytes 4 .. 9+length)
    mask(c)  := ((c >> 15) | (c << 17)) + 0xA282EAD8  (mod 2**32)   (as leveldb)
    type     := 1 SEGMENT_HEADER | 2 BATCH     (0 is never valid: zeroed space is no frame)

    SEGMENT_HEADER payload, msgpack:
        [magic "mussel-log", version 1, partitions P, sequence S, [next_offset(p) for p < P]]
        next_offset(p) is the offset the first record of partition p in this segment
        would have: end offsets survive after every older segment is deleted.
    BATCH payload, msgpack (column-wise, one entry per record, in append order):
        [[partition]*, [offset]*, [[table_id, op, pk, sk, ts, value]]*]

``crc32`` is zlib's (ISO-HDLC polynomial, computed in C); the mask keeps the checksum
of data that itself holds checksums from being trivially related to them. A frame
header is ``HEADER_BYTES`` (9) bytes; a payload is at most ``MAX_PAYLOAD_BYTES``.

This module is pure: bytes in, values out. Any damage is a :class:`FrameError`
whose ``reason`` says what is wrong; the caller decides whether that is a torn tail
to truncate or corruption to report. The writer must give it only records that decode
back (:func:`well_formed`): msgspec encodes whatever a ``Mutation`` holds without
checking its field types, and a frame holding, say, a str ``pk`` would be unreadable.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from itertools import repeat
from operator import attrgetter
from operator import mod as _MOD

import msgspec

from mussel.model import Mutation, WellFormedMutations

__all__ = [
    "FORMAT_VERSION",
    "FRAME_BATCH",
    "FRAME_SEGMENT_HEADER",
    "HEADER_BYTES",
    "MAGIC",
    "MAX_PAYLOAD_BYTES",
    "Batch",
    "batch_head",
    "FrameError",
    "SegmentHeader",
    "decode_batch",
    "decode_frame",
    "decode_segment_header",
    "encode_batch",
    "encode_frame",
    "encode_records",
    "encode_segment_header",
    "frame_header",
    "frame_size",
    "join_records",
    "partitions_of",
    "well_formed",
]

FRAME_SEGMENT_HEADER = 1
FRAME_BATCH = 2
_FRAME_TYPES = frozenset((FRAME_SEGMENT_HEADER, FRAME_BATCH))

HEADER_BYTES = 9
MAX_PAYLOAD_BYTES = 1 << 30
FORMAT_VERSION = 1
MAGIC = "mussel-log"

_HEADER = struct.Struct("<IIB")
_LENGTH_TYPE = struct.Struct("<IB")
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_FIELDS = ("table_id", "op", "pk", "sk", "ts", "value")
_TABLE_ID, _OP, _PK, _SK, _TS, _VALUE = map(attrgetter, _FIELDS)
_MUTATION, _BYTES, _INT = frozenset((Mutation,)), frozenset((bytes,)), frozenset((int,))


class FrameError(Exception):
    """A frame or payload that is short, fails its checksum or does not decode."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SegmentHeader(msgspec.Struct, array_like=True, frozen=True):
    """The payload of a SEGMENT_HEADER frame."""

    magic: str
    version: int
    partitions: int
    sequence: int
    next_offsets: list[int]


class Batch(msgspec.Struct, array_like=True, gc=False):
    """A decoded BATCH payload: record i is in ``partitions[i]`` at ``offsets[i]``."""

    partitions: list[int]
    offsets: list[int]
    records: list[Mutation]


class _BatchOut(msgspec.Struct, array_like=True, gc=False):
    """The same layout as :class:`Batch`, with the records already encoded."""

    partitions: list[int]
    offsets: list[int]
    records: msgspec.Raw


_NO_RECORDS = msgspec.Raw(b"")  # a _BatchOut with these encodes to the batch's first bytes
_encode = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(Batch).decode
_decode_header = msgspec.msgpack.Decoder(SegmentHeader).decode
# msgspec raises more than DecodeError on some damage (UnicodeDecodeError, deep nesting).
_DECODE_ERRORS = (msgspec.DecodeError, ValueError, RecursionError)


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def frame_header(frame_type: int, payload: bytes) -> bytes:
    """The 9 header bytes of a frame holding ``payload`` (write them, then ``payload``).

    REQUIRES: ``frame_type`` is a known type and ``len(payload) <= MAX_PAYLOAD_BYTES``.
    """
    length_type = _LENGTH_TYPE.pack(len(payload), frame_type)
    crc = _mask(zlib.crc32(payload, zlib.crc32(length_type)))
    return crc.to_bytes(4, "little") + length_type


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    """A whole frame: header then payload."""
    return frame_header(frame_type, payload) + payload


def frame_size(buf: bytes | memoryview, pos: int) -> int | None:
    """The total size of the frame starting at ``pos``, or None if its header is cut short.

    Trusts the length field (no checksum check): use it to know how much to read.
    """
    if len(buf) - pos < HEADER_BYTES:
        return None
    length: int = _HEADER.unpack_from(buf, pos)[1]
    return HEADER_BYTES + length


def decode_frame(buf: bytes | memoryview, pos: int) -> tuple[int, memoryview, int]:
    """Check the frame at ``buf[pos:]``; return (type, payload view, position after it).

    Raises :class:`FrameError` if the header or payload is cut short, the length is
    over the limit, the type is unknown or the checksum does not match.
    """
    view = memoryview(buf)
    available = len(view) - pos
    if available < HEADER_BYTES:
        raise FrameError(f"truncated frame header ({available} of {HEADER_BYTES} bytes)")
    crc, length, frame_type = _HEADER.unpack_from(view, pos)
    if length > MAX_PAYLOAD_BYTES:
        raise FrameError(f"frame length {length} is over the limit of {MAX_PAYLOAD_BYTES}")
    end = pos + HEADER_BYTES + length
    if end > len(view):
        raise FrameError(f"truncated frame payload ({available - HEADER_BYTES} of {length} bytes)")
    if _mask(zlib.crc32(view[pos + 4 : end])) != crc:
        raise FrameError("frame checksum mismatch")
    if frame_type not in _FRAME_TYPES:
        raise FrameError(f"unknown frame type {frame_type}")
    return frame_type, view[pos + HEADER_BYTES : end], end


def encode_segment_header(partitions: int, sequence: int, next_offsets: Sequence[int]) -> bytes:
    """The payload of a SEGMENT_HEADER frame."""
    return _encode(SegmentHeader(MAGIC, FORMAT_VERSION, partitions, sequence, list(next_offsets)))


def decode_segment_header(payload: bytes | memoryview) -> SegmentHeader:
    """Decode and check a SEGMENT_HEADER payload (magic, one next offset per partition).

    The version is returned, not checked: an unknown version is not damage.
    """
    try:
        header = _decode_header(payload)
    except _DECODE_ERRORS as exc:
        raise FrameError(f"undecodable segment header: {exc}") from None
    if header.magic != MAGIC:
        raise FrameError(f"bad segment magic {header.magic!r}")
    if header.partitions < 1 or len(header.next_offsets) != header.partitions:
        raise FrameError(
            f"segment header has {len(header.next_offsets)} next offsets "
            f"for {header.partitions} partitions"
        )
    return header


def well_formed(record: object) -> bool:
    """Whether ``record`` can be logged: an exact ``Mutation`` whose ``table_id``, ``op``
    and ``ts`` are exact ints and ``pk``, ``sk`` and ``value`` exact bytes.

    That is exactly what :func:`decode_batch` gives back (ints beyond 64 bits aside,
    which :func:`encode_records` refuses), so a well-formed record is read back equal,
    and a log that serves the appended objects themselves from memory serves what a
    reader of the file gets. msgspec checks none of it when encoding: a str ``pk`` is
    encoded as a msgpack str, a bool ``ts`` as ``true``, and such a BATCH would not
    decode. ``LocalLog`` checks the same condition inline in its per-record loop.
    """
    return (
        type(record) is Mutation
        and type(record.pk) is bytes
        and type(record.sk) is bytes
        and type(record.value) is bytes
        and type(record.table_id) is int
        and type(record.op) is int
        and type(record.ts) is int
    )


def encode_records(records: Sequence[Mutation]) -> bytes:
    """The msgpack of ``records`` (the third column of a BATCH payload).

    REQUIRES: every record is :func:`well_formed`; this does not check it (the check
    costs as much as the encoding: the caller does it in a pass it makes anyway). Raises
    ValueError for what msgspec cannot encode (an int beyond 64 bits, a foreign object).
    """
    try:
        return _encode(records)
    except (msgspec.EncodeError, TypeError, OverflowError) as exc:
        raise ValueError(f"not a valid list of Mutation records: {exc}") from None


def _array_header(n: int) -> bytes:
    """The msgpack array header msgspec writes for ``n`` elements (its smallest form)."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def join_records(encoded: Sequence[tuple[bytes, int]]) -> bytes:
    """``encode_records`` of several record lists one after the other, from each list's
    ``(encode_records(list), len(list))``, without encoding any record again: the
    elements are copied behind one new array header. (KafkaLog merges the appends
    that wait for a partition into one message this way.)"""
    if len(encoded) == 1:
        return encoded[0][0]
    total = sum(n for _, n in encoded)
    chunks: list[bytes | memoryview] = [_array_header(total)]
    for body, n in encoded:
        chunks.append(memoryview(body)[len(_array_header(n)) :])
    return b"".join(chunks)


def encode_batch(partitions: list[int], offsets: list[int], records_msgpack: bytes) -> bytes:
    """A BATCH payload from the columns and the output of :func:`encode_records`."""
    return _encode(_BatchOut(partitions, offsets, msgspec.Raw(records_msgpack)))


def batch_head(partitions: list[int], offsets: list[int], records_msgpack: bytes) -> bytes:
    """The bytes of a BATCH frame that come before its records.

    ``batch_head(p, o, r) + r == encode_frame(FRAME_BATCH, encode_batch(p, o, r))``, but
    ``r`` (nearly all of the frame) is not copied: write the two parts one after the other.
    REQUIRES: the payload is at most ``MAX_PAYLOAD_BYTES``.
    """
    columns = _encode(_BatchOut(partitions, offsets, _NO_RECORDS))
    length_type = _LENGTH_TYPE.pack(len(columns) + len(records_msgpack), FRAME_BATCH)
    crc = _mask(zlib.crc32(records_msgpack, zlib.crc32(columns, zlib.crc32(length_type))))
    return b"".join((crc.to_bytes(4, "little"), length_type, columns))


def decode_batch(payload: bytes | memoryview) -> Batch:
    """Decode a BATCH payload; its three columns have the same length."""
    try:
        batch = _decode_batch(payload)
    except _DECODE_ERRORS as exc:
        raise FrameError(f"undecodable batch: {exc}") from None
    if not len(batch.partitions) == len(batch.offsets) == len(batch.records):
        raise FrameError("batch columns differ in length")
    return batch


def partitions_of(records: Sequence[Mutation], partitions: int) -> list[int]:
    """The partition of each record; ValueError unless every one is well formed.

    The per-record pass of every log's append path (LocalLog, KafkaLog):
    :func:`well_formed` and ``base.partition_for``, column by column (C-level ``map``s,
    no Python bytecode per record). The type checks come first, so ``crc32`` only ever
    sees an exact bytes pk and int table id; a ``WellFormedMutations`` list (the engine's
    validated batch) is not checked again.
    """
    n = len(records)
    if type(records) is WellFormedMutations:  # checked when it was built
        return list(
            map(
                _MOD,
                map(zlib.crc32, map(_PK, records), map(_TABLE_ID, records)),
                repeat(partitions, n),
            )
        )
    if (
        set(map(type, records)) <= _MUTATION
        and set(map(type, map(_PK, records))) <= _BYTES
        and set(map(type, map(_SK, records))) <= _BYTES
        and set(map(type, map(_VALUE, records))) <= _BYTES
        and set(map(type, map(_TABLE_ID, records))) <= _INT
        and set(map(type, map(_OP, records))) <= _INT
        and set(map(type, map(_TS, records))) <= _INT
    ):
        # every record is well formed: one C-level pass per column, no bytecode per record
        return list(
            map(
                _MOD,
                map(zlib.crc32, map(_PK, records), map(_TABLE_ID, records)),
                repeat(partitions, n),
            )
        )
    i, bad = next((i, r) for i, r in enumerate(records) if not well_formed(r))
    got = (
        ", ".join(f"{f}: {type(getattr(bad, f)).__name__}" for f in _FIELDS)
        if type(bad) is Mutation
        else type(bad).__name__
    )
    raise ValueError(
        f"records[{i}] is not a Mutation of int table_id, op, ts and bytes pk, sk, value ({got})"
    )
