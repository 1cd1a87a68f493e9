from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mussel.model import Floor
from mussel.storage.versions import (
    ReadFilter,
    Visibility,
    removable_versions,
    single_version_rule,
    visible_versions,
)
from tests.unit.storage.model_history import ModelTable, W

ALL = ReadFilter(versions=1000)


def stored(*versions: tuple[int, bool, int, bytes]) -> list[tuple[int, bool, int, bytes]]:
    return sorted(versions, key=lambda v: -v[0])


def test_newest_version_first_and_max_versions_caps() -> None:
    s = stored((1, False, 0, b"a"), (3, False, 0, b"c"), (2, False, 0, b"b"))
    assert visible_versions(s, Visibility(max_versions=2), ALL) == [(3, b"c"), (2, b"b")]


def test_tombstone_hides_versions_at_or_below_its_ts() -> None:
    s = stored((1, False, 0, b"a"), (2, True, 0, b""), (3, False, 0, b"c"))
    assert visible_versions(s, Visibility(max_versions=5), ALL) == [(3, b"c")]


def test_expired_versions_are_invisible() -> None:
    s = stored((100, False, 0, b"old"), (200, False, 0, b"new"))
    vis = Visibility(max_versions=5, expired_before_us=150)
    assert visible_versions(s, vis, ALL) == [(200, b"new")]


def test_replace_floor_hides_older_epoch_versions_up_to_its_ts() -> None:
    s = stored((10, False, 0, b"old"), (30, False, 0, b"newer-than-T"), (5, False, 1, b"loaded"))
    vis = Visibility(max_versions=5, floors=(Floor(20, 1),))
    assert visible_versions(s, vis, ALL) == [(30, b"newer-than-T"), (5, b"loaded")]


def test_floored_tombstone_hides_nothing() -> None:
    s = stored((10, True, 0, b""), (5, False, 1, b"loaded"))
    vis = Visibility(max_versions=5, floors=(Floor(20, 1),))
    assert visible_versions(s, vis, ALL) == [(5, b"loaded")]


def test_versions_of_hidden_epochs_are_skipped_tombstones_included() -> None:
    s = stored((30, False, 3, b"bulk"), (20, True, 3, b""), (10, False, 0, b"old"))
    vis = Visibility(max_versions=5, hidden_epochs=frozenset({3}))
    assert vis.uses_epochs
    assert visible_versions(s, vis, ALL) == [(10, b"old")]
    assert visible_versions(s, Visibility(max_versions=5), ALL) == [(30, b"bulk")]


def test_hidden_versions_do_not_count_towards_max_versions() -> None:
    s = stored((3, False, 2, b"c"), (2, False, 0, b"b"), (1, False, 0, b"a"))
    vis = Visibility(max_versions=2, hidden_epochs=frozenset({2}))
    assert visible_versions(s, vis, ALL) == [(2, b"b"), (1, b"a")]


def test_time_range_filters_the_visible_set_not_the_stored_one() -> None:
    s = stored((1, False, 0, b"a"), (2, False, 0, b"b"), (3, False, 0, b"c"))
    vis = Visibility(max_versions=2)
    # version 1 is beyond max_versions, so a time range around it finds nothing
    assert visible_versions(s, vis, ReadFilter(min_ts=1, max_ts=2, versions=5)) == []
    assert visible_versions(s, vis, ReadFilter(min_ts=2, max_ts=3, versions=5)) == [(2, b"b")]


history = st.lists(
    st.tuples(
        st.sampled_from([b"", b"a", b"b"]),  # sk
        st.integers(0, 12),  # ts
        st.booleans(),  # delete
        st.integers(0, 2),  # epoch
    ),
    max_size=25,
)


@settings(max_examples=300)
@given(
    history,
    st.integers(1, 4),
    st.one_of(st.none(), st.integers(1, 10)),
    st.integers(0, 20),
    st.lists(st.tuples(st.integers(0, 12), st.integers(1, 2)), max_size=2),
    st.sets(st.integers(0, 2), max_size=2),
)
def test_visibility_matches_the_naive_model(
    ops: list, max_versions: int, ttl_s: int | None, now_s: int, floors: list, hidden: set
) -> None:
    model = ModelTable(floors=[(t * 1_000_000, e) for t, e in floors], hidden_epochs=hidden)
    per_cell: dict[bytes, dict[int, tuple[int, bool, int, bytes]]] = {}
    for i, (sk, ts, delete, epoch) in enumerate(ops):
        value = b"" if delete else f"v{i}".encode()
        ts_us = ts * 1_000_000
        model.writes.append(W(b"pk", sk, ts_us, delete, value, epoch))
        per_cell.setdefault(sk, {})[ts_us] = (ts_us, delete, epoch, value)
    now_us = now_s * 1_000_000
    vis = Visibility(
        max_versions=max_versions,
        expired_before_us=None if ttl_s is None else now_us - ttl_s * 1_000_000,
        floors=tuple(Floor(t * 1_000_000, e) for t, e in floors),
        hidden_epochs=frozenset(hidden),
    )
    for sk, by_ts in per_cell.items():
        got = visible_versions(stored(*by_ts.values()), vis, ALL)
        assert got == model.visible(b"pk", sk, now_us, ttl_s, max_versions)


# -- what the expiration service may remove ------------------------------------

cell_history = st.lists(
    st.tuples(st.integers(0, 12), st.booleans(), st.integers(0, 2)),  # ts, delete, epoch
    max_size=12,
)


def _cell(ops: list[tuple[int, bool, int]]) -> dict[int, tuple[int, bool, int, bytes]]:
    """Stored versions by ts: the later write of a ts replaces the earlier one."""
    by_ts: dict[int, tuple[int, bool, int, bytes]] = {}
    for i, (ts, delete, epoch) in enumerate(ops):
        by_ts[ts] = (ts, delete, epoch, b"" if delete else f"v{i}".encode())
    return by_ts


def _vis(max_versions: int, ttl: int | None, now: int, floors: list) -> Visibility:
    return Visibility(
        max_versions=max_versions,
        expired_before_us=None if ttl is None else now - ttl,
        floors=tuple(Floor(t, e) for t, e in floors),
    )


def _swept(
    by_ts: dict[int, tuple[int, bool, int, bytes]], vis: Visibility, grace: int | None
) -> dict[int, tuple[int, bool, int, bytes]]:
    versions = stored(*by_ts.values())
    gone = removable_versions(
        [(ts, d, e) for ts, d, e, _ in versions], vis, tombstones_before_us=grace
    )
    return {v[0]: v for v, g in zip(versions, gone, strict=True) if not g}


@settings(max_examples=500)
@given(
    cell_history,
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 8)),
    st.integers(0, 20),
    st.lists(st.tuples(st.integers(0, 12), st.integers(1, 2)), max_size=2),
    st.one_of(st.none(), st.integers(0, 20)),
)
def test_removing_what_is_removable_changes_no_read(
    ops: list, max_versions: int, ttl: int | None, now: int, floors: list, grace: int | None
) -> None:
    by_ts = _cell(ops)
    vis = _vis(max_versions, ttl, now, floors)
    swept = _swept(by_ts, vis, grace)
    assert visible_versions(stored(*swept.values()), vis, ALL) == visible_versions(
        stored(*by_ts.values()), vis, ALL
    )


@settings(max_examples=500)
@given(
    cell_history,
    cell_history,
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 8)),
    st.integers(0, 10),
    st.integers(0, 10),
    st.lists(st.tuples(st.integers(0, 12), st.integers(1, 2)), max_size=2),
    st.lists(st.tuples(st.integers(0, 12), st.integers(3, 4)), max_size=1),
)
def test_what_was_removed_stays_invisible_whatever_comes_later(
    before: list,
    after: list,
    max_versions: int,
    ttl: int | None,
    now: int,
    later: int,
    floors: list,
    new_floors: list,
) -> None:
    """Sweep, then more writes (any ts, late ones and equal-ts replacements too), time
    passing and new replace floors: reads of the swept cell equal those of the cell
    never swept. (No tombstone grace here: writes older than a removed tombstone are
    the one documented exception.)"""
    by_ts = _cell(before)
    swept = _swept(by_ts, _vis(max_versions, ttl, now, floors), None)
    # Later streaming writes carry the table's epoch then: never older than what is
    # stored (epochs only grow; a replace makes its own the streaming epoch).
    newest = max((v[2] for v in by_ts.values()), default=0)
    for ts, delete, given_epoch in after:
        epoch = max(given_epoch, newest)
        version = (ts, delete, epoch, b"" if delete else f"late{ts}".encode())
        by_ts[ts] = version
        swept[ts] = version
    vis = _vis(max_versions, ttl, now + later, floors + new_floors)
    assert visible_versions(stored(*swept.values()), vis, ALL) == visible_versions(
        stored(*by_ts.values()), vis, ALL
    )


def test_removable_examples() -> None:
    vis = Visibility(max_versions=2, expired_before_us=100)
    s = [(500, False, 0), (400, False, 0), (300, False, 0), (50, False, 0)]
    assert removable_versions(s, vis) == [False, False, True, True]
    s = [(500, False, 0), (400, True, 0), (300, False, 0)]
    # in its grace period a tombstone and what it hides stay (a write at ts 400 could
    # replace it and show version 300 again); past it, both go
    assert removable_versions(s, vis) == [False, False, False]
    assert removable_versions(s, vis, tombstones_before_us=450) == [False, True, True]
    assert removable_versions(s, vis, tombstones_before_us=400) == [False, False, False]
    # a pending epoch's version is never removed, and keeps the tombstone above it
    s = [(500, True, 0), (300, False, 7)]
    assert removable_versions(s, vis, pending=frozenset({7}), tombstones_before_us=999) == [
        False,
        False,
    ]
    # expired tombstones go with everything under them
    assert removable_versions([(90, True, 0), (80, False, 0)], vis) == [True, True]
    # floored versions go
    floored = Visibility(max_versions=5, floors=(Floor(20, 1),))
    assert removable_versions([(30, False, 0), (10, False, 0), (5, False, 1)], floored) == [
        False,
        True,
        False,
    ]


@settings(max_examples=1000)
@given(
    st.tuples(st.integers(0, 12), st.booleans(), st.integers(0, 4)),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 8)),
    st.integers(0, 20),
    st.lists(st.tuples(st.integers(0, 12), st.integers(1, 4)), max_size=2),
    st.frozensets(st.integers(0, 4), max_size=2),
    st.frozensets(st.integers(0, 4), max_size=2),
    st.one_of(st.none(), st.integers(0, 20)),
)
def test_the_single_version_rule_is_removable_versions_of_one_version(
    version: tuple[int, bool, int],
    max_versions: int,
    ttl: int | None,
    now: int,
    floors: list,
    hidden: frozenset[int],
    pending: frozenset[int],
    grace: int | None,
) -> None:
    base = _vis(max_versions, ttl, now, floors)
    vis = Visibility(base.max_versions, base.expired_before_us, base.floors, hidden | pending)
    rule = single_version_rule(vis, pending=pending, tombstones_before_us=grace)
    expected = removable_versions([version], vis, pending=pending, tombstones_before_us=grace)
    assert rule(*version) == expected[0]
