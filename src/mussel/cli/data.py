"""``mussel put``, ``delete``, ``get`` and ``scan``: cells of one table (``NS/TABLE``).

Keys and values are UTF-8 text, or base64 with ``--base64`` (see ``_session.Keys``).
Reads follow the server's cursors, a page of at most ``PAGE_CELLS`` at a time, until
``--limit`` cells (0: all of them); ``more`` says whether the server had more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import click
from rich.console import Console
from rich.text import Text

from mussel.cli._render import grid, ts_time
from mussel.cli._session import Keys, Session, base64_option, client_command, split_table
from mussel.model import CONSISTENCIES, Cell, Consistency, Delete, Put, RowPage, ScanCell, ScanPage

__all__ = ["delete", "get", "put", "scan"]

PAGE_CELLS = 1000
"""Cells asked for per request when following cursors."""

DELETE_BATCH = 1000
"""Tombstones per write when deleting a whole row (a row up to this size goes at once)."""

_ts_option = click.option(
    "--ts",
    type=int,
    default=None,
    help="Timestamp in microseconds since the epoch (default: the server's time).",
)
_ack_option = click.option(
    "--ack",
    type=click.Choice(("durable", "applied")),
    default="durable",
    show_default=True,
    help="Return once durable in the log, or once applied and visible to reads.",
)
_consistency_option = click.option(
    "--consistency",
    type=click.Choice(CONSISTENCIES),
    default=None,
    help="Read consistency (default: the table's).",
)
_limit_option = click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Most cells to print, following cursors (0: all).",
)
_time_options = [
    click.option("--min-ts", type=int, default=None, help="Only versions with ts >= this."),
    click.option("--max-ts", type=int, default=None, help="Only versions with ts < this."),
]


def _cell_json(keys: Keys, pk: bytes, cell: Cell | ScanCell) -> dict[str, Any]:
    out: dict[str, Any] = keys.json_fields(pk=pk, sk=cell.sk, value=cell.value)
    out["ts"] = cell.ts
    return {name: out[name] for name in ("pk", "sk", "ts", "value", "encoding")}


def _emit_cells(
    session: Session,
    keys: Keys,
    cells: Sequence[tuple[bytes, Cell | ScanCell]],
    more: bool,
    with_pk: bool,
    caption: str,
) -> None:
    doc = {"cells": [_cell_json(keys, pk, cell) for pk, cell in cells], "more": more}

    def render(console: Console) -> None:
        columns = ("pk", "sk", "ts", "time", "value") if with_pk else ("sk", "ts", "time", "value")
        out = grid(*columns)
        for pk, cell in cells:
            row: list[Text | str] = [Text(keys.text(pk))] if with_pk else []
            row += [Text(keys.text(cell.sk)), str(cell.ts), ts_time(cell.ts)]
            row.append(Text(keys.text(cell.value)))
            out.add_row(*row)
        n = len(cells)
        more_text = " (more: raise --limit)" if more else ""
        console.print(out)
        console.print(Text(f"{caption}: {n} cell{'' if n == 1 else 's'}{more_text}"))

    session.emit(doc, render)


def _follow(
    fetch: Callable[[str | None, int], RowPage | ScanPage], limit: int
) -> tuple[list[Any], bool]:
    """Cells of successive pages until ``limit`` (0: no limit); and whether more remain."""
    cells: list[Any] = []
    cursor: str | None = None
    while True:
        want = PAGE_CELLS if limit == 0 else min(PAGE_CELLS, limit - len(cells))
        page = fetch(cursor, want)
        cells.extend(page.cells)
        cursor = page.cursor
        if cursor is None:
            return cells[:limit] if limit else cells, limit > 0 and len(cells) > limit
        if limit and len(cells) >= limit:
            return cells[:limit], True


@click.command()
@click.argument("name", metavar="NS/TABLE")
@click.argument("pk")
@click.argument("sk")
@click.argument("value")
@_ts_option
@_ack_option
@base64_option
@client_command
def put(
    session: Session,
    name: str,
    pk: str,
    sk: str,
    value: str,
    ts: int | None,
    ack: Literal["durable", "applied"],
    use_base64: bool,
) -> None:
    """Write one cell: VALUE at (PK, SK), a new version.

    SK may be empty (''). A write with an explicit --ts is idempotent.
    """
    ns, tname = split_table(name)
    keys = Keys(use_base64)
    record = Put(keys.arg(pk, "'PK'"), keys.arg(sk, "'SK'"), keys.arg(value, "'VALUE'"), ts)
    written = session.client.write(ns, tname, [record], ack=ack)
    session.emit(
        {"written": written},
        lambda c: c.print(Text(f"wrote {written} cell to {name}")),
    )


@click.command()
@click.argument("name", metavar="NS/TABLE")
@click.argument("pk")
@click.argument("sk", required=False)
@_ts_option
@_ack_option
@base64_option
@client_command
def delete(
    session: Session,
    name: str,
    pk: str,
    sk: str | None,
    ts: int | None,
    ack: Literal["durable", "applied"],
    use_base64: bool,
) -> None:
    """Delete a cell (PK SK), or every cell of a row (PK alone).

    A delete is a tombstone at --ts (default: the server's time): it hides every
    version with a ts up to it. Deleting a row reads its cells first and deletes
    them in one write (batches of 1000 for larger rows).
    """
    ns, tname = split_table(name)
    keys = Keys(use_base64)
    pk_bytes = keys.arg(pk, "'PK'")
    if sk is not None:
        sks = [keys.arg(sk, "'SK'")]
    else:
        cells = session.client.iter_row(ns, tname, pk_bytes, limit=PAGE_CELLS, consistency="strong")
        sks = list(dict.fromkeys(cell.sk for cell in cells))
    written = 0
    for start in range(0, len(sks), DELETE_BATCH):
        batch = [Delete(pk_bytes, s, ts) for s in sks[start : start + DELETE_BATCH]]
        written += session.client.write(ns, tname, batch, ack=ack)
    what = "cell" if written == 1 else "cells"
    session.emit(
        {"written": written},
        lambda c: c.print(Text(f"deleted {written} {what} from {name}")),
    )


@click.command()
@click.argument("name", metavar="NS/TABLE")
@click.argument("pk")
@click.argument("sk", required=False)
@click.option("--versions", type=click.IntRange(min=1), default=1, help="Versions per cell.")
@click.option("--sk-prefix", default=None, help="Row only: cells whose sk starts with this.")
@click.option("--sk-start", default=None, help="Row only: cells with sk >= this.")
@click.option("--sk-end", default=None, help="Row only: cells with sk < this.")
@_limit_option
@_time_options[0]
@_time_options[1]
@_consistency_option
@base64_option
@client_command
def get(
    session: Session,
    name: str,
    pk: str,
    sk: str | None,
    versions: int,
    sk_prefix: str | None,
    sk_start: str | None,
    sk_end: str | None,
    limit: int,
    min_ts: int | None,
    max_ts: int | None,
    consistency: Consistency | None,
    use_base64: bool,
) -> None:
    """Read a cell (PK SK), newest version first, or a row (PK alone), sk ascending.

    An absent cell or row prints no cells (exit status 0).
    """
    ns, tname = split_table(name)
    keys = Keys(use_base64)
    pk_bytes = keys.arg(pk, "'PK'")
    if sk is not None:
        if sk_prefix is not None or sk_start is not None or sk_end is not None:
            raise click.UsageError("--sk-prefix, --sk-start and --sk-end read a row: drop SK")
        found = session.client.get(
            ns,
            tname,
            pk_bytes,
            keys.arg(sk, "'SK'"),
            versions=versions,
            min_ts=min_ts,
            max_ts=max_ts,
            consistency=consistency,
        )
        cells = [(pk_bytes, cell) for cell in found]
        _emit_cells(session, keys, cells, False, False, f"{name} {pk} {sk}")
        return
    prefix = None if sk_prefix is None else keys.arg(sk_prefix, "'--sk-prefix'")
    start = None if sk_start is None else keys.arg(sk_start, "'--sk-start'")
    end = None if sk_end is None else keys.arg(sk_end, "'--sk-end'")

    def fetch(cursor: str | None, page: int) -> RowPage:
        return session.client.row(
            ns,
            tname,
            pk_bytes,
            sk_prefix=prefix,
            sk_start=start,
            sk_end=end,
            min_ts=min_ts,
            max_ts=max_ts,
            versions=versions,
            limit=page,
            cursor=cursor,
            consistency=consistency,
        )

    row, more = _follow(fetch, limit)
    cells = [(pk_bytes, cell) for cell in row]
    _emit_cells(session, keys, cells, more, False, f"{name} row {pk}")


@click.command()
@click.argument("name", metavar="NS/TABLE")
@click.option("--pk-prefix", default=None, help="Only rows whose pk starts with this.")
@click.option("--pk-start", default=None, help="Only rows with pk >= this.")
@click.option("--pk-end", default=None, help="Only rows with pk < this.")
@click.option("--versions", type=click.IntRange(min=1), default=1, help="Versions per cell.")
@_limit_option
@_time_options[0]
@_time_options[1]
@_consistency_option
@base64_option
@client_command
def scan(
    session: Session,
    name: str,
    pk_prefix: str | None,
    pk_start: str | None,
    pk_end: str | None,
    versions: int,
    limit: int,
    min_ts: int | None,
    max_ts: int | None,
    consistency: Consistency | None,
    use_base64: bool,
) -> None:
    """Read a table's cells in (pk, sk) order, following cursors up to --limit."""
    ns, tname = split_table(name)
    keys = Keys(use_base64)
    prefix = None if pk_prefix is None else keys.arg(pk_prefix, "'--pk-prefix'")
    start = None if pk_start is None else keys.arg(pk_start, "'--pk-start'")
    end = None if pk_end is None else keys.arg(pk_end, "'--pk-end'")

    def fetch(cursor: str | None, page: int) -> ScanPage:
        return session.client.scan(
            ns,
            tname,
            pk_prefix=prefix,
            pk_start=start,
            pk_end=end,
            min_ts=min_ts,
            max_ts=max_ts,
            versions=versions,
            limit=page,
            cursor=cursor,
            consistency=consistency,
        )

    found, more = _follow(fetch, limit)
    cells = [(cell.pk, cell) for cell in found]
    _emit_cells(session, keys, cells, more, True, f"scan of {name}")
