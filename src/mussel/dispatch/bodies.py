"""Typed request bodies (SPEC §4). msgspec checks types; the engine checks the rest.

These types also generate the request schemas of ``/openapi.json``.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
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


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class WriteRecord(_Strict, Generic[K]):
    pk: K
    op: Literal["put", "delete"] = "put"
    sk: K | None = None
    value: K | None = None
    ts: int | None = None


class WriteBody(_Strict, Generic[K]):
    records: list[WriteRecord[K]]
    ack: Literal["durable", "applied"] = "durable"


class GetKey(_Strict, Generic[K]):
    pk: K
    sk: K | None = None


class GetBody(_Strict, Generic[K]):
    keys: list[GetKey[K]]
    consistency: Literal["strong", "eventual"] | None = None
    versions: int = 1


class QuotasBody(_Strict):
    storage_bytes: int | UnsetType | None = UNSET
    read_qps: int | UnsetType | None = UNSET
    write_qps: int | UnsetType | None = UNSET
    tables: int | UnsetType | None = UNSET


class NamespaceBody(_Strict):
    consistency: Literal["strong", "eventual"] | UnsetType = UNSET
    quotas: QuotasBody | UnsetType = UNSET


class PresplitBody(_Strict):
    sample: str
    shards: int


class PartitioningBody(_Strict, Generic[K]):
    kind: Literal["hash", "range"] = "hash"
    shards: int | UnsetType = UNSET
    split_points: list[K] | UnsetType = UNSET
    presplit: PresplitBody | UnsetType = UNSET


class TableBody(_Strict, Generic[K]):
    ttl_seconds: int | UnsetType | None = UNSET
    max_versions: int | UnsetType = UNSET
    consistency: Literal["strong", "eventual"] | UnsetType | None = UNSET
    partitioning: PartitioningBody[K] | UnsetType = UNSET


def given(struct: msgspec.Struct) -> dict[str, object]:
    """The fields a client set (UNSET ones left out), nested structs as dicts."""
    out: dict[str, object] = {}
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if value is UNSET:
            continue
        out[name] = given(value) if isinstance(value, msgspec.Struct) else value
    return out
