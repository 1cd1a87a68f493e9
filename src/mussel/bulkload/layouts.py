"""Layouts: how the rows of a Parquet file become cells.

``cells``: one cell per row, from the columns ``pk``, ``sk``, ``value`` and the
optional ``ts`` (names mappable with ``columns``, e.g. ``{"pk": "user_id"}``).
pk, sk and value are ``string`` or ``binary`` columns (UTF-8 bytes for strings);
ts is an integer column (microseconds since the epoch) or a ``timestamp`` column. A
null pk, sk or value is an error naming the file and row; a null ts means "the job's
timestamp T". Without a ts column every cell is written at T.

``wide``: one row per pk; every other column is a cell whose sk is the column name
(UTF-8), except the ts column if one is mapped (``columns={"ts": "updated_at"}``).
A null is no cell. Values are encoded reversibly, the source's Arrow type saying
how to decode them (docs/bulkload.md has the table):

=====================  =================================================
string, binary         the UTF-8 bytes / the bytes themselves
bool                   ``true`` / ``false``
integers               decimal ASCII, e.g. ``-42``
float, double          the shortest decimal that reads back to the same
                       value (``0.1``, ``1e+20``, ``nan``, ``inf``)
decimal                its decimal text, e.g. ``12.340``
date, time, timestamp  ISO 8601 text as Arrow casts it (``2024-01-31``,
                       ``2024-01-31 12:00:00.000000``)
list, struct, map      JSON (UTF-8), lists as arrays, structs as objects,
                       maps as arrays of [key, value]; bytes inside as
                       strings, floats as JSON numbers
=====================  =================================================

Hive partition columns (``col=value`` directories) are string columns of every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mussel.bulkload.source import Batch, SourceFile
from mussel.errors import InvalidRequestError

__all__ = ["LAYOUTS", "CELL_SCHEMA", "Layout", "parse_layout"]

LAYOUTS = ("cells", "wide")

CELL_SCHEMA = pa.schema(
    [
        ("pk", pa.binary()),
        ("sk", pa.binary()),
        ("ts", pa.int64()),
        ("value", pa.binary()),
        ("seq", pa.int64()),
        ("row", pa.int64()),
    ]
)

_TEXT = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
_BYTES = (
    pa.types.is_binary,
    pa.types.is_large_binary,
    pa.types.is_fixed_size_binary,
    pa.types.is_binary_view,
)


def _is_keylike(t: pa.DataType) -> bool:
    return any(f(t) for f in (*_TEXT, *_BYTES)) or bool(pa.types.is_dictionary(t))


def _is_ts(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_timestamp(t))


def _to_binary(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        # one chunk (a column of one record batch): its array as it is, not a copy
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_binary(t):
        return arr
    if pa.types.is_string(t):
        return arr.view(pa.binary())  # the same buffers: no copy
    return pc.cast(arr, pa.binary())


def _ts_us(arr: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is not None:
            arr = pc.cast(arr, pa.timestamp(arr.type.unit))
        return pc.cast(pc.cast(arr, pa.timestamp("us")), pa.int64())
    return pc.cast(arr, pa.int64())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "surrogateescape")
    return str(obj)


def _encode_value(arr: pa.Array) -> pa.Array:
    """A wide-layout column as binary values (module docstring)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if any(f(t) for f in (*_TEXT, *_BYTES)):
        return _to_binary(arr)
    if pa.types.is_boolean(t):
        return pc.cast(pc.if_else(arr, "true", "false"), pa.binary())
    if pa.types.is_floating(t):
        values = [None if v is None else repr(v) for v in arr.to_pylist()]
        return pa.array([None if v is None else v.encode() for v in values], pa.binary())
    if pa.types.is_nested(t):
        enc = msgspec.json.Encoder(enc_hook=_json_default)
        return pa.array(
            [
                None if v is None else enc.encode(list(v) if pa.types.is_map(t) else v)
                for v in arr.to_pylist()
            ],
            pa.binary(),
        )
    try:
        return pc.cast(pc.cast(arr, pa.string()), pa.binary())
    except pa.ArrowNotImplementedError as exc:
        raise InvalidRequestError(f"column of type {t} cannot be loaded: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Layout:
    kind: str
    pk: str = "pk"
    sk: str = "sk"
    value: str = "value"
    ts: str | None = "ts"
    ts_required: bool = False

    def check(self, f: SourceFile) -> None:
        """Raise ``InvalidRequestError`` if the file's columns do not fit the layout."""
        schema = _with_partitions(f)
        names = set(schema.names)

        def need(col: str, role: str, ok: Any, kind: str) -> None:
            if col not in names:
                raise InvalidRequestError(
                    f"{f.path}: no {role} column {col!r} (columns: {', '.join(schema.names)})"
                )
            t = schema.field(col).type
            if not ok(t):
                raise InvalidRequestError(
                    f"{f.path}: the {role} column {col!r} is {t}; it must be {kind}"
                )

        need(self.pk, "pk", _is_keylike, "a string or binary column")
        if self.kind == "cells":
            need(self.sk, "sk", _is_keylike, "a string or binary column")
            need(self.value, "value", _is_keylike, "a string or binary column")
        if self.ts is not None and (self.ts_required or self.ts in names):
            need(self.ts, "ts", _is_ts, "an integer (microseconds) or timestamp column")
        if self.kind == "wide" and len(names - {self.pk, self.ts}) == 0:
            raise InvalidRequestError(f"{f.path}: a wide layout needs columns besides the pk")

    def cells(self, batch: Batch, seq0: int, default_ts: int) -> pa.Table:
        """The batch's cells (``CELL_SCHEMA``); ``seq`` numbers rows in source order."""
        rb = batch.data
        n = rb.num_rows
        tbl = pa.Table.from_batches([rb])
        for col, value in batch.file.partition:
            if col not in tbl.column_names:
                tbl = tbl.append_column(col, pa.array([value] * n, pa.string()))
        rows = pa.array(np.arange(batch.first_row, batch.first_row + n, dtype=np.int64))
        seq = pa.array(np.arange(seq0, seq0 + n, dtype=np.int64))
        pk = _to_binary(tbl.column(self.pk))
        _no_nulls(pk, "pk", batch)
        if self.ts is not None and self.ts in tbl.column_names:
            ts = pc.fill_null(_ts_us(tbl.column(self.ts).combine_chunks()), default_ts)
        else:
            ts = pa.array(np.full(n, default_ts, dtype=np.int64))
        if self.kind == "cells":
            sk = _to_binary(tbl.column(self.sk))
            value = _to_binary(tbl.column(self.value))
            _no_nulls(sk, "sk", batch)
            _no_nulls(value, "value", batch)
            return pa.Table.from_arrays([pk, sk, ts, value, seq, rows], schema=CELL_SCHEMA)
        parts = []
        for name in tbl.column_names:
            if name in (self.pk, self.ts):
                continue
            col = tbl.column(name).combine_chunks()
            mask = pc.is_valid(col)
            vals = _encode_value(col)
            m = len(pc.filter(vals, mask)) if col.null_count else n
            if m == 0:
                continue
            sk_b = name.encode("utf-8")
            if col.null_count:
                parts.append(
                    pa.Table.from_arrays(
                        [
                            pc.filter(pk, mask),
                            pa.array([sk_b] * m, pa.binary()),
                            pc.filter(ts, mask),
                            pc.filter(vals, mask),
                            pc.filter(seq, mask),
                            pc.filter(rows, mask),
                        ],
                        schema=CELL_SCHEMA,
                    )
                )
            else:
                parts.append(
                    pa.Table.from_arrays(
                        [pk, pa.array([sk_b] * n, pa.binary()), ts, vals, seq, rows],
                        schema=CELL_SCHEMA,
                    )
                )
        if not parts:
            return CELL_SCHEMA.empty_table()
        return pa.concat_tables(parts)


def _with_partitions(f: SourceFile) -> pa.Schema:
    schema = f.schema
    for col, _ in f.partition:
        if col not in schema.names:
            schema = schema.append(pa.field(col, pa.string()))
    return schema


def _no_nulls(arr: pa.Array, role: str, batch: Batch) -> None:
    if arr.null_count:
        first = pc.index(pc.is_null(arr), True).as_py()
        raise InvalidRequestError(
            f"{batch.file.path}, row {batch.first_row + first}: the {role} is null"
        )


def parse_layout(kind: object, columns: object) -> Layout:
    """Validate a layout name and a ``columns`` mapping (role -> column name)."""
    if kind not in LAYOUTS:
        raise InvalidRequestError(f"layout must be one of {', '.join(LAYOUTS)}, not {kind!r}")
    if columns is None:
        columns = {}
    if not isinstance(columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in columns.items()
    ):
        raise InvalidRequestError("columns must map roles (pk, sk, value, ts) to column names")
    roles = {"pk", "ts"} if kind == "wide" else {"pk", "sk", "value", "ts"}
    unknown = set(columns) - roles
    if unknown:
        raise InvalidRequestError(
            f"unknown column role(s) for the {kind} layout: {', '.join(sorted(unknown))} "
            f"(roles: {', '.join(sorted(roles))})"
        )
    return Layout(
        kind=str(kind),
        pk=columns.get("pk", "pk"),
        sk=columns.get("sk", "sk"),
        value=columns.get("value", "value"),
        ts=columns.get("ts", None if kind == "wide" else "ts"),
        ts_required="ts" in columns,
    )
