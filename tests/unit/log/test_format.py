"""Frames and payloads of the local write log (``mussel.log.format``)."""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mussel.log import format as fmt
from mussel.model import Mutation, WellFormedMutations

I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
MUTATIONS = st.builds(
    Mutation,
    table_id=st.integers(min_value=0, max_value=2**32 - 1),
    op=st.sampled_from([0, 1]),
    pk=st.binary(min_size=1, max_size=40),
    sk=st.binary(max_size=40),
    ts=I64,
    value=st.binary(max_size=200),
)


def test_frame_layout_is_checksum_length_type_payload() -> None:
    frame = fmt.encode_frame(fmt.FRAME_BATCH, b"abc")
    crc, length, frame_type = struct.unpack_from("<IIB", frame)
    assert (length, frame_type, frame[9:]) == (3, fmt.FRAME_BATCH, b"abc")
    raw = zlib.crc32(frame[4:])
    assert crc == ((((raw >> 15) | (raw << 17)) + 0xA282EAD8) & 0xFFFFFFFF)
    assert len(frame) == fmt.HEADER_BYTES + 3


def test_frame_bytes_are_stable() -> None:
    """The on-disk format must not change by accident (docs/log_format.md)."""
    frame = fmt.encode_frame(fmt.FRAME_SEGMENT_HEADER, fmt.encode_segment_header(2, 1, [0, 5]))
    assert frame.hex() == (
        "4e563999"  # masked crc32 of the bytes after it
        "12000000"  # payload length 18
        "01"  # SEGMENT_HEADER
        "95aa6d757373656c2d6c6f67010201920005"  # ["mussel-log", 1, 2, 1, [0, 5]]
    )


def test_decode_frame_returns_type_payload_and_next_position() -> None:
    data = b"junk" + fmt.encode_frame(fmt.FRAME_BATCH, b"one") + fmt.encode_frame(2, b"")
    frame_type, payload, end = fmt.decode_frame(data, 4)
    assert (frame_type, bytes(payload)) == (fmt.FRAME_BATCH, b"one")
    frame_type, payload, end = fmt.decode_frame(data, end)
    assert (bytes(payload), end) == (b"", len(data))


def test_every_truncation_of_a_frame_is_a_frame_error() -> None:
    frame = fmt.encode_frame(fmt.FRAME_BATCH, b"payload bytes")
    for cut in range(len(frame)):
        with pytest.raises(fmt.FrameError, match="truncated"):
            fmt.decode_frame(frame[:cut], 0)


def test_every_flipped_bit_of_a_frame_is_a_frame_error() -> None:
    frame = fmt.encode_frame(fmt.FRAME_BATCH, b"payload bytes")
    for i in range(len(frame)):
        for bit in range(8):
            damaged = bytearray(frame)
            damaged[i] ^= 1 << bit
            with pytest.raises(fmt.FrameError):
                fmt.decode_frame(bytes(damaged), 0)


def test_zeroed_space_is_not_a_frame() -> None:
    with pytest.raises(fmt.FrameError):
        fmt.decode_frame(b"\x00" * 64, 0)


def test_unknown_frame_type_is_a_frame_error() -> None:
    with pytest.raises(fmt.FrameError, match="unknown frame type 7"):
        fmt.decode_frame(fmt.encode_frame(7, b"x"), 0)


def test_overlong_length_is_a_frame_error() -> None:
    header = struct.pack("<IIB", 0, fmt.MAX_PAYLOAD_BYTES + 1, fmt.FRAME_BATCH)
    with pytest.raises(fmt.FrameError, match="over the limit"):
        fmt.decode_frame(header + b"x" * 10, 0)


def test_frame_size_reads_the_length_field() -> None:
    frame = fmt.encode_frame(fmt.FRAME_BATCH, b"12345")
    assert fmt.frame_size(frame, 0) == len(frame)
    assert fmt.frame_size(frame[:8], 0) is None


def test_segment_header_round_trips() -> None:
    payload = fmt.encode_segment_header(3, 42, [7, 0, 9])
    header = fmt.decode_segment_header(payload)
    assert header == fmt.SegmentHeader(fmt.MAGIC, fmt.FORMAT_VERSION, 3, 42, [7, 0, 9])


@pytest.mark.parametrize(
    "payload",
    [
        b"\x95\xa3abc\x01\x01\x01\x91\x00",  # bad magic
        fmt.encode_segment_header(3, 1, [0, 0]),  # fewer next offsets than partitions
        b"\xc1",  # not msgpack
    ],
)
def test_bad_segment_header_is_a_frame_error(payload: bytes) -> None:
    with pytest.raises(fmt.FrameError):
        fmt.decode_segment_header(payload)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 2**62), MUTATIONS), max_size=30))
def test_batch_round_trips_through_a_frame(rows: list[tuple[int, int, Mutation]]) -> None:
    partitions = [p for p, _, _ in rows]
    offsets = [o for _, o, _ in rows]
    records = [r for _, _, r in rows]
    payload = fmt.encode_batch(partitions, offsets, fmt.encode_records(records))
    frame = fmt.frame_header(fmt.FRAME_BATCH, payload) + payload
    frame_type, view, end = fmt.decode_frame(frame, 0)
    assert (frame_type, end) == (fmt.FRAME_BATCH, len(frame))
    batch = fmt.decode_batch(view)
    assert (batch.partitions, batch.offsets, batch.records) == (partitions, offsets, records)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_frame_error(data: bytes) -> None:
    with contextlib.suppress(fmt.FrameError):
        fmt.decode_frame(data, 0)
    for decode in (fmt.decode_batch, fmt.decode_segment_header):
        with contextlib.suppress(fmt.FrameError):
            decode(data)


def test_batch_with_columns_of_different_lengths_is_a_frame_error() -> None:
    payload = fmt.encode_batch([0, 1], [0], fmt.encode_records([]))
    with pytest.raises(fmt.FrameError, match="differ in length"):
        fmt.decode_batch(payload)


MALFORMED = [
    Mutation(1, 0, b"pk", b"", 1, None),  # type: ignore[arg-type]
    Mutation(1, 0, "pk", b"", 1, b""),  # type: ignore[arg-type]
    Mutation(1, 0, b"pk", "sk", 1, b""),  # type: ignore[arg-type]
    Mutation(1, 0, b"pk", b"", 1, "v"),  # type: ignore[arg-type]
    Mutation(1, 0, b"pk", b"", 1, bytearray(b"v")),  # type: ignore[arg-type]
    Mutation(1, 0, b"pk", b"", 1.5, b""),  # type: ignore[arg-type]
    Mutation(1, 0, b"pk", b"", True, b""),
    Mutation(True, 0, b"pk", b"", 1, b""),
    Mutation(1, None, b"pk", b"", 1, b""),  # type: ignore[arg-type]
    {"pk": b"x"},
    (1, 0, b"pk", b"", 1, b""),
]


@pytest.mark.parametrize("record", MALFORMED)
def test_malformed_records_are_not_well_formed(record: object) -> None:
    assert not fmt.well_formed(record)


def test_msgspec_encodes_malformed_records_into_batches_that_do_not_decode() -> None:
    """Why the log checks ``well_formed``: msgspec does not check field types on encode."""
    for record in MALFORMED[:4] + MALFORMED[6:9]:
        payload = fmt.encode_batch([0], [0], fmt.encode_records([record]))  # type: ignore[list-item]
        with pytest.raises(fmt.FrameError, match="undecodable batch"):
            fmt.decode_batch(payload)


@settings(max_examples=200, deadline=None)
@given(MUTATIONS)
def test_well_formed_records_decode_back_equal(record: Mutation) -> None:
    assert fmt.well_formed(record)
    batch = fmt.decode_batch(fmt.encode_batch([0], [0], fmt.encode_records([record])))
    assert batch.records == [record]


@pytest.mark.parametrize("ts", [2**64, -(2**63) - 1])
def test_encode_records_refuses_ints_beyond_64_bits(ts: int) -> None:
    with pytest.raises(ValueError, match="not a valid list of Mutation"):
        fmt.encode_records([Mutation(1, 0, b"pk", b"", ts, b"")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 2**62), MUTATIONS), max_size=30))
def test_batch_head_plus_records_is_the_batch_frame(
    rows: list[tuple[int, int, Mutation]],
) -> None:
    partitions = [p for p, _, _ in rows]
    offsets = [o for _, o, _ in rows]
    body = fmt.encode_records([r for _, _, r in rows])
    frame = fmt.batch_head(partitions, offsets, body) + body
    assert frame == fmt.encode_frame(fmt.FRAME_BATCH, fmt.encode_batch(partitions, offsets, body))


@pytest.mark.parametrize("sizes", [[1], [3, 4], [15, 1], [10, 20], [0, 5], [40000, 30000, 1]])
def test_join_records_equals_encoding_everything_at_once(sizes: list[int]) -> None:
    lists = [[Mutation(1, 0, f"{n}-{i}".encode(), b"", i, b"") for i in range(n)] for n in sizes]
    joined = fmt.join_records([(fmt.encode_records(rs), len(rs)) for rs in lists])
    assert joined == fmt.encode_records([r for rs in lists for r in rs])


def test_partitions_of_a_checked_batch_are_those_of_the_same_plain_list() -> None:
    records = [Mutation(t, 0, b"pk%d" % i, b"", i, b"v") for t in (1, 7) for i in range(50)]
    expected = [zlib.crc32(r.pk, r.table_id) % 8 for r in records]
    assert fmt.partitions_of(records, 8) == expected
    assert fmt.partitions_of(WellFormedMutations(records), 8) == expected
    assert fmt.partitions_of([], 8) == []


@pytest.mark.parametrize(
    "bad",
    [
        Mutation(1, 0, "str pk", b"", 1, b"v"),  # type: ignore[arg-type]
        Mutation(1, 0, b"pk", b"", True, b"v"),
        Mutation(1, 0, b"pk", b"", 1, bytearray(b"v")),  # type: ignore[arg-type]
        ("not", "a", "mutation"),
    ],
)
def test_partitions_of_a_plain_list_still_checks_every_record(bad: object) -> None:
    records = [Mutation(1, 0, b"ok", b"", 1, b"v"), bad]
    with pytest.raises(ValueError, match=r"records\[1\] is not a Mutation"):
        fmt.partitions_of(records, 8)  # type: ignore[arg-type]
