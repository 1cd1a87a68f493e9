"""A follower view (``Store.open_follower``) of a store another ``Store`` owns.

The owner and the follower run in one process here; ``mussel serve`` puts them in
different processes, which changes nothing they share (files and shared memory).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mussel.engine import Store, StoreConfig
from mussel.errors import TableNotFoundError, UnavailableError
from mussel.log.shared import SharedState
from mussel.model import Put
from mussel.storage.rocksdb import RocksConfig

CFG = StoreConfig(partitions=4, rocks=RocksConfig(wal=True), follower_interval_s=0.002)


@dataclass
class Pair:
    owner: Store
    follower: Store


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    owner = Store.open(tmp_path, CFG)
    state = SharedState.create(tmp_path / "run" / "state", CFG.partitions, 1)
    owner.publish_to(state)
    owner.put_namespace("ns")
    owner.put_table("ns", "t", {"max_versions": 3})
    follower = Store.open_follower(tmp_path, SharedState.attach(state.path), 0, CFG)
    follower.replayer.start()
    yield Pair(owner, follower)
    follower.close()
    owner.close()


def test_strong_reads_on_the_follower_see_every_acknowledged_write(pair: Pair) -> None:
    t = pair.owner.table("ns", "t")
    for i in range(50):
        t.write([Put(f"k{i}", "s", f"v{i}")])
        cells = pair.follower.get("ns", "t", f"k{i}", "s", consistency="strong")
        assert [c.value for c in cells] == [f"v{i}".encode()]
        row = pair.follower.read_row("ns", "t", f"k{i}", consistency="strong")
        assert [c.value for c in row.cells] == [f"v{i}".encode()]
    page = pair.follower.scan("ns", "t", consistency="strong", limit=100)
    assert len(page.cells) == 50


def test_eventual_reads_catch_up_and_report_staleness(pair: Pair) -> None:
    t = pair.owner.table("ns", "t")
    t.write([Put("a", "s", "1")])
    deadline = time.monotonic() + 5
    while not pair.follower.get("ns", "t", "a", "s", consistency="eventual"):
        assert time.monotonic() < deadline, "the follower never caught up"
        time.sleep(0.002)
    assert pair.follower.staleness_ms("ns", "t", b"a") >= 0.0
    while pair.follower.staleness_ms() != 0.0:
        assert time.monotonic() < deadline
        time.sleep(0.002)


def test_ack_applied_means_readable_on_the_follower(pair: Pair) -> None:
    t = pair.owner.table("ns", "t")
    for i in range(20):
        t.write([Put("a", "s", str(i))], ack="applied")
        cells = pair.follower.get("ns", "t", "a", "s", consistency="eventual")
        assert [c.value for c in cells] == [str(i).encode()]


def test_what_the_owner_flushed_before_the_view_read_it_is_never_shadowed(pair: Pair) -> None:
    """(The writes after the first catch-up are ``ack=durable``: the stopped view
    publishes its slot at each catch-up, and ``ack=applied`` would wait for it.)

    RocksDB's secondary kept values replayed from a WAL in its memtable after the
    primary flushed newer ones (facebook/rocksdb#15051): reads, the applied positions
    and the catalog stayed stale until the next write reached the view. Seen over HTTP
    as a table dropped and created again answering 404, and ``ack=applied`` writes
    hanging; the view now notices and opens a fresh secondary."""
    follower = pair.follower.follower
    assert follower is not None
    follower.stop()  # no background catch-up from here on
    t = pair.owner.table("ns", "t")
    pair.owner.put_table("ns", "t2", {})
    t.write([Put("a", "s", "old")], ack="applied")
    follower.catch_up()
    assert pair.follower.get("ns", "t", "a", "s", consistency="eventual")[0].value == b"old"
    first_id = pair.follower.table_info("ns", "t2").id
    # all of this in the WAL the view has begun to read, then flushed and compacted
    pair.owner.drop_table("ns", "t2")
    pair.owner.put_table("ns", "t2", {})
    t.write([Put("a", "s", "new")])
    assert pair.owner.get("ns", "t", "a", "s", consistency="strong")[0].value == b"new"
    pair.owner.backend.sync()
    pair.owner.backend.db.compact_range(None, None)  # type: ignore[attr-defined]
    follower.catch_up()
    assert pair.follower.get("ns", "t", "a", "s", consistency="eventual")[0].value == b"new"
    assert pair.follower.table_info("ns", "t2").id == pair.owner.table_info("ns", "t2").id
    assert pair.follower.table_info("ns", "t2").id != first_id
    applied = pair.owner.replayer.watermark.applied()
    assert pair.follower.backend.applied_positions() == {p: applied[p] for p in applied}
    # and it keeps following from the fresh secondary
    t.write([Put("a", "s", "newer")])
    assert pair.owner.get("ns", "t", "a", "s", consistency="strong")[0].value == b"newer"
    follower.catch_up()
    assert pair.follower.get("ns", "t", "a", "s", consistency="strong")[0].value == b"newer"


def test_catalog_changes_reach_the_follower(pair: Pair) -> None:
    follower = pair.follower.follower
    assert follower is not None
    pair.owner.put_table("ns", "t2", {"ttl_seconds": 60})
    follower.ensure_catalog()
    assert pair.follower.table_info("ns", "t2").options.ttl_seconds == 60
    pair.owner.put_table("ns", "t2", {"ttl_seconds": 120})
    follower.ensure_catalog()
    assert pair.follower.table_info("ns", "t2").options.ttl_seconds == 120
    pair.owner.drop_table("ns", "t2")
    follower.ensure_catalog()
    with pytest.raises(TableNotFoundError):
        pair.follower.table_info("ns", "t2")


def test_versions_and_deletes_look_the_same_from_both(pair: Pair) -> None:
    t = pair.owner.table("ns", "t")
    for ts in (10, 20, 30, 40):
        t.put("p", "s", f"v{ts}", ts=ts)
    t.delete("p", "gone", ts=5)
    t.put("p", "gone", "x", ts=4)
    for store in (pair.owner, pair.follower):
        cells = store.get("ns", "t", "p", "s", versions=5, consistency="strong")
        assert [c.ts for c in cells] == [40, 30, 20]
        assert store.get("ns", "t", "p", "gone", consistency="strong") == []


def test_the_follower_survives_flushes_and_compactions_of_the_owner(pair: Pair) -> None:
    t = pair.owner.table("ns", "t")
    for round_ in range(3):
        t.write([Put(f"k{i}", "s", f"r{round_}") for i in range(500)], ack="applied")
        pair.owner.backend.sync()  # memtable -> SST: the WAL the follower read is gone
        db = pair.owner.backend.db  # type: ignore[attr-defined]
        db.compact_range(None, None)
        t.put("marker", "s", str(round_))
        cells = pair.follower.get("ns", "t", "k7", "s", consistency="strong")
        assert [c.value for c in cells] == [f"r{round_}".encode()]
        assert pair.follower.get("ns", "t", "marker", "s", consistency="strong")[0].value == (
            str(round_).encode()
        )


def test_the_follower_refuses_writes_and_catalog_changes(pair: Pair) -> None:
    with pytest.raises(UnavailableError, match="owner"):
        pair.follower.write("ns", "t", [Put("a", "s", "v")])
    with pytest.raises(Exception):  # noqa: B017 - RocksDB refuses writes to a secondary
        pair.follower.put_namespace("other")
    assert [n.name for n in pair.owner.namespaces()] == ["ns"]


def test_a_strong_read_times_out_when_the_owner_stops_applying(tmp_path: Path) -> None:
    cfg = StoreConfig(partitions=2, rocks=RocksConfig(wal=True), strong_read_timeout_s=0.2)
    owner = Store.open(tmp_path, cfg)
    state = SharedState.create(tmp_path / "run" / "state", 2, 1)
    owner.publish_to(state)
    owner.put_namespace("ns")
    owner.put_table("ns", "t")
    follower = Store.open_follower(tmp_path, SharedState.attach(state.path), 0, cfg)
    follower.replayer.start()
    try:
        # an acknowledged end the owner has not applied (as if its replayer were stuck)
        state.publish_ends([1_000_000, 1_000_000])
        with pytest.raises(UnavailableError, match="strong read"):
            follower.get("ns", "t", "a", "s", consistency="strong")
        assert follower.get("ns", "t", "a", "s", consistency="eventual") == []
        assert follower.staleness_ms() > 0
    finally:
        follower.close()
        owner.close()


def test_records_prepared_by_a_follower_are_appended_by_the_owner(pair: Pair) -> None:
    table_id, records = pair.follower.prepare_write("ns", "t", [Put("h", "s", "handed")])
    placed = pair.owner.submit_mutations("ns", "t", table_id, records).result()
    pair.owner.wait_applied(placed)
    assert pair.follower.get("ns", "t", "h", "s")[0].value == b"handed"
    # a table dropped and created again meanwhile is another table
    pair.owner.drop_table("ns", "t")
    pair.owner.put_table("ns", "t")
    with pytest.raises(TableNotFoundError, match="dropped meanwhile"):
        pair.owner.submit_mutations("ns", "t", table_id, records)


def test_nowait_reads_refuse_a_strong_read_until_the_view_catches_up(pair: Pair) -> None:
    """``get_nowait``/``multi_get_nowait`` (the HTTP hot path) answer None for a strong
    read while an acknowledged write is not in the view, and never block."""
    follower = pair.follower.follower
    assert follower is not None
    pair.owner.table("ns", "t").write([Put("a", "s", "1")], ack="applied")
    follower.stop()  # no background catch-up from here on
    follower.catch_up()
    assert pair.follower.get_nowait("ns", "t", b"a", b"s", "strong") is not None
    pair.owner.table("ns", "t").write([Put("a", "s", "2")])  # durable, not in the view
    started = time.monotonic()
    assert pair.follower.get_nowait("ns", "t", b"a", b"s", "strong") is None
    assert pair.follower.multi_get_nowait("ns", "t", [(b"a", b"s")], "strong") is None
    assert time.monotonic() - started < 0.5  # did not wait for the barrier
    got = pair.follower.get_nowait("ns", "t", b"a", b"s", "eventual")
    assert got is not None
    cell, staleness = got
    assert cell is not None and cell.value == b"1"  # the view's (stale) version
    assert staleness is not None and staleness >= 0
    deadline = time.monotonic() + 5  # until the owner has applied it, and the view has it
    while (got := pair.follower.get_nowait("ns", "t", b"a", b"s", "strong")) is None:
        assert time.monotonic() < deadline, "the view never caught up"
        time.sleep(0.01)
        follower.catch_up()
    assert got[1] is None  # strong: no staleness
    assert got[0] is not None and got[0].value == b"2"
    many = pair.follower.multi_get_nowait("ns", "t", [(b"a", b"s"), (b"b", b"s")], None)
    assert many is not None
    assert [c.value if c else None for c in many[0]] == [b"2", None]


def test_an_idle_follower_polls_lazily_and_a_waiting_strong_read_wakes_it(pair: Pair) -> None:
    """Quiet for a while, the follower thread polls every ``idle_poll_s`` instead of
    ``poll_s`` (it takes the GIL from the serving thread less often); a strong read that
    must wait wakes it at once, and ``stop`` does not wait for the idle poll either."""
    follower = pair.follower.follower
    assert follower is not None
    time.sleep(0.2)  # nothing changes: idle
    assert follower.poll_s() == follower._idle_poll_s > follower._poll_s
    follower._idle_poll_s = 5.0  # an idle poll far longer than any wait below
    time.sleep(0.05)  # (the thread is now in such a poll)
    for i in range(5):
        pair.owner.table("ns", "t").write([Put("w", "s", str(i))])  # durable only
        started = time.monotonic()
        cells = pair.follower.get("ns", "t", "w", "s", consistency="strong")
        assert [c.value for c in cells] == [str(i).encode()]
        assert time.monotonic() - started < 2.0, "the waiting read did not wake the thread"
        time.sleep(0.1)  # idle again
    started = time.monotonic()
    follower.stop()
    assert time.monotonic() - started < 2.0
