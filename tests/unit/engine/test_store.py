from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mussel import (
    Cell,
    ConflictError,
    Delete,
    InvalidRequestError,
    ManualClock,
    NamespaceNotFoundError,
    Put,
    Store,
    TableNotFoundError,
    TooLargeError,
)
from mussel.limits import Limits
from tests.unit.engine.conftest import CONFIG


def test_write_then_strong_read_sees_it(store: Store) -> None:
    t = store.put_table("ns", "t")
    t.put("u1", "email", "a@example.com", ts=10)
    assert t.get("u1", "email") == [Cell(b"email", 10, b"a@example.com")]


def test_write_without_ts_gets_the_server_time(store: Store, clock: ManualClock) -> None:
    t = store.put_table("ns", "t")
    t.put("k", "", "v")
    assert t.get("k")[0].ts == clock.now_us()


def test_ack_applied_is_visible_to_eventual_reads_at_once(store: Store) -> None:
    t = store.put_table("ns", "t", {"consistency": "eventual"})
    t.put("k", "s", "v", ts=1, ack="applied")
    assert t.get("k", "s") == [Cell(b"s", 1, b"v")]


def test_strong_read_observes_every_acknowledged_write_across_threads(store: Store) -> None:
    t = store.put_table("ns", "t")
    acked: list[int] = []

    def writer(n: int) -> None:
        for i in range(50):
            t.put(f"pk{n}", f"{i:03d}", "x", ts=i + 1)
            acked.append(1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for n in range(4):
        assert len(t.row(f"pk{n}").cells) == 50
    assert len(acked) == 200


def test_a_batch_with_one_bad_record_writes_nothing(store: Store) -> None:
    t = store.put_table("ns", "t", {"consistency": "strong"})
    with pytest.raises(TooLargeError, match=r"records\[1\]"):
        t.write([Put("ok", "", "v"), Put("x" * 1025, "", "v")])
    with pytest.raises(InvalidRequestError, match=r"records\[1\]: pk must not be empty"):
        t.write([Put("ok", "", "v"), Delete("", "")])
    with pytest.raises(InvalidRequestError, match="ts must be"):
        t.write([Put("ok", "", "v", ts=2**63)])
    assert t.row("ok").cells == []


def test_value_limit_is_configurable(tmp_path: Path) -> None:
    from dataclasses import replace

    with Store.memory(replace(CONFIG, limits=Limits(max_value_bytes=10))) as s:
        s.put_namespace("ns")
        t = s.put_table("ns", "t")
        t.put("k", "", "x" * 10)
        with pytest.raises(TooLargeError, match="limit is 10 bytes"):
            t.put("k", "", "x" * 11)


def test_ttl_hides_expired_versions_and_a_ttl_change_applies_at_once(
    store: Store, clock: ManualClock
) -> None:
    t = store.put_table("ns", "t", {"ttl_seconds": 60})
    t.put("k", "", "v")
    clock.advance(59)
    assert len(t.get("k")) == 1
    clock.advance(2)
    assert t.get("k") == []
    store.put_table("ns", "t", {"ttl_seconds": 3600})
    assert len(t.get("k")) == 1


def test_max_versions_keeps_the_newest(store: Store) -> None:
    t = store.put_table("ns", "t", {"max_versions": 2})
    for ts in (1, 2, 3):
        t.put("k", "", f"v{ts}", ts=ts)
    assert [c.ts for c in t.get("k", versions=5)] == [3, 2]
    with pytest.raises(InvalidRequestError, match="versions must be"):
        t.get("k", versions=0)


def test_row_pagination_with_cursor(store: Store) -> None:
    t = store.put_table("ns", "t")
    t.write([Put("r", f"{i:02d}", "v", ts=1) for i in range(25)])
    sks: list[bytes] = []
    cursor = None
    pages = 0
    while True:
        page = t.row("r", limit=10, cursor=cursor)
        pages += 1
        sks += [c.sk for c in page.cells]
        cursor = page.cursor
        if cursor is None:
            break
    assert pages == 3
    assert sks == [f"{i:02d}".encode() for i in range(25)]
    with pytest.raises(InvalidRequestError, match="another row"):
        t.row("other", cursor=t.row("r", limit=1).cursor)


def test_scan_all_follows_cursors(store: Store) -> None:
    t = store.put_table("ns", "t")
    t.write([Put(f"p{i:03d}", "s", "v", ts=1) for i in range(120)])
    cells = list(t.scan_all(limit=7))
    assert [c.pk for c in cells] == [f"p{i:03d}".encode() for i in range(120)]


def test_multi_get_answers_in_key_order(store: Store) -> None:
    t = store.put_table("ns", "t")
    t.write([Put("a", "x", "1", ts=1), Put("b", "y", "2", ts=1)])
    pages = t.multi_get([("b", "y"), ("a", None), ("zz", "x")])
    assert [(p.pk, [c.value for c in p.cells]) for p in pages] == [
        (b"b", [b"2"]),
        (b"a", [b"1"]),
        (b"zz", []),
    ]


def test_catalog_errors(store: Store) -> None:
    with pytest.raises(NamespaceNotFoundError):
        store.put_table("nope", "t")
    with pytest.raises(TableNotFoundError):
        store.table("ns", "missing")
    with pytest.raises(InvalidRequestError, match="invalid table name"):
        store.put_table("ns", "Bad Name")
    store.put_table("ns", "t", {"partitioning": {"kind": "hash", "shards": 4}})
    with pytest.raises(ConflictError, match="partitioning"):
        store.put_table("ns", "t", {"partitioning": {"kind": "hash", "shards": 8}})
    with pytest.raises(ConflictError, match="still has tables"):
        store.drop_namespace("ns")
    with pytest.raises(InvalidRequestError, match="unknown table option"):
        store.put_table("ns", "t2", {"ttl": 5})


def test_drop_table_then_recreate_starts_empty(store: Store) -> None:
    t = store.put_table("ns", "t")
    t.put("k", "", "v", ts=1)
    store.drop_table("ns", "t")
    with pytest.raises(TableNotFoundError):
        t.get("k")
    t = store.put_table("ns", "t")
    assert t.get("k") == []


def test_eventual_reads_report_staleness(store: Store) -> None:
    assert store.staleness_ms() >= 0.0


def test_everything_survives_reopen(tmp_path: Path) -> None:
    clock = ManualClock()
    with Store.open(tmp_path / "s", CONFIG, clock=clock) as s:
        s.put_namespace("ns", consistency="eventual", quotas={"tables": 10})
        t = s.put_table("ns", "t", {"ttl_seconds": 3600, "max_versions": 3})
        t.write([Put("k", "", f"v{i}", ts=clock.now_us() - 10 + i) for i in range(3)])
    with Store.open(tmp_path / "s", CONFIG, clock=clock) as s:
        ns = s.namespace("ns")
        assert ns.consistency == "eventual" and ns.quotas.tables == 10
        info = s.table_info("ns", "t")
        assert info.options.ttl_seconds == 3600 and info.options.max_versions == 3
        cells = s.get("ns", "t", "k", versions=3, consistency="strong")
        assert [c.value for c in cells] == [b"v2", b"v1", b"v0"]


def test_applied_log_segments_are_removed(tmp_path: Path) -> None:
    from dataclasses import replace

    cfg = replace(CONFIG, segment_bytes=64 << 10)
    with Store.open(tmp_path / "s", cfg) as s:
        s.put_namespace("ns")
        t = s.put_table("ns", "t")
        for i in range(50):
            t.write([Put(f"k{i}-{j}", "", "x" * 100) for j in range(100)])
    segments = list((tmp_path / "s" / "log").glob("*.log"))
    assert len(segments) <= 2  # everything was applied and synced on close
    with Store.open(tmp_path / "s", cfg) as s:
        assert len(list(s.scan_all("ns", "t", limit=1000))) == 5000


def test_nowait_reads_answer_what_get_and_multi_get_answer(
    store: Store, clock: ManualClock
) -> None:
    """The HTTP hot path's reads agree with ``get``/``multi_get`` (versions=1), plain
    tables and TTL tables alike; errors are the same."""
    store.put_table("ns", "plain")
    store.put_table("ns", "ttl", {"ttl_seconds": 60, "consistency": "strong"})
    for name in ("plain", "ttl"):
        store.write("ns", name, [Put("a", "s", "1", ts=1), Put("a", "s", "2")], ack="applied")
        store.write("ns", name, [Put("b", "s", "x"), Delete("b", "s")], ack="applied")
    clock.advance(30)
    for name in ("plain", "ttl"):
        for pk in (b"a", b"b", b"zz"):
            got = store.get_nowait("ns", name, pk, b"s", "strong")
            assert got is not None
            want = store.get("ns", name, pk, b"s", consistency="strong")
            assert ([got[0]] if got[0] else []) == want
            assert got[1] is None
        keys = [(b"a", b"s"), (b"zz", b"s"), (b"a", b"s")]
        many = store.multi_get_nowait("ns", name, keys, "eventual")
        assert many is not None
        pages = store.multi_get("ns", name, keys, consistency="eventual")
        assert [[c] if c else [] for c in many[0]] == [p.cells for p in pages]
        assert many[1] is not None  # eventual: a staleness estimate
    clock.advance(31)  # the TTL table's versions expire
    assert store.get_nowait("ns", "ttl", b"a", b"s", None) == (None, None)
    with pytest.raises(TableNotFoundError):
        store.get_nowait("ns", "nope", b"a", b"s", None)
    with pytest.raises(InvalidRequestError):
        store.get_nowait("ns", "plain", b"a", b"s", "sometimes")
    with pytest.raises(InvalidRequestError):
        store.multi_get_nowait("ns", "plain", [(b"", b"s")], None)
