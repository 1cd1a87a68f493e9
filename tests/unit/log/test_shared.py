"""SharedState: what the owner publishes, followers read it, in another mapping."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mussel.errors import UnavailableError
from mussel.log import shared
from mussel.log.shared import SharedState


def test_a_second_mapping_reads_what_the_owner_published(tmp_path: Path) -> None:
    owner = SharedState.create(tmp_path / "state", partitions=4, slots=2)
    follower = SharedState.attach(tmp_path / "state")
    assert (follower.partitions, follower.slots) == (4, 2)
    assert follower.ends() == (0, 0, 0, 0)
    owner.publish_ends([5, 0, 7, 1])
    owner.publish_applied({2: 7})
    owner.publish_applied({0: 3})
    owner.publish_catalog(1)
    owner.publish_catalog(2)
    assert follower.ends() == (5, 0, 7, 1)
    assert follower.end(2) == 7
    assert follower.applied() == (3, 0, 7, 0)
    assert follower.catalog_version() == 2
    assert follower.owner_pid > 0


def test_create_replaces_an_old_state_file(tmp_path: Path) -> None:
    old = SharedState.create(tmp_path / "state", 2, 1)
    old.publish_ends([9, 9])
    new = SharedState.create(tmp_path / "state", 3, 1)
    assert SharedState.attach(tmp_path / "state").ends() == (0, 0, 0)
    assert new.partitions == 3


def test_attach_refuses_what_is_not_a_state_file(tmp_path: Path) -> None:
    (tmp_path / "state").write_bytes(b"x" * 64)
    with pytest.raises(UnavailableError, match="not a Mussel state file"):
        SharedState.attach(tmp_path / "state")
    with pytest.raises(UnavailableError, match="cannot map"):
        SharedState.attach(tmp_path / "missing")


def test_follower_slots_liveness_and_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = SharedState.create(tmp_path / "state", 2, 2)
    follower = SharedState.attach(tmp_path / "state")
    assert owner.followers_reached({0: 5})  # no follower: nothing to wait for
    follower.publish_slot(0, [4, 9])
    assert not owner.followers_reached({0: 5})
    assert owner.followers_reached({0: 4, 1: 9})
    follower.publish_slot(0, [5, 9])
    assert owner.followers_reached({0: 5})
    follower.publish_slot(1, [0, 0])
    assert not owner.followers_reached({0: 5})
    follower.clear_slot(1)
    assert owner.followers_reached({0: 5})
    assert [s.positions for s in owner.live_followers()] == [(5, 9)]
    # a follower that stopped beating is taken for dead
    monkeypatch.setattr(shared, "LIVE_AFTER_S", -1.0)
    assert owner.live_followers() == []


def test_readers_never_see_a_half_written_vector(tmp_path: Path) -> None:
    owner = SharedState.create(tmp_path / "state", 64, 1)
    reader = SharedState.attach(tmp_path / "state")
    stop = threading.Event()
    torn: list[tuple[int, ...]] = []

    def read() -> None:
        while not stop.is_set():
            ends = reader.ends()
            if len(set(ends)) != 1:
                torn.append(ends)

    t = threading.Thread(target=read)
    t.start()
    for i in range(20_000):
        owner.publish_ends([i] * 64)
    stop.set()
    t.join()
    assert not torn
