"""Visibility rules of SPEC §1, in one place, for every backend.

A backend stores, per cell (table, pk, sk), versions keyed by ts: at most one per
ts, the later applied write replacing an earlier one with the same ts (that is
the equal-timestamp rule: writes to one pk are applied in acknowledgement order).
Each stored version is a put or a tombstone and carries the table ``epoch`` that
was current when it was applied.

Given a cell's stored versions newest first, the *visible* versions are found by
walking them in order and:

1. skipping every version hidden by a replace floor (``ts <= floor.ts_us`` and
   ``epoch < floor.epoch``), tombstones included: a floored tombstone hides nothing;
2. stopping at the first tombstone (it hides every version with ts <= its ts);
3. stopping at the first expired version (``ts < now - ttl``; older ones are
   expired too);
4. keeping puts until ``max_versions`` of them are kept.

The visible set of a cell does not depend on the read: a read then filters it by
its time range (``min_ts <= ts < max_ts``) and keeps the newest ``versions`` of
what remains. So physically removing invisible versions (the expiration
service) never changes the answer of any read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mussel.model import Floor, TableInfo

__all__ = ["ReadFilter", "Visibility", "removable_versions", "visible_versions"]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Visibility:
    """What a table shows at one moment: from its options, floors and the clock."""

    max_versions: int = 1
    expired_before_us: int | None = None
    floors: tuple[Floor, ...] = ()

    @classmethod
    def of(cls, table: TableInfo, now_us: int) -> Visibility:
        ttl = table.options.ttl_seconds
        return cls(
            max_versions=table.options.max_versions,
            expired_before_us=None if ttl is None else now_us - ttl * 1_000_000,
            floors=table.floors,
        )

    def floored(self, ts: int, epoch: int) -> bool:
        """True when a replace floor hides the version (ts, epoch)."""
        return any(ts <= f.ts_us and epoch < f.epoch for f in self.floors)


@dataclass(frozen=True, slots=True)
class ReadFilter:
    """A read's view of the visible versions: a time range and a version count."""

    min_ts: int | None = None
    max_ts: int | None = None
    versions: int = 1

    @property
    def unfiltered(self) -> bool:
        return self.min_ts is None and self.max_ts is None

    def admits(self, ts: int) -> bool:
        return (self.min_ts is None or ts >= self.min_ts) and (
            self.max_ts is None or ts < self.max_ts
        )


def visible_versions(
    stored: Iterable[tuple[int, bool, int, V]], vis: Visibility, rf: ReadFilter
) -> list[tuple[int, V]]:
    """The versions a read returns for one cell, newest first.

    ``stored`` yields (ts, is_tombstone, epoch, payload) newest first, one per ts.
    The result is the visible versions (module docstring) that ``rf`` admits, at most
    ``rf.versions`` of them, as (ts, payload).
    """
    out: list[tuple[int, V]] = []
    kept = 0
    floors = vis.floors
    expired_before = vis.expired_before_us
    for ts, tombstone, epoch, payload in stored:
        if floors and vis.floored(ts, epoch):
            continue
        if tombstone or (expired_before is not None and ts < expired_before):
            break
        kept += 1
        if rf.admits(ts):
            out.append((ts, payload))
            if len(out) >= rf.versions:
                break
        if kept >= vis.max_versions:
            break
    return out


K = TypeVar("K")


def page_versions(
    groups: Iterable[tuple[K, Iterable[tuple[int, bool, int, V]]]],
    vis: Visibility,
    rf: ReadFilter,
    limit: int,
    after: tuple[K, int] | None,
) -> tuple[list[tuple[K, int, V]], bool]:
    """One page of a multi-cell read.

    ``groups`` yields (cell key, stored versions newest first) in key order, starting
    at the cell of ``after`` or later. ``after`` = (cell key, ts) of the last version of
    the previous page: versions of that cell with ts >= it are skipped. Returns up to
    ``limit`` (key, ts, payload) and whether at least one more visible version follows.
    """
    out: list[tuple[K, int, V]] = []
    for key, stored in groups:
        versions = visible_versions(stored, vis, rf)
        if after is not None and key == after[0]:
            versions = [v for v in versions if v[0] < after[1]]
        for ts, payload in versions:
            if len(out) >= limit:
                return out, True
            out.append((key, ts, payload))
    return out, False


def removable_versions(
    stored: Sequence[tuple[int, bool, int]],
    vis: Visibility,
    *,
    pending: frozenset[int] = frozenset(),
    tombstones_before_us: int | None = None,
) -> list[bool]:
    """Which stored versions of one cell the expiration service may delete.

    ``stored`` is (ts, is_tombstone, epoch) newest first, as for ``visible_versions``.
    A version is removable when no read can ever see it again, whatever is written
    later (without an option change):

    * a version under a replace floor, or of an epoch ``vis`` hides, unless the epoch
      is ``pending`` (a bulk load still running: it may yet commit);
    * an expired version, and every version older than it;
    * every version older than a tombstone (the tombstone hides them);
    * every version older than the ``max_versions``-th visible put.

    A tombstone that cuts the walk is removed only if it is older than
    ``tombstones_before_us`` (a grace period: a late write older than a removed
    tombstone would become visible, as in Cassandra's gc_grace) and no pending version
    lies under it. Versions of pending epochs are never removed and are skipped by
    the walk, as reads skip them. Removing everything this returns does not change
    the answer of any read (the property tests check exactly that).
    """
    out = [False] * len(stored)
    expired_before = vis.expired_before_us
    kept = 0
    cut: int | None = None  # index of the version from which everything older goes
    for i, (ts, tombstone, epoch) in enumerate(stored):
        if epoch in pending:
            continue
        if cut is not None:
            out[i] = True
            continue
        if vis.floored(ts, epoch):
            out[i] = True
            continue
        if expired_before is not None and ts < expired_before:
            out[i] = True
            cut = i
            continue
        if tombstone:
            cut = i
            below = stored[i + 1 :]
            out[i] = (
                tombstones_before_us is not None
                and ts < tombstones_before_us
                and not any(e in pending for _, _, e in below)
            )
            continue
        kept += 1
        if kept > vis.max_versions:
            out[i] = True
            cut = i
    return out
