"""``mussel table``: create, list, describe and drop tables (``NS/TABLE``)."""

from __future__ import annotations

import base64
import sys
from typing import Any

import click
from msgspec import UNSET, UnsetType
from rich.console import Console
from rich.text import Text

from mussel.cli._errors import CliError
from mussel.cli._render import fields, grid, size
from mussel.cli._session import Session, client_command, split_table
from mussel.client import TableDescription
from mussel.model import CONSISTENCIES, Consistency, Partitioning

__all__ = ["table", "table_json"]


def _ttl_option(value: str | None) -> int | UnsetType | None:
    """``--ttl``: not given (leave as is), ``none`` (never expire) or seconds."""
    if value is None:
        return UNSET
    if value.lower() in ("none", "never"):
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number of seconds or 'none'", param_hint="'--ttl'"
        ) from None


def _interval_option(value: str | None) -> int | UnsetType | None:
    """``--expire-every``: not given (leave as is), ``default`` (the server's interval)
    or seconds."""
    if value is None:
        return UNSET
    if value.lower() == "default":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number of seconds or 'default'", param_hint="'--expire-every'"
        ) from None


def _partitioning_json(p: Partitioning) -> dict[str, Any]:
    points = p.split_points if p.kind == "range" else None
    encoding = "utf-8"
    out_points: list[str] | None = None
    if points is not None:
        try:
            out_points = [point.decode("utf-8") for point in points]
        except UnicodeDecodeError:
            out_points = [base64.b64encode(point).decode("ascii") for point in points]
            encoding = "base64"
    shards = p.shards if p.kind == "hash" else None
    return {"kind": p.kind, "shards": shards, "split_points": out_points, "encoding": encoding}


def table_json(t: TableDescription) -> dict[str, Any]:
    """The table as SPEC §4 shapes it, every key always present.

    ``consistency`` is null when the table follows its namespace's default;
    ``partitioning.encoding`` says how ``split_points`` are written (``utf-8`` or,
    when a point is not valid UTF-8, ``base64``).
    """
    return {
        "namespace": t.namespace,
        "name": t.name,
        "ttl_seconds": t.ttl_seconds,
        "max_versions": t.max_versions,
        "consistency": t.consistency,
        "partitioning": _partitioning_json(t.partitioning),
        "expire_interval_s": t.expire_interval_s,
        "stats": {"approx_cells": t.stats.approx_cells, "approx_bytes": t.stats.approx_bytes},
    }


def _partitioning_text(p: Partitioning) -> str:
    if p.kind == "hash":
        return f"hash, {p.shards} shards"
    points = p.split_points or []
    shown = ", ".join(point.decode("utf-8", "backslashreplace") for point in points)
    return f"range, {len(points) + 1} ranges" + (f" (split at {shown})" if points else "")


def _ttl_text(ttl: int | None) -> str:
    return "never expires" if ttl is None else f"{ttl} s"


def _describe(console: Console, t: TableDescription) -> None:
    rows = [
        ("table", f"{t.namespace}/{t.name}"),
        ("ttl", _ttl_text(t.ttl_seconds)),
        ("max versions", str(t.max_versions)),
        ("consistency", t.consistency or "the namespace's default"),
        ("partitioning", _partitioning_text(t.partitioning)),
        (
            "expiration runs",
            "every server interval"
            if t.expire_interval_s is None
            else f"every {t.expire_interval_s} s",
        ),
        ("cells (approx.)", str(t.stats.approx_cells)),
        ("stored (approx.)", size(t.stats.approx_bytes)),
    ]
    console.print(fields(rows))


@click.group()
def table() -> None:
    """Create, list, describe and drop tables, named NS/TABLE."""


@table.command("create")
@click.argument("name", metavar="NS/TABLE")
@click.option(
    "--ttl",
    "ttl_seconds",
    metavar="SECONDS",
    default=None,
    help="Versions older than this many seconds expire; 'none': never.",
)
@click.option("--max-versions", type=int, default=None, help="Versions kept per cell (1-1000).")
@click.option(
    "--consistency",
    type=click.Choice(CONSISTENCIES),
    default=None,
    help="Read consistency (default: the namespace's).",
)
@click.option("--shards", type=int, default=None, help="Hash partitioning into N shards.")
@click.option(
    "--expire-every",
    "expire_interval_s",
    metavar="SECONDS",
    default=None,
    help="Seconds between scheduled expiration runs; 'default': the server's interval.",
)
@click.option(
    "--split-points",
    default=None,
    metavar="A,B,C",
    help="Range partitioning at these pk split points (comma separated).",
)
@client_command
def create(
    session: Session,
    name: str,
    ttl_seconds: str | None,
    max_versions: int | None,
    consistency: Consistency | None,
    shards: int | None,
    split_points: str | None,
    expire_interval_s: str | None,
) -> None:
    """Create a table, or update the options given of an existing one.

    Options not given are left as they are (a new table gets the defaults: no TTL,
    1 version, the namespace's consistency, hash partitioning into 16 shards).
    Partitioning cannot change once the table exists.
    """
    ns, tname = split_table(name)
    if shards is not None and split_points is not None:
        raise click.UsageError("give --shards or --split-points, not both")
    partitioning: Any = UNSET
    if shards is not None:
        partitioning = {"kind": "hash", "shards": shards}
    elif split_points is not None:
        points = [p.encode("utf-8", "surrogateescape") for p in split_points.split(",")]
        partitioning = {"kind": "range", "split_points": points}
    desc = session.client.put_table(
        ns,
        tname,
        ttl_seconds=_ttl_option(ttl_seconds),
        max_versions=UNSET if max_versions is None else max_versions,
        consistency=UNSET if consistency is None else consistency,
        partitioning=partitioning,
        expire_interval_s=_interval_option(expire_interval_s),
    )
    session.emit({"table": table_json(desc)}, lambda c: _describe(c, desc))


@table.command("list")
@click.argument("namespace", metavar="NS")
@client_command
def list_(session: Session, namespace: str) -> None:
    """List a namespace's tables with their options and approximate size."""
    found = session.client.tables(namespace)

    def render(console: Console) -> None:
        out = grid("name", "ttl", "versions", "consistency", "partitioning", "cells", "stored")
        for t in found:
            out.add_row(
                Text(t.name),
                _ttl_text(t.ttl_seconds),
                str(t.max_versions),
                t.consistency or "default",
                Text(_partitioning_text(t.partitioning)),
                str(t.stats.approx_cells),
                size(t.stats.approx_bytes),
            )
        console.print(out)
        if not found:
            console.print(Text(f"no tables in {namespace}"))

    session.emit({"tables": [table_json(t) for t in found]}, render)


@table.command("describe")
@click.argument("name", metavar="NS/TABLE")
@client_command
def describe(session: Session, name: str) -> None:
    """Show a table: options, partitioning and approximate size."""
    desc = session.client.table(*split_table(name))
    session.emit({"table": table_json(desc)}, lambda c: _describe(c, desc))


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@table.command("drop")
@click.argument("name", metavar="NS/TABLE")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@client_command
def drop(session: Session, name: str, yes: bool) -> None:
    """Drop a table and all its data (asks first unless --yes).

    Without a terminal to ask on, --yes is required.
    """
    ns, tname = split_table(name)
    if not yes:
        if not _stdin_is_tty():
            raise CliError(
                f"not dropping {name}: stdin is not a terminal to confirm on; pass --yes",
                "confirmation_required",
            )
        click.confirm(f"Drop table {name} and all its data?", abort=True, err=True)
    session.client.drop_table(ns, tname)
    session.emit(
        {"namespace": ns, "table": tname, "dropped": True},
        lambda c: c.print(Text(f"dropped table {name}")),
    )
