from __future__ import annotations

from pathlib import Path

import pytest

from mussel.catalog import Catalog
from mussel.clock import ManualClock
from mussel.errors import (
    ConflictError,
    InvalidRequestError,
    NamespaceNotFoundError,
    TableNotFoundError,
)
from mussel.model import Floor, Partitioning
from mussel.storage.memory import MemoryBackend
from mussel.storage.rocksdb import RocksBackend, RocksConfig


def test_namespace_create_is_idempotent_and_update_keeps_omitted_fields() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    a = c.put_namespace("team-a", consistency="eventual", quotas={"read_qps": 100})
    assert c.put_namespace("team-a") == a
    b = c.put_namespace("team-a", quotas={"write_qps": 5})
    assert b.consistency == "eventual"
    assert (b.quotas.read_qps, b.quotas.write_qps) == (100, 5)


@pytest.mark.parametrize("name", ["", "A", "-x", "_x", "x" * 64, "a/b", "a b", "é", "..", 5, None])
def test_invalid_names_are_rejected_with_the_rule(name: object) -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    with pytest.raises(InvalidRequestError, match="a-z, 0-9"):
        c.put_namespace(name)  # type: ignore[arg-type]


def test_valid_edge_names() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    for name in ["0", "a" * 63, "a_b-c9"]:
        c.put_namespace(name)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": "5"}, "ttl_seconds"),
        ({"max_versions": 0}, "max_versions"),
        ({"max_versions": 1001}, "max_versions"),
        ({"max_versions": True}, "max_versions"),
        ({"consistency": "weak"}, "consistency"),
        ({"partitioning": {"kind": "hash", "shards": 0}}, "shards"),
        ({"partitioning": {"kind": "range", "split_points": ["b", "a"]}}, "increasing"),
        ({"partitioning": {"kind": "cube"}}, "kind"),
        ({"partitioning": {"kind": "range", "presplit": {"sample": "x", "shards": 2}}}, "presplit"),
        ({"colour": "red"}, "unknown table option"),
    ],
)
def test_bad_table_options(options: dict, message: str) -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    c.put_namespace("ns")
    with pytest.raises(InvalidRequestError, match=message):
        c.put_table("ns", "t", options)


def test_table_ids_are_never_reused(tmp_path: Path) -> None:
    backend = RocksBackend(tmp_path / "db", RocksConfig(block_cache_bytes=8 << 20))
    c = Catalog(backend, ManualClock())
    c.put_namespace("ns")
    first = c.put_table("ns", "t", {}).id
    c.drop_table("ns", "t")
    backend.close()
    backend = RocksBackend(tmp_path / "db", RocksConfig(block_cache_bytes=8 << 20))
    try:
        c = Catalog(backend, ManualClock())
        assert c.put_table("ns", "t", {}).id > first
    finally:
        backend.close()


def test_range_partitioning_and_conflicting_change() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    c.put_namespace("ns")
    t = c.put_table("ns", "t", {"partitioning": {"kind": "range", "split_points": ["g", "p"]}})
    assert t.options.partitioning == Partitioning("range", None, [b"g", b"p"])
    assert c.put_table("ns", "t", {"ttl_seconds": 5}).options.partitioning == t.options.partitioning
    with pytest.raises(ConflictError):
        c.put_table("ns", "t", {"partitioning": {"kind": "hash"}})


def test_add_floor_starts_a_new_epoch() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    c.put_namespace("ns")
    c.put_table("ns", "t", {})
    t = c.add_floor("ns", "t", 100)
    assert (t.epoch, t.floors) == (1, (Floor(100, 1),))
    assert c.epochs() == {t.id: 1}


def _table(c: Catalog) -> None:
    c.put_namespace("ns")
    c.put_table("ns", "t", {})


def test_reserved_epochs_are_fresh_and_pending_until_commit() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    _table(c)
    t1, e1 = c.reserve_epoch("ns", "t")
    t2, e2 = c.reserve_epoch("ns", "t")
    assert (e1, e2) == (1, 2)
    assert t2.pending_epochs == (1, 2) and not t2.plain
    assert t2.hidden_epochs == {1, 2}
    assert c.epochs() == {t1.id: 0}  # streaming writes keep the streaming epoch
    t = c.commit_epoch("ns", "t", t1.id, e1)
    assert (t.pending_epochs, t.epoch, t.floors) == ((2,), 0, ())


def test_replace_commit_adds_the_floor_and_switches_the_streaming_epoch() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    _table(c)
    t, e = c.reserve_epoch("ns", "t")
    t = c.commit_epoch("ns", "t", t.id, e, floor_ts_us=500)
    assert (t.epoch, t.floors, t.pending_epochs) == (e, (Floor(500, e),), ())
    assert c.epochs() == {t.id: e}


def test_replace_cannot_commit_while_another_load_is_pending() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    _table(c)
    t, e1 = c.reserve_epoch("ns", "t")
    _, e2 = c.reserve_epoch("ns", "t")
    with pytest.raises(ConflictError, match="other loads"):
        c.commit_epoch("ns", "t", t.id, e2, floor_ts_us=5)
    assert c.get_table("ns", "t").pending_epochs == (e1, e2)


def test_aborted_epoch_stays_hidden_and_cannot_commit() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    _table(c)
    t, e = c.reserve_epoch("ns", "t")
    c.abort_epoch("ns", "t", t.id, e)
    t = c.get_table("ns", "t")
    assert (t.pending_epochs, t.aborted_epochs) == ((), (e,))
    with pytest.raises(ConflictError, match="not pending"):
        c.commit_epoch("ns", "t", t.id, e)


def test_epochs_are_never_reused_across_restarts(tmp_path: Path) -> None:
    b = RocksBackend(tmp_path / "db", RocksConfig(block_cache_bytes=1 << 20))
    c = Catalog(b, ManualClock())
    _table(c)
    c.reserve_epoch("ns", "t")
    b.close()
    b = RocksBackend(tmp_path / "db", RocksConfig(block_cache_bytes=1 << 20))
    c = Catalog(b, ManualClock())
    assert c.abort_pending_epochs() == [("ns/t", 1)]
    _, e = c.reserve_epoch("ns", "t")
    assert e == 2
    t = c.get_table("ns", "t")
    assert (t.pending_epochs, t.aborted_epochs) == ((2,), (1,))
    b.close()


def test_commit_refuses_a_table_dropped_and_created_again() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    _table(c)
    t, e = c.reserve_epoch("ns", "t")
    c.drop_table("ns", "t")
    c.put_table("ns", "t", {})
    with pytest.raises(TableNotFoundError, match="dropped"):
        c.commit_epoch("ns", "t", t.id, e)
    c.abort_epoch("ns", "t", t.id, e)  # a no-op, not an error
    assert c.get_table("ns", "t").aborted_epochs == ()


def test_generation_grows_with_every_change() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    g0 = c.generation
    c.put_namespace("ns")
    g1 = c.generation
    c.put_table("ns", "t", {})
    assert g0 < g1 < c.generation


def test_unknown_namespace() -> None:
    c = Catalog(MemoryBackend(), ManualClock())
    with pytest.raises(NamespaceNotFoundError):
        c.list_tables("nope")
    with pytest.raises(NamespaceNotFoundError):
        c.delete_namespace("nope")
