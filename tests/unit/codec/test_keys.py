from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mussel.codec.cursor import decode_cursor, encode_cursor
from mussel.codec.keys import (
    cell_prefix,
    data_key,
    decode_data_key,
    escape,
    prefix_end,
    row_prefix,
    sk_part,
    table_prefix,
)
from mussel.errors import InvalidCursorError
from mussel.limits import TS_MAX, TS_MIN

small = st.binary(max_size=6).map(lambda b: bytes(x % 3 for x in b))  # many 0x00 and 0x01
tss = st.integers(min_value=TS_MIN, max_value=TS_MAX)
cells = st.tuples(st.integers(0, 3), small.filter(bool), small, tss)


@given(st.lists(cells, min_size=2, max_size=30))
def test_encoded_order_is_table_pk_sk_then_newest_first(items: list) -> None:
    by_key = sorted(items, key=lambda c: data_key(*c))
    by_model = sorted(items, key=lambda c: (c[0], c[1], c[2], -c[3]))
    assert [data_key(*c) for c in by_key] == [data_key(*c) for c in by_model]


@given(cells)
def test_data_key_round_trips(cell: tuple) -> None:
    assert decode_data_key(data_key(*cell)) == cell


@given(st.integers(0, 3), small.filter(bool), small, small, tss)
def test_sk_prefix_is_one_contiguous_key_range(
    tid: int, pk: bytes, prefix: bytes, rest: bytes, ts: int
) -> None:
    key = data_key(tid, pk, prefix + rest, ts)
    lo = row_prefix(tid, pk) + escape(prefix)
    hi = prefix_end(lo)
    assert key.startswith(lo)
    assert hi is None or key < hi


@given(st.integers(0, 3), small.filter(bool), small, small, tss)
def test_keys_outside_a_prefix_fall_outside_its_range(
    tid: int, pk: bytes, prefix: bytes, sk: bytes, ts: int
) -> None:
    key = data_key(tid, pk, sk, ts)
    lo = row_prefix(tid, pk) + escape(prefix)
    inside = key.startswith(lo)
    assert inside == sk.startswith(prefix)


@given(st.integers(0, 3), small.filter(bool), small, small, tss)
def test_sk_range_bounds_match_bytewise_comparison(
    tid: int, pk: bytes, start: bytes, sk: bytes, ts: int
) -> None:
    key = data_key(tid, pk, sk, ts)
    assert (key >= row_prefix(tid, pk) + sk_part(start)) == (sk >= start)
    assert (key < row_prefix(tid, pk) + sk_part(start)) == (sk < start)


def test_every_key_of_a_table_starts_with_its_prefix() -> None:
    assert data_key(7, b"a", b"b", 1).startswith(table_prefix(7))
    assert cell_prefix(7, b"a\x00", b"") == table_prefix(7) + b"a\x00\xff\x00\x01\x00\x01"


def test_prefix_end() -> None:
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None


def test_cursor_round_trip_and_rejects_foreign_tokens() -> None:
    token = encode_cursor("row", b"pk", b"sk", 42)
    assert decode_cursor(token, "row", (bytes, bytes, int)) == (b"pk", b"sk", 42)
    with pytest.raises(InvalidCursorError):
        decode_cursor(token, "scan", (bytes, bytes, int))
    for bad in ("", "!!!", "bm90IG1zZ3BhY2s", encode_cursor("row", 1, 2, 3)):
        with pytest.raises(InvalidCursorError):
            decode_cursor(bad, "row", (bytes, bytes, int))


def test_cell_key_is_a_data_key_without_its_table_prefix() -> None:
    from mussel.codec.keys import cell_key, data_key, decode_cell_key, table_prefix

    for pk, sk, ts in [(b"a", b"", 0), (b"\x00\x01", b"s\x00", -5), (b"p", b"q", 2**62)]:
        assert table_prefix(7) + cell_key(pk, sk, ts) == data_key(7, pk, sk, ts)
        assert decode_cell_key(cell_key(pk, sk, ts)) == (pk, sk, ts)
