"""``mussel expire``: run the expiration service on a table now, or report what it did."""

from __future__ import annotations

import time
from typing import Any

import click
import msgspec
from rich.console import Console

from mussel.cli._errors import CliError
from mussel.cli._render import fields, grid, size, ts_time
from mussel.cli._session import Session, client_command, split_table
from mussel.client import Expiration, ExpirationRun, TableDescription

__all__ = ["expire"]


def _run_json(run: ExpirationRun | None) -> dict[str, Any] | None:
    return None if run is None else msgspec.to_builtins(run)


def _expiration_json(t: TableDescription) -> dict[str, Any]:
    e = t.expiration
    return {
        "namespace": t.namespace,
        "table": t.name,
        "ttl_seconds": t.ttl_seconds,
        "max_versions": t.max_versions,
        "expire_interval_s": t.expire_interval_s,
        "state": e.state,
        "running": _run_json(e.running),
        "last_run": _run_json(e.last_run),
        "next_run_us": e.next_run_us,
    }


def _when(ts_us: int | None) -> str:
    return "-" if ts_us is None else ts_time(ts_us)


def _run_rows(run: ExpirationRun) -> list[tuple[str, str]]:
    rows = [
        ("state", run.state + (f" ({run.error})" if run.error else "")),
        ("why", run.reason.replace("_", " ")),
        ("started", _when(run.started_us)),
        ("ended", _when(run.ended_us)),
        ("range subtasks", str(run.subtasks)),
        ("versions examined", f"{run.examined:,}"),
        ("versions removed", f"{run.removed:,}"),
        ("bytes removed (logical)", size(run.removed_bytes)),
        ("range deletes", f"{run.range_deletes:,}"),
        (
            "on disk before",
            "not measured" if run.disk_bytes_before is None else size(run.disk_bytes_before),
        ),
        (
            "on disk after",
            "not measured" if run.disk_bytes_after is None else size(run.disk_bytes_after),
        ),
        ("returned to the file system", _reclaimed_text(run)),
    ]
    if run.throttled_steps:
        rows.append(("slowed for online reads", f"{run.throttled_steps} steps"))
    return rows


def _reclaimed_text(run: ExpirationRun) -> str:
    if run.disk_reclaimed is None:
        return "not measured by this storage backend"
    text = size(run.disk_reclaimed)
    if run.removed_bytes:
        text += f" ({100 * run.disk_reclaimed / run.removed_bytes:.0f}% of the bytes removed)"
    return text


def _statement(t: TableDescription) -> str:
    """What a compliance-minded reader wants to know, in one sentence."""
    run = t.expiration.last_run
    if run is None or run.state != "done" or run.ended_us is None:
        return "No expiration run of this table has completed yet."
    rules = []
    if t.ttl_seconds is not None:
        cutoff = run.started_us - t.ttl_seconds * 1_000_000
        rules.append(f"every version with a timestamp before {ts_time(cutoff)} (TTL)")
    rules.append(f"every version beyond the newest {t.max_versions} of each cell")
    rules.append("every version hidden by a delete or a replace")
    return (
        f"The run that ended {ts_time(run.ended_us)} physically removed "
        + "; ".join(rules)
        + ", as of its start. Reads hide such versions at once; writes made with "
        "older timestamps after a run are removed by the next one."
    )


def _report(console: Console, tables: list[TableDescription]) -> None:
    summary = grid(
        "TABLE",
        "TTL",
        "MAX VERSIONS",
        "STATE",
        "LAST RUN",
        "REMOVED",
        "FREED ON DISK",
        "NEXT RUN",
    )
    for t in tables:
        run = t.expiration.last_run
        summary.add_row(
            f"{t.namespace}/{t.name}",
            "never" if t.ttl_seconds is None else f"{t.ttl_seconds} s",
            str(t.max_versions),
            t.expiration.state,
            "-" if run is None else run.state,
            "-" if run is None else f"{run.removed:,} ({size(run.removed_bytes)})",
            "-" if run is None or run.disk_reclaimed is None else size(run.disk_reclaimed),
            _when(t.expiration.next_run_us),
        )
    console.print(summary)
    for t in tables:
        console.print(f"\n[bold]{t.namespace}/{t.name}[/bold]")
        if t.expiration.last_run is not None:
            console.print(fields(_run_rows(t.expiration.last_run)))
        console.print(_statement(t))


@click.command()
@click.argument("name", metavar="NS/TABLE|NS")
@click.option("--wait", is_flag=True, help="Wait for the run to end and show its figures.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds --wait waits at most.",
)
@click.option(
    "--report",
    is_flag=True,
    help="Start nothing: report the last runs of NS/TABLE, or of every table of NS.",
)
@client_command
def expire(session: Session, name: str, wait: bool, timeout: float, report: bool) -> None:
    """Run expiration on NS/TABLE now (removes expired, surplus and deleted versions
    from disk), or with --report show what the last runs removed."""
    client = session.client
    if report:
        tables = [client.table(*split_table(name))] if "/" in name else client.tables(name)
        session.emit(
            {"tables": [_expiration_json(t) for t in tables]}, lambda c: _report(c, tables)
        )
        return
    ns, table = split_table(name)
    started = client.expire(ns, table)
    desc = client.table(ns, table)
    if wait:
        before = started.last_run.started_us if started.last_run else None
        deadline = time.monotonic() + timeout
        while True:
            desc = client.table(ns, table)
            e: Expiration = desc.expiration
            last = e.last_run
            if e.state == "idle" and last is not None and last.started_us != before:
                break
            if time.monotonic() >= deadline:
                raise CliError(f"the run did not end within {timeout:g} s; it goes on", "timeout")
            time.sleep(0.2)
        if desc.expiration.last_run is not None and desc.expiration.last_run.state == "failed":
            session.emit({"expiration": _expiration_json(desc)}, lambda c: _report(c, [desc]))
            raise CliError(f"the expiration run failed: {desc.expiration.last_run.error}", "failed")

    def render(console: Console) -> None:
        if wait:
            _report(console, [desc])
        else:
            console.print(
                f"expiration of {ns}/{table}: {desc.expiration.state} "
                "(see it with `mussel expire --report " + f"{ns}/{table}`)"
            )

    session.emit({"expiration": _expiration_json(desc)}, render)
