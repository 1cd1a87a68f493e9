"""deploy/Dockerfile, without a Docker engine: what it runs is the real ``mussel serve``
started with the image's CMD, probed with the image's HEALTHCHECK command."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import httpx
import pytest

from mussel.cli.main import cli
from tests.conftest import start_server
from tests.deploy.checks import (
    DEPLOY,
    DOCKERFILE,
    REPO,
    dockerfile_instructions,
    final_stage,
    healthcheck_command,
    load_manifests,
    pod_spec,
    workloads,
)

INSTRUCTIONS = dockerfile_instructions(DOCKERFILE.read_text())
IMAGE = final_stage(INSTRUCTIONS)
TOKEN = "deploy-test-admin-token-0123456789"


def _only(keyword: str) -> list[str]:
    (ins,) = [i for i in IMAGE if i.keyword == keyword]
    form = ins.exec_form()
    assert form is not None, f"{keyword} must be in exec form (a JSON array)"
    return form


def test_the_image_is_python_3_11_slim_and_runs_mussel_as_a_non_root_user() -> None:
    froms = [i.value.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert froms and all(f == "python:3.11-slim" for f in froms), froms
    (user,) = [i.value for i in IMAGE if i.keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can check it
    for m in workloads(load_manifests()):
        assert pod_spec(m)["securityContext"]["runAsUser"] == int(uid), m
    assert _only("ENTRYPOINT") == ["mussel"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "mussel" in scripts
    assert [i.value for i in IMAGE if i.keyword == "EXPOSE"] == ["7070"]


def test_the_build_copies_only_what_exists_and_the_dockerignore_lets_through() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    copies = [i.value.split() for i in INSTRUCTIONS if i.keyword == "COPY"]
    assert copies
    for parts in copies:
        if any(p.startswith("--from") for p in parts):
            continue
        for src in parts[:-1]:
            assert (REPO / src).exists(), src
            assert f"!{src.rstrip('/')}" in ignore or f"!{src.rstrip('/')}/" in ignore, src


def test_the_default_command_parses_with_mussel_serve() -> None:
    args = _only("CMD")
    cmd = cli.get_command(click.Context(cli), args[0])
    assert cmd is not None
    with cmd.make_context(args[0], args[1:]) as ctx:
        params = ctx.params
    assert params["port"] == 7070
    assert params["host"] == "0.0.0.0"
    assert params["auth"] == "token"  # the server refuses 0.0.0.0 without tokens
    with pytest.raises(click.UsageError):
        cmd.make_context(args[0], [*args[1:], "--data-dir", "/x"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthcheck(url: str) -> subprocess.CompletedProcess[bytes]:
    argv = healthcheck_command(IMAGE)
    assert argv[0] == "python"  # the image's python, here the test's
    return subprocess.run(
        [sys.executable, *argv[1:]],
        env={"MUSSEL_HEALTH_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_the_default_command_serves_and_the_healthcheck_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's CMD (its data directory and address swapped for the test's) with
    MUSSEL_ADMIN_TOKEN, as `docker run -e MUSSEL_ADMIN_TOKEN=...` starts it."""
    args = _only("CMD")
    assert args[0] == "serve"
    rest: list[str] = []
    swapped = {"--data", "--host", "--port"}
    it = iter(args[1:])
    for arg in it:
        if arg in swapped:
            next(it)
        else:
            rest.append(arg)
    monkeypatch.setenv("MUSSEL_ADMIN_TOKEN", TOKEN)
    srv = start_server(tmp_path / "data", *rest, processes=1)
    try:
        done = _healthcheck(srv.url + "/healthz")
        assert done.returncode == 0, done.stderr.decode()
        # /healthz and /readyz need no token; /metrics (for Prometheus) needs an admin one.
        assert httpx.get(srv.url + "/readyz", timeout=10).status_code == 200
        assert httpx.get(srv.url + "/metrics", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(srv.url + "/metrics", headers=auth, timeout=10).status_code == 200
    finally:
        assert srv.stop() == 0
        if srv.proc.stderr:
            srv.proc.stderr.close()
    # Nothing listens there any more: the healthcheck fails, and Docker marks it unhealthy.
    assert _healthcheck(srv.url + "/healthz").returncode != 0
    assert _healthcheck(f"http://127.0.0.1:{_free_port()}/healthz").returncode != 0


def test_the_dockerfile_parser_reads_continuations_and_stages() -> None:
    text = 'FROM a AS b\nRUN x \\\n    # c\n    && y\nFROM d\nCMD ["e"]\n'
    ins = dockerfile_instructions(text)
    assert [(i.keyword, i.value) for i in ins][1] == ("RUN", "x  && y")
    assert [i.keyword for i in final_stage(ins)] == ["FROM", "CMD"]
