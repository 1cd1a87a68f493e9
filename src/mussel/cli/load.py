"""``mussel load`` (a bulk load with a progress bar) and ``mussel job list|show|cancel``.

The server reads the source itself: SOURCE is a path or URL as the server sees it.
A job that ends ``failed`` or ``cancelled`` makes ``mussel load`` exit with status 1.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from mussel.cli._errors import CliError
from mussel.cli._render import console, fields, grid, size
from mussel.cli._session import Session, client_command, split_table
from mussel.client import JobDescription

__all__ = ["job", "load"]


def _job_json(j: JobDescription) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": j.id,
        "state": j.state,
        "namespace": j.namespace,
        "table": j.table,
        "source": j.source,
        "mode": j.mode,
        "layout": j.layout,
        "ts": j.ts,
        "progress": {
            "phase": j.progress.phase,
            "rows": j.progress.rows,
            "bytes": j.progress.bytes,
            "fraction": j.progress.fraction,
            "total_rows": j.progress.total_rows,
            "total_bytes": j.progress.total_bytes,
            "cells": j.progress.cells,
            "duplicates_dropped": j.progress.duplicates_dropped,
            "skipped_existing": j.progress.skipped_existing,
        },
        "error": None if j.error is None else {"code": j.error.code, "message": j.error.message},
    }
    return out


def _summary(j: JobDescription) -> str:
    p = j.progress
    text = (
        f"job {j.id} {j.state}: {p.rows:,} rows, {p.cells:,} cells into {j.namespace}/{j.table}"
        f" ({j.mode}), {p.duplicates_dropped:,} duplicates dropped"
    )
    if j.mode == "insert_ignore":
        text += f", {p.skipped_existing:,} existing cells kept"
    if j.error is not None:
        text += f"\nerror ({j.error.code}): {j.error.message}"
    return text


def _parse_columns(values: tuple[str, ...]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for item in values:
        role, sep, name = item.partition("=")
        if not sep or not role or not name:
            raise click.BadParameter(f"{item!r}: expected ROLE=COLUMN", param_hint="'--column'")
        out[role] = name
    return out or None


@click.command()
@click.argument("source")
@click.option("--table", "table_name", required=True, help="Target table, NS/TABLE.")
@click.option(
    "--mode",
    type=click.Choice(("merge", "replace", "insert_ignore")),
    default="merge",
    show_default=True,
    help="merge: upsert; replace: the table becomes the file (plus newer writes); "
    "insert_ignore: only absent cells.",
)
@click.option(
    "--layout",
    type=click.Choice(("cells", "wide")),
    default="cells",
    show_default=True,
    help="cells: pk, sk, value[, ts] columns; wide: a pk column, other columns are cells.",
)
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="ROLE=COLUMN",
    help="Map a role (pk, sk, value, ts) to a column name; repeatable.",
)
@click.option("--ts", type=int, default=None, help="The job's timestamp T (default: now).")
@click.option("--id", "job_id", default=None, help="Client-chosen job id (idempotent retries).")
@click.option("--no-wait", is_flag=True, help="Print the job and return without waiting.")
@client_command
def load(
    session: Session,
    source: str,
    table_name: str,
    mode: str,
    layout: str,
    columns: tuple[str, ...],
    ts: int | None,
    job_id: str | None,
    no_wait: bool,
) -> None:
    """Bulk-load Parquet at SOURCE (a path or URL the server reads) into a table."""
    ns, table = split_table(table_name)
    handle = session.client.bulk_load(
        ns,
        table,
        source,
        mode=mode,
        layout=layout,
        columns=_parse_columns(columns),
        ts=ts,
        job_id=job_id,
    )
    if no_wait:
        session.emit({"job": _job_json(handle.job)}, lambda c: c.print(Text(_summary(handle.job))))
        return
    if session.json:
        final = handle.wait(poll_s=0.5)
    else:
        out = console()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]} rows"),
            TimeRemainingColumn(),
            console=out,
            transient=True,
        ) as bar:
            task = bar.add_task(f"loading {handle.id}", total=1.0, rows="0")

            def show(j: JobDescription) -> None:
                bar.update(
                    task,
                    completed=j.progress.fraction,
                    rows=f"{j.progress.rows:,}",
                    description=f"{j.state} {j.progress.phase}",
                )

            final = handle.wait(poll_s=0.25, on_progress=show)
    session.emit({"job": _job_json(final)}, lambda c: c.print(Text(_summary(final))))
    if final.state != "committed":
        code = final.error.code if final.error else final.state
        raise CliError(f"job {final.id} {final.state}", code)


@click.group()
def job() -> None:
    """Bulk-load jobs: list, show, cancel."""


@job.command("list")
@click.option("--namespace", default=None, help="Only jobs of this namespace.")
@client_command
def list_jobs(session: Session, namespace: str | None) -> None:
    """List jobs, oldest first."""
    jobs = session.client.jobs(namespace)

    def render(c: Console) -> None:
        out = grid("id", "state", "table", "mode", "rows", "fraction")
        for j in jobs:
            out.add_row(
                Text(j.id),
                Text(j.state),
                Text(f"{j.namespace}/{j.table}"),
                Text(j.mode),
                Text(f"{j.progress.rows:,}"),
                Text(f"{j.progress.fraction:.0%}"),
            )
        c.print(out)

    session.emit({"jobs": [_job_json(j) for j in jobs]}, render)


@job.command("show")
@click.argument("job_id")
@client_command
def show(session: Session, job_id: str) -> None:
    """Show one job with its progress."""
    j = session.client.job(job_id)

    def render(c: Console) -> None:
        p = j.progress
        c.print(
            fields(
                [
                    ("id", j.id),
                    ("state", j.state),
                    ("table", f"{j.namespace}/{j.table}"),
                    ("source", j.source),
                    ("mode", j.mode),
                    ("layout", j.layout),
                    ("rows", f"{p.rows:,} of {p.total_rows:,}"),
                    ("bytes", f"{size(p.bytes)} of {size(p.total_bytes)}"),
                    ("fraction", f"{p.fraction:.1%}"),
                    ("duplicates dropped", f"{p.duplicates_dropped:,}"),
                    ("error", "" if j.error is None else f"{j.error.code}: {j.error.message}"),
                ]
            )
        )

    session.emit({"job": _job_json(j)}, render)


@job.command("cancel")
@click.argument("job_id")
@client_command
def cancel(session: Session, job_id: str) -> None:
    """Ask the server to cancel a job (a finished job stays as it is)."""
    j = session.client.cancel_job(job_id)
    session.emit(
        {"job": _job_json(j)}, lambda c: c.print(Text(f"cancel requested: {j.id} ({j.state})"))
    )
