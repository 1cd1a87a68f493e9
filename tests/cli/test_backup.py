"""``mussel backup`` and ``mussel restore``: their failures are one clear line, exit 1.

The backup under concurrent writes, its restore and a second server on it are
``tests/integration/test_backup.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from mussel.engine import Store, StoreConfig
from tests.cli.conftest import Mussel, dead_url


def _stopped_data(path: Path) -> None:
    with Store.open(path, StoreConfig(partitions=3)) as store:
        store.put_namespace("shop")
        store.put_table("shop", "users").put("u1", "email", "a@example.com")


def test_backup_over_http_needs_the_servers_backup_dir(mussel: Mussel) -> None:
    err = mussel.fails("backup", "anywhere")
    assert err.startswith("mussel: backups over HTTP are off: start the server with --backup-dir")
    assert err.endswith("(invalid_request)\n") and err.count("\n") == 1


def test_backup_of_a_server_that_is_down_says_so() -> None:
    url = dead_url()
    err = Mussel(url).fails("backup", "b1")
    assert err.startswith(f"mussel: cannot reach the server at {url}: ")


def test_offline_backup_and_restore(tmp_path: Path) -> None:
    _stopped_data(tmp_path / "data")
    made = Mussel(dead_url()).json("backup", "--data", str(tmp_path / "data"), str(tmp_path / "b"))
    assert made["backup"]["partitions"] == 3 and made["backup"]["files"] > 2
    out = Mussel(dead_url()).ok("restore", str(tmp_path / "b"), "--data", str(tmp_path / "r"))
    assert "Restored" in out
    with Store.open(tmp_path / "r", StoreConfig(partitions=3)) as store:
        assert [c.value for c in store.table("shop", "users").get("u1", "email")] == [
            b"a@example.com"
        ]


def test_offline_backup_of_a_directory_without_data_fails(tmp_path: Path) -> None:
    err = Mussel(dead_url()).fails("backup", "--data", str(tmp_path), str(tmp_path / "b"))
    assert "holds no Mussel data" in err and err.endswith("(invalid_request)\n")
    assert not (tmp_path / "b").exists()


def test_restore_refuses_a_corrupt_backup_and_a_non_empty_target(tmp_path: Path) -> None:
    _stopped_data(tmp_path / "data")
    m = Mussel(dead_url())
    m.ok("backup", "--data", str(tmp_path / "data"), str(tmp_path / "b"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    err = m.fails("restore", str(tmp_path / "b"), "--data", str(tmp_path / "full"))
    assert err.startswith(f"mussel: refusing to restore into {tmp_path / 'full'}")

    manifest = json.loads((tmp_path / "b" / "MANIFEST.json").read_text())
    victim = next(f for f in manifest["files"] if f["path"].startswith("log/"))
    path = tmp_path / "b" / victim["path"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    err = m.fails("restore", str(tmp_path / "b"), "--data", str(tmp_path / "r"))
    assert err.startswith(f"mussel: the backup at {tmp_path / 'b'} is damaged: {victim['path']}")
    assert err.endswith("(corruption)\n") and "Traceback" not in err
    assert list((tmp_path / "r").iterdir()) == []

    err = m.fails("restore", str(tmp_path / "data"), "--data", str(tmp_path / "r2"))
    assert "is not a Mussel backup" in err
