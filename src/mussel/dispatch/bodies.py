"""Typed request bodies (SPEC §4). msgspec checks types and fixed bounds; the engine
checks the rest (limits a server may configure, keys, partitioning).

These types also generate the request schemas of ``/openapi.json``, so the bounds
given here are in the document too.
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from mussel.limits import MAX_EXPIRE_INTERVAL_S, MAX_MAX_VERSIONS, TS_MAX, TS_MIN

__all__ = [
    "BackupBody",
    "BulkLoadBody",
    "GetBody",
    "GetKey",
    "NamespaceBody",
    "PartitioningBody",
    "QuotasBody",
    "TableBody",
    "WriteBody",
    "WriteRecord",
]

K = TypeVar("K", str, bytes)
"""Keys and values: ``str`` in JSON bodies, ``bytes`` (msgpack bin) in msgpack bodies."""

INT64_MAX = 2**63 - 1
"""The bound of every integer in a body: what is stored is echoed in answers, and
msgpack (and clients in most languages) carry 64-bit integers only."""

Ts = Annotated[int, Meta(ge=TS_MIN, le=TS_MAX)]
"""A timestamp: microseconds since the epoch, a signed 64-bit integer."""
Count = Annotated[int, Meta(ge=0, le=INT64_MAX)]
Positive = Annotated[int, Meta(ge=1, le=INT64_MAX)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class WriteRecord(_Strict, Generic[K]):
    pk: K
    op: Literal["put", "delete"] = "put"
    sk: K | None = None
    value: K | None = None
    ts: Ts | None = None


class WriteBody(_Strict, Generic[K]):
    records: Annotated[list[WriteRecord[K]], Meta(min_length=1)]
    ack: Literal["durable", "applied"] = "durable"


class GetKey(_Strict, Generic[K]):
    pk: K
    sk: K | None = None


class GetBody(_Strict, Generic[K]):
    keys: list[GetKey[K]]
    consistency: Literal["strong", "eventual"] | None = None
    versions: Positive = 1


class QuotasBody(_Strict):
    storage_bytes: Count | UnsetType | None = UNSET
    read_qps: Count | UnsetType | None = UNSET
    write_qps: Count | UnsetType | None = UNSET
    tables: Count | UnsetType | None = UNSET


class NamespaceBody(_Strict):
    consistency: Literal["strong", "eventual"] | UnsetType = UNSET
    quotas: QuotasBody | UnsetType = UNSET


class PresplitBody(_Strict):
    sample: str
    shards: Positive
    pk_column: str | UnsetType = UNSET


class PartitioningBody(_Strict, Generic[K]):
    kind: Literal["hash", "range"] = "hash"
    shards: Positive | UnsetType = UNSET
    split_points: list[K] | UnsetType = UNSET
    presplit: PresplitBody | UnsetType = UNSET


class TableBody(_Strict, Generic[K]):
    ttl_seconds: Positive | UnsetType | None = UNSET
    max_versions: Annotated[int, Meta(ge=1, le=MAX_MAX_VERSIONS)] | UnsetType = UNSET
    consistency: Literal["strong", "eventual"] | UnsetType | None = UNSET
    partitioning: PartitioningBody[K] | UnsetType = UNSET
    expire_interval_s: Annotated[int, Meta(ge=1, le=MAX_EXPIRE_INTERVAL_S)] | UnsetType | None = (
        UNSET
    )


def given(struct: msgspec.Struct) -> dict[str, object]:
    """The fields a client set (UNSET ones left out), nested structs as dicts."""
    out: dict[str, object] = {}
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if value is UNSET:
            continue
        out[name] = given(value) if isinstance(value, msgspec.Struct) else value
    return out


class BulkLoadBody(_Strict):
    """``POST .../bulkloads``: a Parquet source URL and how to load it (SPEC §2)."""

    source: Annotated[str, Meta(min_length=1)]
    mode: Literal["merge", "replace", "insert_ignore"] = "merge"
    layout: Literal["cells", "wide"] = "cells"
    columns: dict[str, str] | None = None
    ts: Ts | None = None
    id: Annotated[str, Meta(pattern="^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")] | None = None


class TokenBody(_Strict):
    """``POST /v1/tokens``: the new token's scopes and a name to tell it by."""

    scopes: Annotated[list[str], Meta(min_length=1, max_length=1000)]
    name: Annotated[str, Meta(max_length=200)] = ""


class BackupBody(_Strict):
    """``POST /v1/admin/backup``: where to write the backup, a new directory given
    relative to the server's ``--backup-dir`` (or an absolute path inside it)."""

    path: Annotated[str, Meta(min_length=1, max_length=4096)]
