"""``mussel ns``: create, list, describe and drop namespaces (tenants)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.text import Text

from mussel.cli._render import fields, grid, size
from mussel.cli._session import Session, client_command
from mussel.client import NamespaceDescription
from mussel.model import CONSISTENCIES, Consistency, Quotas

__all__ = ["namespace_json", "ns"]

QUOTAS: tuple[str, ...] = Quotas.__struct_fields__


def _quotas(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, int | None], ...]:
    """``--quota NAME=N`` (N a non-negative integer) or ``NAME=none`` (unlimited)."""
    out: list[tuple[str, int | None]] = []
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or name not in QUOTAS:
            raise click.BadParameter(
                f"{value!r}: expected NAME=N with NAME one of {', '.join(QUOTAS)}", ctx, param
            )
        if raw.lower() in ("none", "unlimited"):
            out.append((name, None))
            continue
        try:
            number = int(raw)
        except ValueError:
            number = -1
        if number < 0:
            raise click.BadParameter(
                f"{value!r}: a quota is a non-negative integer or 'none'", ctx, param
            )
        out.append((name, number))
    return tuple(out)


def namespace_json(ns: NamespaceDescription) -> dict[str, Any]:
    """The namespace as SPEC §4 shapes it, every key always present."""
    return {
        "name": ns.name,
        "consistency": ns.consistency,
        "quotas": {name: getattr(ns.quotas, name) for name in QUOTAS},
        "usage": {
            "bytes": ns.usage.bytes,
            "tables": ns.usage.tables,
            "read_qps": ns.usage.read_qps,
            "write_qps": ns.usage.write_qps,
        },
    }


def _quota_text(name: str, value: int | None) -> str:
    if value is None:
        return "unlimited"
    if name == "storage_bytes" and value >= 1024:
        return f"{size(value)} ({value} bytes)"
    return str(value)


def _describe(console: Console, ns: NamespaceDescription) -> None:
    rows = [("name", ns.name), ("consistency", ns.consistency)]
    rows += [(f"quota {name}", _quota_text(name, getattr(ns.quotas, name))) for name in QUOTAS]
    rows += [
        ("tables", str(ns.usage.tables)),
        ("stored", size(ns.usage.bytes)),
        ("reads/s", f"{ns.usage.read_qps:g}"),
        ("writes/s", f"{ns.usage.write_qps:g}"),
    ]
    console.print(fields(rows))


@click.group()
def ns() -> None:
    """Create, list, describe and drop namespaces (tenants)."""


@ns.command("create")
@click.argument("name")
@click.option(
    "--consistency",
    type=click.Choice(CONSISTENCIES),
    default=None,
    help="Default read consistency of the namespace's tables (new namespaces: strong).",
)
@click.option(
    "--quota",
    "quotas",
    metavar="NAME=N",
    multiple=True,
    callback=_quotas,
    help=f"A quota, NAME=N or NAME=none (repeatable); NAME is one of {', '.join(QUOTAS)}.",
)
@client_command
def create(
    session: Session,
    name: str,
    consistency: Consistency | None,
    quotas: tuple[tuple[str, int | None], ...],
) -> None:
    """Create a namespace, or update the settings given of an existing one.

    Settings not given are left as they are, so running it twice is harmless.
    """
    desc = session.client.put_namespace(
        name,
        consistency=consistency,
        quotas=dict(quotas) if quotas else None,
    )
    session.emit({"namespace": namespace_json(desc)}, lambda c: _describe(c, desc))


@ns.command("list")
@client_command
def list_(session: Session) -> None:
    """List the namespaces with their consistency, tables and bytes stored."""
    found = session.client.namespaces()

    def render(console: Console) -> None:
        table = grid("name", "consistency", "tables", "stored")
        for n in found:
            table.add_row(
                Text(n.name), Text(n.consistency), Text(str(n.usage.tables)), size(n.usage.bytes)
            )
        console.print(table)
        if not found:
            console.print("no namespaces")

    session.emit({"namespaces": [namespace_json(n) for n in found]}, render)


@ns.command("describe")
@click.argument("name")
@client_command
def describe(session: Session, name: str) -> None:
    """Show a namespace: consistency, quotas and usage."""
    desc = session.client.namespace(name)
    session.emit({"namespace": namespace_json(desc)}, lambda c: _describe(c, desc))


@ns.command("drop")
@click.argument("name")
@client_command
def drop(session: Session, name: str) -> None:
    """Drop an empty namespace (it fails while the namespace has tables)."""
    session.client.drop_namespace(name)
    session.emit(
        {"namespace": name, "dropped": True},
        lambda c: c.print(Text(f"dropped namespace {name}")),
    )
