"""``mussel top``: a table's busiest keys right now (why is this namespace throttled?)."""

from __future__ import annotations

import time

import click
from rich.console import Console

from mussel.cli._render import grid
from mussel.cli._session import Session, client_command, split_table
from mussel.client import HotKey

__all__ = ["top"]


def _text(pk: bytes) -> str:
    try:
        return pk.decode("utf-8")
    except UnicodeDecodeError:
        return pk.hex()


@click.command()
@click.argument("name", metavar="NS/TABLE")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="How many keys to show.",
)
@click.option(
    "--watch",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Refresh every this many seconds until Ctrl-C.",
)
@client_command
def top(session: Session, name: str, limit: int, watch: float | None) -> None:
    """The table's busiest pks over the last seconds (reads and writes per second,
    every server process counted), busiest first."""
    ns, table = split_table(name)

    def show(keys: list[HotKey]) -> None:
        doc = {
            "namespace": ns,
            "table": table,
            "keys": [{"pk": _text(k.pk), "per_s": k.per_s} for k in keys],
        }

        def render(console: Console) -> None:
            out = grid("PK", "REQUESTS/S")
            for k in keys:
                out.add_row(_text(k.pk), f"{k.per_s:,.1f}")
            console.print(out)
            if not keys:
                console.print(f"no requests to {ns}/{table} in the last seconds")

        session.emit(doc, render)

    while True:
        show(session.client.hot_keys(ns, table, limit))
        if watch is None:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return
