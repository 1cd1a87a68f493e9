"""Output for people: rich tables, timestamps and sizes.

Everything shown goes through ``rich.text.Text``, never markup, so a key or value
that looks like ``[bold]`` is printed as it is. Long values wrap (``fold``); none is
cut short. Machine output is ``--json`` (see ``_session.Session.emit``), never this.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["console", "fields", "grid", "size", "ts_time"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def console() -> Console:
    """A console on the current stdout (so ``CliRunner`` captures it)."""
    return Console(highlight=False)


_NO_WRAP = frozenset({"ts", "time"})


def grid(*columns: str) -> Table:
    """A table with these column headers; long text folds rather than being cut short."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in _NO_WRAP)
    return table


def fields(rows: Iterable[tuple[str, str]]) -> Table:
    """A two-column ``field  value`` table for one resource."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(Text(name), Text(value))
    return table


def ts_time(ts_us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC (``2024-05-01T12:00:00.000001Z``)."""
    try:
        when = _EPOCH + timedelta(microseconds=ts_us)
    except OverflowError:
        return "-"
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def size(nbytes: int | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ...; None is ``unlimited``."""
    if nbytes is None:
        return "unlimited"
    if abs(nbytes) < 1024:
        return f"{nbytes} B"
    value = nbytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
