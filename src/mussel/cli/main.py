"""Entry point of the ``mussel`` command."""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import fields, replace
from pathlib import Path

import mussel
from mussel.dispatch.server import ServerConfig, run_server
from mussel.engine import StoreConfig
from mussel.errors import MusselError
from mussel.limits import Limits
from mussel.storage.rocksdb import RocksConfig


def _load_config(path: Path | None) -> ServerConfig:
    cfg = ServerConfig()
    if path is None:
        return cfg
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SystemExit(f"mussel: cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"mussel: config {path} is not valid TOML: {exc}") from None
    sections = {
        "server": (ServerConfig, {"max_body_bytes", "drain_timeout_s", "host", "port"}),
        "store": (StoreConfig, {"partitions", "strong_read_timeout_s", "applied_ack_timeout_s"}),
        "limits": (Limits, {f.name for f in fields(Limits)}),
        "rocksdb": (RocksConfig, {"block_cache_bytes", "write_buffer_bytes", "compression"}),
    }
    unknown = set(raw) - set(sections)
    if unknown:
        raise SystemExit(f"mussel: unknown config section(s): {', '.join(sorted(unknown))}")
    parts = {}
    for name, (_, allowed) in sections.items():
        values = raw.get(name, {})
        bad = set(values) - allowed
        if bad:
            raise SystemExit(f"mussel: unknown key(s) in [{name}]: {', '.join(sorted(bad))}")
        parts[name] = values
    store = replace(
        cfg.store,
        limits=replace(cfg.store.limits, **parts["limits"]),
        rocks=replace(cfg.store.rocks, **parts["rocksdb"]),
        **parts["store"],
    )
    return replace(cfg, store=store, **parts["server"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mussel", description="Mussel key-value store")
    parser.add_argument("--version", action="version", version=f"mussel {mussel.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the embedded server")
    serve.add_argument("--data", type=Path, default=Path("./data"), help="data directory")
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default 7070)")
    serve.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"mussel {mussel.__version__}")
        return 0
    cfg = _load_config(args.config)
    cfg = replace(cfg, data_dir=args.data)
    if args.host is not None:
        cfg = replace(cfg, host=args.host)
    if args.port is not None:
        cfg = replace(cfg, port=args.port)
    try:
        return run_server(cfg, args.ready_fd)
    except MusselError as exc:
        print(f"mussel: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
