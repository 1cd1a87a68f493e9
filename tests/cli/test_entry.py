"""The ``mussel`` entry points, ``version`` and ``serve``'s configuration loading."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import mussel
from mussel.cli.main import cli, main
from mussel.cli.serve import load_config
from mussel.dispatch.server import default_processes


def test_version_human_and_json() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["version"]).stdout == f"mussel {mussel.__version__}\n"
    assert json.loads(runner.invoke(cli, ["version", "--json"]).stdout) == {
        "version": mussel.__version__
    }
    assert runner.invoke(cli, ["--version"]).stdout == f"mussel {mussel.__version__}\n"


def test_main_returns_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mussel.cli.main", "version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == f"mussel {mussel.__version__}\n"


def test_serve_help_hides_the_ready_fd() -> None:
    out = CliRunner().invoke(cli, ["serve", "--help"]).stdout
    for option in ("--data", "--host", "--port", "--config"):
        assert option in out
    assert "--ready-fd" not in out


def test_load_config_applies_every_section(tmp_path: Path) -> None:
    path = tmp_path / "mussel.toml"
    path.write_text(
        "[server]\nport = 9999\nmax_body_bytes = 1024\nprocesses = 3\n"
        "[store]\nstrong_read_timeout_s = 2.5\n"
        "[limits]\nmax_value_bytes = 4096\n"
        "[rocksdb]\nblock_cache_bytes = 1048576\n"
    )
    cfg = load_config(path)
    assert (cfg.port, cfg.max_body_bytes, cfg.processes) == (9999, 1024, 3)
    assert cfg.store.strong_read_timeout_s == 2.5
    assert cfg.store.limits.max_value_bytes == 4096
    assert cfg.store.rocks.block_cache_bytes == 1048576
    assert load_config(None) == type(cfg)(processes=default_processes())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nope]\n", "mussel: unknown config section(s): nope"),
        ("[server]\nspeed = 1\n", "mussel: unknown key(s) in [server]: speed"),
        ("[server\n", "is not valid TOML"),
    ],
)
def test_load_config_rejects_what_it_does_not_know(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mussel.toml"
    path.write_text(text)
    with pytest.raises(SystemExit, match=re.escape(message)):
        load_config(path)
    with pytest.raises(SystemExit, match="cannot read config"):
        load_config(tmp_path / "missing.toml")


def test_serve_with_a_bad_config_exits_1_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "mussel.toml"
    path.write_text("[nope]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mussel.cli.main", "serve", "--data", str(tmp_path / "d"),
         "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == "mussel: unknown config section(s): nope\n"
