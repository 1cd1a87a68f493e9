"""The data model of SPEC §1: names, table options, cells, mutations, pages.

Pure values, no I/O. ``Mutation`` is what the write log carries and what a
backend applies; ``Cell``/``ScanCell`` are what reads return. Keys and values
are ``bytes`` everywhere below the API surface.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from mussel.errors import InvalidRequestError
from mussel.limits import MAX_EXPIRE_INTERVAL_S, MAX_MAX_VERSIONS

__all__ = [
    "CONSISTENCIES",
    "OP_DELETE",
    "OP_PUT",
    "Cell",
    "Delete",
    "Put",
    "Consistency",
    "Floor",
    "NamespaceInfo",
    "Partitioning",
    "Quotas",
    "RowPage",
    "ScanCell",
    "ScanPage",
    "TableInfo",
    "TableOptions",
    "Mutation",
    "WellFormedMutations",
    "check_consistency",
    "check_name",
    "parse_partitioning",
]

Consistency = Literal["strong", "eventual"]
CONSISTENCIES: tuple[str, ...] = ("strong", "eventual")

OP_PUT = 0
OP_DELETE = 1

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it matches SPEC §1 ``[a-z0-9][a-z0-9_-]{0,62}``, else raise."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise InvalidRequestError(
            f"invalid {what} {name!r}: use 1 to 63 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_consistency(value: object) -> Consistency:
    if value == "strong":
        return "strong"
    if value == "eventual":
        return "eventual"
    raise InvalidRequestError(f"consistency must be 'strong' or 'eventual', not {value!r}")


class Mutation(msgspec.Struct, array_like=True, gc=False, frozen=True):
    """One put or delete of a cell version, as logged and applied.

    ``op`` is ``OP_PUT`` or ``OP_DELETE`` (a tombstone at ``ts``; ``value`` empty).
    ``ts`` is always resolved (microseconds since the epoch) before logging.
    """

    table_id: int
    op: int
    pk: bytes
    sk: bytes
    ts: int
    value: bytes = b""


class WellFormedMutations(list[Mutation]):
    """A list of ``Mutation`` records known to be well formed: exact ``Mutation``
    objects whose ``table_id``, ``op`` and ``ts`` are exact ints (``ts`` within 64 bits)
    and whose ``pk``, ``sk`` and ``value`` are exact bytes (``log.format.well_formed``).

    Only the engine's validation (``engine.writes.to_mutations``) builds one, after
    checking every record; a log's append then skips checking the records again (a third
    of the append's per-record work). Do not add to one: a plain list is checked.
    """

    __slots__ = ()


class Cell(msgspec.Struct, frozen=True, gc=False):
    """A visible version of a cell within a row."""

    sk: bytes
    ts: int
    value: bytes


class ScanCell(msgspec.Struct, frozen=True, gc=False):
    """A visible version of a cell in a table scan."""

    pk: bytes
    sk: bytes
    ts: int
    value: bytes


class RowPage(msgspec.Struct, frozen=True):
    """A page of a row read. ``cursor`` is None on the last page."""

    pk: bytes
    cells: list[Cell]
    cursor: str | None = None


class ScanPage(msgspec.Struct, frozen=True):
    cells: list[ScanCell]
    cursor: str | None = None


class Floor(msgspec.Struct, frozen=True, array_like=True):
    """A replace floor: hides versions with ``ts <= ts_us`` written in an epoch < ``epoch``.

    Set by a committed ``replace`` bulk load (its timestamp T and the epoch its
    loaded cells carry), so the table's content becomes the loaded cells plus every
    version newer than T, atomically.
    """

    ts_us: int
    epoch: int


class Partitioning(msgspec.Struct, frozen=True, omit_defaults=True):
    """``{"kind":"hash","shards":N}`` or ``{"kind":"range","split_points":[...]}``."""

    kind: Literal["hash", "range"] = "hash"
    shards: int | None = 16
    split_points: list[bytes] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "hash":
            return {"kind": "hash", "shards": self.shards}
        return {
            "kind": "range",
            "split_points": [p.decode("utf-8", "surrogateescape") for p in self.split_points or []],
        }


def parse_partitioning(raw: object) -> Partitioning:
    """Validate a SPEC §1 partitioning option (a dict, or None for the default)."""
    if raw is None:
        return Partitioning()
    if not isinstance(raw, dict):
        raise InvalidRequestError("partitioning must be an object with a 'kind'")
    kind = raw.get("kind", "hash")
    unknown = set(raw) - {"kind", "shards", "split_points", "presplit"}
    if unknown:
        raise InvalidRequestError(f"unknown partitioning field(s): {', '.join(sorted(unknown))}")
    if kind == "hash":
        shards = raw.get("shards", 16)
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096:
            raise InvalidRequestError("partitioning.shards must be an integer from 1 to 4096")
        if "split_points" in raw or "presplit" in raw:
            raise InvalidRequestError("hash partitioning takes only 'shards'")
        return Partitioning(kind="hash", shards=shards)
    if kind == "range":
        if "presplit" in raw:
            raise InvalidRequestError(
                "presplit must be resolved to split_points by sampling its source first "
                "(mussel.bulkload.presplit.resolve_presplit; the HTTP API does it)"
            )
        points = raw.get("split_points", [])
        if not isinstance(points, list) or not all(isinstance(p, str | bytes) for p in points):
            raise InvalidRequestError("partitioning.split_points must be a list of keys")
        encoded = [p.encode() if isinstance(p, str) else p for p in points]
        if any(not p for p in encoded) or encoded != sorted(set(encoded)):
            raise InvalidRequestError(
                "partitioning.split_points must be non-empty keys, strictly increasing"
            )
        return Partitioning(kind="range", shards=None, split_points=encoded)
    raise InvalidRequestError(f"partitioning.kind must be 'hash' or 'range', not {kind!r}")


class TableOptions(msgspec.Struct, frozen=True):
    """SPEC §1 table options. ``consistency=None`` means: the namespace's default."""

    ttl_seconds: int | None = None
    max_versions: int = 1
    consistency: Consistency | None = None
    partitioning: Partitioning = msgspec.field(default_factory=Partitioning)
    expire_interval_s: int | None = None
    """Seconds from the end of one scheduled expiration run of the table to the next;
    None: the server's ``[expire] interval_s``."""

    def __post_init__(self) -> None:
        ttl = self.ttl_seconds
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise InvalidRequestError("ttl_seconds must be a positive integer or null")
        every = self.expire_interval_s
        if every is not None and (
            isinstance(every, bool)
            or not isinstance(every, int)
            or not 1 <= every <= MAX_EXPIRE_INTERVAL_S
        ):
            raise InvalidRequestError(
                f"expire_interval_s must be an integer from 1 to {MAX_EXPIRE_INTERVAL_S}"
                " (seconds) or null"
            )
        mv = self.max_versions
        if isinstance(mv, bool) or not isinstance(mv, int) or not 1 <= mv <= MAX_MAX_VERSIONS:
            raise InvalidRequestError(
                f"max_versions must be an integer from 1 to {MAX_MAX_VERSIONS}"
            )
        if self.consistency is not None:
            check_consistency(self.consistency)


class Quotas(msgspec.Struct, frozen=True, omit_defaults=True):
    """Per-namespace quotas; None means unlimited."""

    storage_bytes: int | None = None
    read_qps: int | None = None
    write_qps: int | None = None
    tables: int | None = None


class NamespaceInfo(msgspec.Struct, frozen=True):
    name: str
    consistency: Consistency = "strong"
    quotas: Quotas = msgspec.field(default_factory=Quotas)
    created_us: int = 0


class TableInfo(msgspec.Struct, frozen=True):
    """A table as the catalog stores it.

    ``id`` is unique for the life of the store and never reused, so log records
    and data of a dropped table can never be mistaken for a newer table's.
    ``epoch`` is stamped on every version the replayer applies to the table (the
    *streaming* epoch). Bulk loads stamp their cells with an epoch reserved from
    ``epoch_seq`` (a counter that only grows, so an epoch is never reused, even
    after a crash): while the job runs its epoch is in ``pending_epochs``, after a
    failure or cancel in ``aborted_epochs``; versions of either are invisible.
    Committing a job removes its epoch from ``pending_epochs``; a committed replace
    also adds a ``Floor`` and makes the job's epoch the streaming epoch.
    """

    namespace: str
    name: str
    id: int
    options: TableOptions
    epoch: int = 0
    floors: tuple[Floor, ...] = ()
    created_us: int = 0
    epoch_seq: int = 0
    pending_epochs: tuple[int, ...] = ()
    aborted_epochs: tuple[int, ...] = ()

    @property
    def hidden_epochs(self) -> frozenset[int]:
        """Epochs whose versions no read may see: pending and aborted bulk loads."""
        return frozenset(self.pending_epochs) | frozenset(self.aborted_epochs)

    @property
    def plain(self) -> bool:
        """True when only TTL and tombstones decide visibility (the point-read fast path)."""
        return not (self.floors or self.pending_epochs or self.aborted_epochs)

    @property
    def qualified(self) -> str:
        return f"{self.namespace}/{self.name}"


class Put(msgspec.Struct, frozen=True, gc=False):
    """A put for the embedded API: str arguments are encoded as UTF-8."""

    pk: bytes | str
    sk: bytes | str = b""
    value: bytes | str = b""
    ts: int | None = None


class Delete(msgspec.Struct, frozen=True, gc=False):
    """A delete (a tombstone at ``ts``, default: the server's time)."""

    pk: bytes | str
    sk: bytes | str = b""
    ts: int | None = None
