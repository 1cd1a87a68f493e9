"""The distributed benchmark's report: ratios between systems, the Markdown section, and its
command line (no servers: the figures are given)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("psutil")  # bench.http needs it (the bench extra)
from bench import distributed


def _fig(rate: float, cpu: dict[str, float] | None = None) -> dict[str, Any]:
    return {"rate": rate, "p50_ms": 1.25, "p99_ms": 9.5, "cpu": cpu, "raw": {"argv": ["wrk"]}}


def _results(with_postgres: bool = True) -> dict[str, Any]:
    cpu = {"dispatchers": 0.8, "replayers": 0.1, "load_generator": 0.2, "other": 0.5}
    systems: dict[str, Any] = {
        "embedded": {
            "writes": _fig(100_000.0, {"mussel serve": 0.9, "load_generator": 0.1}),
            "writes_applied": {"rate": 80_000.0},
            "reads_strong": _fig(8_000.0),
            "reads_eventual": _fig(10_000.0),
            "drain_seconds": 0.5,
            "argv": ["mussel", "serve"],
        },
        "dist1": {
            "writes": _fig(50_000.0, cpu),
            "writes_applied": {"rate": 20_000.0},
            "reads_strong": _fig(1_000.0),
            "reads_eventual": _fig(2_000.0),
            "drain_seconds": 12.0,
            "argv": ["DevCluster(...)"],
        },
        "dist2": {
            "writes": _fig(60_000.0, cpu),
            "writes_applied": {"rate": 20_000.0},
            "reads_strong": _fig(1_500.0),
            "reads_eventual": _fig(1_000.0),
            "drain_seconds": 11.0,
            "argv": ["DevCluster(...)"],
        },
    }
    if with_postgres:
        read = _fig(4_000.0, {"postgres": 0.7})
        systems["postgres"] = {
            "writes": _fig(25_000.0, {"postgres": 0.9}),
            "writes_applied": {"rate": 25_000.0},
            "reads_strong": read,
            "reads_eventual": read,
        }
    return {
        "meta": {
            "started": "2026-12-07 00:00:00",
            "cpus": 2,
            "load_average_start": [1.0, 1.0, 1.0],
            "load_average_end": [2.0, 1.0, 1.0],
        },
        "settings": {
            "keys": 100_000,
            "value_bytes": 100,
            "connections": 32,
            "wrk_threads": 2,
            "seconds": 10.0,
            "write_batch": 100,
        },
        "systems": systems,
        "commands": ["wrk -t2 -c32 ..."],
    }


def test_ratios_divide_the_named_systems_figure_by_figure() -> None:
    rows = {row["ratio"]: row for row in distributed.ratio_rows(_results())}
    one_vs_emb = rows["distributed (1 dispatcher) / embedded"]
    assert one_vs_emb["writes"] == pytest.approx(0.5)
    assert one_vs_emb["writes_applied"] == pytest.approx(0.25)
    assert one_vs_emb["reads_strong"] == pytest.approx(0.125)
    assert one_vs_emb["reads_eventual"] == pytest.approx(0.2)
    two_vs_one = rows["distributed (2 dispatchers) / distributed (1 dispatcher)"]
    assert two_vs_one["writes"] == pytest.approx(1.2)
    assert two_vs_one["reads_strong"] == pytest.approx(1.5)
    assert two_vs_one["reads_eventual"] == pytest.approx(0.5)
    assert rows["distributed (2 dispatchers) / PostgreSQL"]["writes"] == pytest.approx(2.4)
    assert rows["embedded / PostgreSQL"]["reads_eventual"] == pytest.approx(2.5)


def test_a_missing_system_gives_no_ratio() -> None:
    rows = {row["ratio"]: row for row in distributed.ratio_rows(_results(with_postgres=False))}
    assert rows["distributed (1 dispatcher) / PostgreSQL"]["writes"] is None
    assert rows["distributed (1 dispatcher) / embedded"]["writes"] == pytest.approx(0.5)
    assert distributed.ratio(1.0, 0.0) is None
    assert distributed.ratio(None, 2.0) is None


def test_section_shows_figures_ratios_cores_and_the_machine() -> None:
    lines = distributed.section_lines(_results())
    text = "\n".join(lines)
    assert lines[0] == distributed.SECTION
    assert "**This machine has 2 cores**" in text
    assert "| durable writes, records/s | 100,000 (1.2 / 9.5 ms) | 50,000 (1.2 / 9.5 ms) |" in text
    assert "| the same writes until applied, records/s | 80,000 | 20,000 | 20,000 | 25,000 |" in (
        text
    )
    assert "| distributed (2 dispatchers) / distributed (1 dispatcher) | 1.20x | 1.00x | 1.50x" in (
        text
    )
    assert "distributed (1 dispatcher) 12.0 s" in text
    # cores per kind of process; a kind a system does not have is a dash
    assert "| distributed (1 dispatcher) | writes | — | 0.80 | 0.10 | — | — | 0.20 | 0.50 |" in (
        text
    )
    assert "| embedded | writes | 0.90 | — | — | — | — | 0.10 |" in text
    # PostgreSQL's reads are one pgbench run: one CPU row
    assert text.count("| PostgreSQL | point reads |") == 1
    assert "    wrk -t2 -c32 ..." in text


def test_without_postgres_the_table_says_n_a() -> None:
    text = "\n".join(distributed.section_lines(_results(with_postgres=False)))
    assert "| point reads, strong, req/s | 8,000 (1.2 / 9.5 ms) | 1,000 (1.2 / 9.5 ms) |" in text
    assert "| 1,500 (1.2 / 9.5 ms) | n/a |" in text
    assert "| distributed (1 dispatcher) / PostgreSQL | n/a | n/a | n/a | n/a |" in text


def test_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_SECONDS", "7")
    s, skip = distributed.parse_args([])
    assert (s.seconds, s.keys, s.connections, skip) == (7.0, 100_000, 32, ())
    s, skip = distributed.parse_args(["3", "--keys", "500", "--skip", "postgres"])
    assert (s.seconds, s.keys, skip) == (3.0, 500, ("postgres",))
    with pytest.raises(SystemExit):
        distributed.parse_args(["--skip", "redis"])
    with pytest.raises(SystemExit):
        distributed.parse_args(["0"])
