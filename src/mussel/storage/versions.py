"""Visibility rules of SPEC §1, in one place, for every backend.

A backend stores, per cell (table, pk, sk), versions keyed by ts: at most one per
ts, the later applied write replacing an earlier one with the same ts (that is
the equal-timestamp rule: writes to one pk are applied in acknowledgement order).
Each stored version is a put or a tombstone and carries the table ``epoch`` that
was current when it was applied.

Given a cell's stored versions newest first, the *visible* versions are found by
walking them in order and:

1. skipping every version of a hidden epoch (a bulk load still running, or one
   that failed or was cancelled) and every version hidden by a replace floor
   (``ts <= floor.ts_us`` and ``epoch < floor.epoch``), tombstones included: a
   skipped tombstone hides nothing;
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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mussel.model import Floor, TableInfo

__all__ = [
    "ReadFilter",
    "Visibility",
    "removable_versions",
    "single_version_rule",
    "visible_versions",
]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Visibility:
    """What a table shows at one moment: from its options, floors and the clock."""

    max_versions: int = 1
    expired_before_us: int | None = None
    floors: tuple[Floor, ...] = ()
    hidden_epochs: frozenset[int] = frozenset()

    @classmethod
    def of(cls, table: TableInfo, now_us: int) -> Visibility:
        ttl = table.options.ttl_seconds
        return cls(
            max_versions=table.options.max_versions,
            expired_before_us=None if ttl is None else now_us - ttl * 1_000_000,
            floors=table.floors,
            hidden_epochs=table.hidden_epochs,
        )

    @property
    def uses_epochs(self) -> bool:
        """True when a version's epoch matters (floors or hidden epochs): readers that
        skip decoding epochs may do so only when this is False."""
        return bool(self.floors or self.hidden_epochs)

    def floored(self, ts: int, epoch: int) -> bool:
        """True when a replace floor or a hidden epoch hides the version (ts, epoch)."""
        return epoch in self.hidden_epochs or any(
            ts <= f.ts_us and epoch < f.epoch for f in self.floors
        )


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
    epochs = vis.uses_epochs
    expired_before = vis.expired_before_us
    for ts, tombstone, epoch, payload in stored:
        if epochs and vis.floored(ts, epoch):
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
    * every version older than the ``max_versions``-th visible put;
    * a tombstone older than ``tombstones_before_us`` with nothing pending under it,
      and every version under it.

    Under a younger tombstone only floored, hidden and expired versions go: a later
    write with the tombstone's exact ts replaces it (the equal-timestamp rule), and the
    versions it hid would be visible again. Past the grace period, writes at or below a
    removed tombstone's ts are the one documented exception, as with Cassandra's
    gc_grace: they are visible, where the tombstone would have hidden them. Versions of
    pending epochs are never removed and are skipped by the walk, as reads skip them.
    Removing everything this returns does not change the answer of any read, now, or
    after later writes within the grace period (the property tests check exactly that).
    """
    out = [False] * len(stored)
    expired_before = vis.expired_before_us
    kept = 0
    cut: int | None = None  # index of the version from which everything older goes
    shadowed = False  # under a tombstone still in its grace period
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
        if shadowed:
            continue
        if tombstone:
            if (
                tombstones_before_us is not None
                and ts < tombstones_before_us
                and not any(e in pending for _, _, e in stored[i + 1 :])
            ):
                out[i] = True
                cut = i
            else:
                shadowed = True
            continue
        kept += 1
        if kept > vis.max_versions:
            out[i] = True
            cut = i
    return out


def single_version_rule(
    vis: Visibility,
    *,
    pending: frozenset[int] = frozenset(),
    tombstones_before_us: int | None = None,
) -> Callable[[int, bool, int], bool]:
    """``removable_versions`` for a cell with exactly one stored version, as one cheap
    call: ``rule(ts, tombstone, epoch) == removable_versions([(ts, tombstone, epoch)],
    vis, pending=..., tombstones_before_us=...)[0]`` (a property test holds it to that).
    Sweeps meet mostly such cells; this saves the general walk's overhead per cell."""
    expired_before = vis.expired_before_us
    kept_one_goes = vis.max_versions < 1
    floored = vis.floored if vis.uses_epochs else None
    grace = tombstones_before_us

    def rule(ts: int, tombstone: bool, epoch: int) -> bool:
        if pending and epoch in pending:
            return False
        if floored is not None and floored(ts, epoch):
            return True
        if expired_before is not None and ts < expired_before:
            return True
        if tombstone:
            return grace is not None and ts < grace
        return kept_one_goes

    return rule
