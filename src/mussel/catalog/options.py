"""Validation of table and namespace options as users send them (SPEC §1, §4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from mussel.errors import InvalidRequestError
from mussel.model import Quotas, TableOptions, check_consistency, parse_partitioning

__all__ = ["UNSET", "parse_quotas", "parse_table_options"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

_TABLE_FIELDS = {"ttl_seconds", "max_versions", "consistency", "partitioning", "expire_interval_s"}
_QUOTA_FIELDS = {"storage_bytes", "read_qps", "write_qps", "tables"}


def parse_table_options(raw: Mapping[str, Any], current: TableOptions | None) -> TableOptions:
    """Options from a user's mapping; fields it omits keep ``current`` (or the defaults).

    Unknown fields, wrong types and out-of-range values are ``InvalidRequestError``.
    """
    unknown = set(raw) - _TABLE_FIELDS
    if unknown:
        raise InvalidRequestError(f"unknown table option(s): {', '.join(sorted(unknown))}")
    base = current or TableOptions()
    consistency = raw.get("consistency", base.consistency)
    if consistency is not None:
        consistency = check_consistency(consistency)
    partitioning = (
        parse_partitioning(raw["partitioning"]) if "partitioning" in raw else base.partitioning
    )
    return TableOptions(
        ttl_seconds=raw.get("ttl_seconds", base.ttl_seconds),
        max_versions=raw.get("max_versions", base.max_versions),
        consistency=consistency,
        partitioning=partitioning,
        expire_interval_s=raw.get("expire_interval_s", base.expire_interval_s),
    )


def parse_quotas(raw: object, current: Quotas | None) -> Quotas:
    """Quotas from a user's mapping; omitted fields keep ``current``; null = unlimited."""
    if not isinstance(raw, Mapping):
        raise InvalidRequestError("quotas must be an object")
    unknown = set(raw) - _QUOTA_FIELDS
    if unknown:
        raise InvalidRequestError(f"unknown quota(s): {', '.join(sorted(unknown))}")
    for key, value in raw.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise InvalidRequestError(f"quotas.{key} must be a non-negative integer or null")
    base = msgspec.structs.asdict(current or Quotas())
    base.update(raw)
    return Quotas(**base)
