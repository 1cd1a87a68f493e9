"""``mussel serve``: run the embedded server (SPEC §8), configured by flags and a TOML file.

The configuration file has four sections, each optional; a key or section this
server does not know is an error, not a silent default::

    [server]   max_body_bytes, drain_timeout_s, host, port, processes, auth,
               tls_cert, tls_key, tls_client_ca, max_inflight, online_latency_target_s,
               role, log_url, backend_url, group, offload_threads, backup_dir,
               log_format, access_log
    [store]    partitions, strong_read_timeout_s, applied_ack_timeout_s
    [limits]   any field of ``mussel.limits.Limits``
    [rocksdb]  block_cache_bytes, write_buffer_bytes, compression
    [expire]   any field of ``mussel.expire.ExpireConfig``

Flags win over the file: ``--host``, ``--port``, ``--processes``, ``--role``,
``--log``, ``--backend`` and ``--group`` replace ``[server]``'s; the environment
variables ``MUSSEL_LOG_URL`` and ``MUSSEL_BACKEND_URL`` come between the two (so a
database password need not be in a file or on a command line). ``processes``
defaults to the number of cores in embedded mode and to 1 in distributed mode.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import fields, replace
from pathlib import Path

import click

from mussel.dispatch.server import ROLES, ServerConfig, default_processes, run_server
from mussel.engine import StoreConfig
from mussel.errors import MusselError
from mussel.expire import ExpireConfig
from mussel.limits import Limits
from mussel.storage.rocksdb import RocksConfig

__all__ = ["CONFIG_SECTIONS", "load_config", "serve"]

CONFIG_SECTIONS: dict[str, tuple[type, tuple[str, ...]]] = {
    "server": (
        ServerConfig,
        (
            "host",
            "port",
            "processes",
            "max_body_bytes",
            "drain_timeout_s",
            "auth",
            "tls_cert",
            "tls_key",
            "tls_client_ca",
            "max_inflight",
            "online_latency_target_s",
            "role",
            "log_url",
            "backend_url",
            "group",
            "offload_threads",
            "backup_dir",
            "log_format",
            "access_log",
        ),
    ),
    "store": (StoreConfig, ("partitions", "strong_read_timeout_s", "applied_ack_timeout_s")),
    "limits": (Limits, tuple(f.name for f in fields(Limits))),
    "rocksdb": (RocksConfig, ("block_cache_bytes", "write_buffer_bytes", "compression")),
    "expire": (ExpireConfig, tuple(f.name for f in fields(ExpireConfig))),
}
"""The configuration file's schema: per ``[section]``, the dataclass its keys set and
the keys it takes (docs/operations.md's reference is generated from these)."""


def load_config(path: Path | None) -> ServerConfig:
    """The server configuration in the TOML file at ``path`` (defaults if None).

    A file that cannot be read or parsed, or an unknown section or key, ends the
    process with a one-line message (``SystemExit``).
    """
    cfg = ServerConfig(processes=default_processes())
    if path is None:
        return cfg
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SystemExit(f"mussel: cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"mussel: config {path} is not valid TOML: {exc}") from None
    sections = CONFIG_SECTIONS
    unknown = set(raw) - set(sections)
    if unknown:
        raise SystemExit(f"mussel: unknown config section(s): {', '.join(sorted(unknown))}")
    parts = {}
    for name, (_, allowed) in sections.items():
        values = raw.get(name, {})
        bad = set(values) - set(allowed)
        if bad:
            raise SystemExit(f"mussel: unknown key(s) in [{name}]: {', '.join(sorted(bad))}")
        parts[name] = values
    store = replace(
        cfg.store,
        limits=replace(cfg.store.limits, **parts["limits"]),
        rocks=replace(cfg.store.rocks, **parts["rocksdb"]),
        **parts["store"],
    )
    expire = replace(cfg.expire, **parts["expire"])
    return replace(cfg, store=store, expire=expire, **parts["server"])


def _server_section(path: Path) -> dict[str, object]:
    """The ``[server]`` table of a config file ``load_config`` has already checked."""
    section = tomllib.loads(path.read_text()).get("server", {})
    return section if isinstance(section, dict) else {}


@click.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=Path("./data"),
    show_default="./data",
    help="Data directory (created if missing).",
)
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default 7070; 0: any free).")
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML configuration file.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Serving processes: one owns the data, the others serve reads (default: one per core).",
)
@click.option(
    "--auth",
    type=click.Choice(["none", "token"]),
    default=None,
    help="none (only on loopback addresses; the default) or token: bearer tokens, the "
    "first admin token from MUSSEL_ADMIN_TOKEN.",
)
@click.option("--tls-cert", default=None, help="PEM certificate chain: serve HTTPS.")
@click.option("--tls-key", default=None, help="PEM private key of --tls-cert.")
@click.option(
    "--tls-client-ca",
    default=None,
    help="PEM CA bundle: require client certificates it signed (mTLS); a certificate's "
    "subject CN names the token whose scopes it has.",
)
@click.option(
    "--role",
    type=click.Choice(list(ROLES)),
    default=None,
    help="embedded (the default: one machine, data under --data) or a distributed-mode "
    "role: dispatcher (HTTP API), replayer (applies the log), worker (expiration), all.",
)
@click.option(
    "--log",
    "log_url",
    envvar="MUSSEL_LOG_URL",
    default=None,
    help="Distributed mode: the write log, kafka://host:port[,host:port]/topic "
    "(or MUSSEL_LOG_URL).",
)
@click.option(
    "--backend",
    "backend_url",
    envvar="MUSSEL_BACKEND_URL",
    default=None,
    help="Distributed mode: the database, postgresql://user:password@host:port/db "
    "(or MUSSEL_BACKEND_URL).",
)
@click.option("--group", default=None, help="Distributed mode: the replayers' consumer group.")
@click.option(
    "--backup-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Embedded mode: allow backups over HTTP (mussel backup), written inside this "
    "directory only.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text", "auto"]),
    default=None,
    help="Log lines as JSON objects or text; auto (the default): JSON unless stderr is a terminal.",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log one line per answered request (default: off).",
)
@click.option("--ready-fd", type=int, default=None, hidden=True)
def serve(
    data: Path,
    host: str | None,
    port: int | None,
    config: Path | None,
    processes: int | None,
    auth: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    role: str | None,
    log_url: str | None,
    backend_url: str | None,
    group: str | None,
    backup_dir: Path | None,
    log_format: str | None,
    access_log: bool | None,
    ready_fd: int | None,
) -> None:
    """Run the embedded server until SIGTERM or SIGINT.

    Data lives in a local directory (RocksDB and a durable write log). On SIGTERM
    the server stops accepting, finishes requests in flight, flushes and exits 0.
    """
    cfg = replace(load_config(config), data_dir=data)
    explicit_processes = processes is not None or (
        config is not None and "processes" in _server_section(config)
    )
    overrides: dict[str, str] = {}
    for name, value in (
        ("role", role),
        ("log_url", log_url or None),
        ("backend_url", backend_url or None),
        ("group", group),
    ):
        if value is not None:
            overrides[name] = value
    cfg = replace(cfg, **overrides)  # type: ignore[arg-type]
    if cfg.role != "embedded" and not explicit_processes:
        cfg = replace(cfg, processes=1)
    if host is not None:
        cfg = replace(cfg, host=host)
    if port is not None:
        cfg = replace(cfg, port=port)
    if processes is not None:
        cfg = replace(cfg, processes=processes)
    if auth is not None:
        cfg = replace(cfg, auth=auth)
    if tls_cert is not None:
        cfg = replace(cfg, tls_cert=tls_cert)
    if tls_key is not None:
        cfg = replace(cfg, tls_key=tls_key)
    if tls_client_ca is not None:
        cfg = replace(cfg, tls_client_ca=tls_client_ca)
    if backup_dir is not None:
        cfg = replace(cfg, backup_dir=backup_dir)
    if log_format is not None:
        cfg = replace(cfg, log_format=log_format)
    if access_log is not None:
        cfg = replace(cfg, access_log=access_log)
    if not 1 <= cfg.processes <= 64:
        raise SystemExit("mussel: processes must be from 1 to 64")
    try:
        code = run_server(cfg, ready_fd)
    except MusselError as exc:
        print(f"mussel: {exc.message}", file=sys.stderr)
        code = 1
    sys.exit(code)
