"""Backups of an embedded store (``engine/backup.py``) and their manifest checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mussel.engine import Store
from mussel.engine.backup import backup_parts, create_backup, restore_backup
from mussel.engine.manifest import MANIFEST, read_manifest
from mussel.errors import ConflictError, CorruptionError, InvalidRequestError
from mussel.log.local import LocalLog
from mussel.model import OP_PUT, Mutation
from mussel.storage.rocksdb import RocksBackend
from tests.unit.engine.conftest import CONFIG


def _filled(path: Path, rows: int = 100) -> Store:
    store = Store.open(path, CONFIG)
    store.put_namespace("ns")
    t = store.put_table("ns", "t")
    for i in range(rows):
        t.put(f"pk{i}", "sk", f"v{i}")
    return store


def test_backup_and_restore_round_trip(tmp_path: Path) -> None:
    store = _filled(tmp_path / "data")
    try:
        m = create_backup(store, tmp_path / "backup")
        store.table("ns", "t").put("later", "sk", "not in the backup")
    finally:
        store.close()
    assert m.partitions == CONFIG.partitions
    assert sum(m.log_end) == 100
    paths = {f.path for f in m.files}
    assert any(p.startswith("db/") and p.endswith(".sst") for p in paths)
    assert any(p.startswith("log/") for p in paths)
    assert read_manifest(tmp_path / "backup") == m

    restore_backup(tmp_path / "backup", tmp_path / "restored", CONFIG)
    with Store.open(tmp_path / "restored", CONFIG) as back:
        t = back.table("ns", "t")
        assert [c.value for c in t.get("pk99", "sk")] == [b"v99"]
        assert t.get("later", "sk") == []


def test_restore_replays_the_log_records_the_checkpoint_lacks(tmp_path: Path) -> None:
    """Records in the log past the applied positions (written while the backup ran)
    are in the backup's log copy, and the restore applies them."""
    store = _filled(tmp_path / "data", rows=10)
    table_id = store.table_info("ns", "t").id
    store.close()
    backend = RocksBackend(tmp_path / "data" / "db", CONFIG.rocks)
    wlog = LocalLog(tmp_path / "data" / "log", CONFIG.partitions)
    try:  # no replayer: these 50 stay unapplied, as if acknowledged mid-backup
        wlog.append(
            [
                Mutation(table_id, OP_PUT, f"tail{i}".encode(), b"sk", 1_000 + i, b"t")
                for i in range(50)
            ]
        )
        m = backup_parts(backend, wlog, tmp_path / "backup", 1)
    finally:
        wlog.close()
        backend.close()
    assert sum(m.log_end) - sum(m.applied) == 50

    restore_backup(tmp_path / "backup", tmp_path / "restored", CONFIG)
    with Store.open(tmp_path / "restored", CONFIG) as back:
        t = back.table("ns", "t")
        assert all(t.get(f"tail{i}", "sk") for i in range(50))
        assert [c.value for c in t.get("pk9", "sk")] == [b"v9"]


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("part", ["db", "log"])
def test_restore_refuses_a_damaged_file_and_leaves_the_target_empty(
    tmp_path: Path, part: str
) -> None:
    store = _filled(tmp_path / "data")
    try:
        m = create_backup(store, tmp_path / "backup")
    finally:
        store.close()
    victim = next(f for f in m.files if f.path.startswith(part + "/") and f.bytes > 100)
    _flip_byte(tmp_path / "backup" / victim.path, victim.bytes // 2)

    with pytest.raises(
        CorruptionError, match=f"{victim.path} has {victim.bytes} bytes with SHA-256"
    ):
        restore_backup(tmp_path / "backup", tmp_path / "restored", CONFIG)
    assert list((tmp_path / "restored").iterdir()) == []


def test_restore_refuses_a_missing_file(tmp_path: Path) -> None:
    store = _filled(tmp_path / "data", rows=5)
    try:
        m = create_backup(store, tmp_path / "backup")
    finally:
        store.close()
    (tmp_path / "backup" / m.files[0].path).unlink()
    with pytest.raises(CorruptionError, match=f"missing {m.files[0].path}"):
        restore_backup(tmp_path / "backup", tmp_path / "restored", CONFIG)


def test_restore_refuses_a_non_empty_target(tmp_path: Path) -> None:
    store = _filled(tmp_path / "data", rows=5)
    try:
        create_backup(store, tmp_path / "backup")
    finally:
        store.close()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidRequestError, match="not an empty directory"):
        restore_backup(tmp_path / "backup", tmp_path / "busy", CONFIG)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_a_directory_without_a_manifest_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(InvalidRequestError, match=f"has no {MANIFEST}"):
        restore_backup(tmp_path / "half", tmp_path / "restored")


def test_unknown_manifest_version_and_damage_are_refused(tmp_path: Path) -> None:
    store = _filled(tmp_path / "data", rows=5)
    try:
        create_backup(store, tmp_path / "backup")
    finally:
        store.close()
    path = tmp_path / "backup" / MANIFEST
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "version": 99}))
    with pytest.raises(InvalidRequestError, match="version 99 is not supported"):
        read_manifest(tmp_path / "backup")
    path.write_text(
        json.dumps({**doc, "files": [{"path": "../../etc/x", "bytes": 1, "sha256": "0" * 64}]})
    )
    with pytest.raises(CorruptionError, match="bad file entry"):
        read_manifest(tmp_path / "backup")
    path.write_text("{not json")
    with pytest.raises(CorruptionError, match="damaged"):
        read_manifest(tmp_path / "backup")


def test_backup_refuses_a_non_empty_destination_and_a_memory_store(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "x").write_text("mine")
    store = _filled(tmp_path / "data", rows=1)
    try:
        with pytest.raises(ConflictError, match="not an empty directory"):
            create_backup(store, tmp_path / "dest")
    finally:
        store.close()
    assert (tmp_path / "dest" / "x").read_text() == "mine"
    with Store.memory(CONFIG) as mem, pytest.raises(InvalidRequestError, match="embedded mode"):
        create_backup(mem, tmp_path / "other")
