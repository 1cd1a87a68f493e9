"""``mussel backup`` and ``mussel restore``: backups of an embedded server.

``mussel backup NAME`` asks the running server (``POST /v1/admin/backup``, an admin
token's call) to write a consistent backup while it serves, into ``NAME`` inside its
``--backup-dir``. ``mussel backup --data DIR DEST`` backs up the data directory of a
stopped server into the local directory ``DEST``. ``mussel restore BACKUP --data DIR``
checks a backup's files against its manifest and lays it out as a data directory that
``mussel serve --data DIR`` opens. How it works: ``mussel/engine/backup.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from mussel.cli._render import console, fields, size, ts_time
from mussel.cli._session import Session, client_command
from mussel.client import Client

__all__ = ["backup", "restore"]


def _summary(doc: dict[str, Any]) -> list[tuple[str, str]]:
    behind = sum(e - a for a, e in zip(doc["applied"], doc["log_end"], strict=True))
    return [
        ("path", doc["path"]),
        ("taken", ts_time(doc["created_us"])),
        ("files", str(doc["files"])),
        ("size", size(doc["bytes"])),
        ("log records to replay", str(behind)),
    ]


@click.command()
@click.argument("dest", metavar="DEST")
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Back up the data directory of a STOPPED server into the local directory DEST "
    "(no server involved), instead of asking the server at --url.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0),
    default=3600.0,
    show_default=True,
    help="Seconds to wait for the server to finish the backup.",
)
@client_command
def backup(session: Session, dest: str, data: Path | None, timeout: float) -> None:
    """Back up a running embedded server, or a stopped one's data (--data).

    Without --data, DEST is a new directory inside the server's --backup-dir, on the
    server's machine (an admin token's command). The backup holds every write
    acknowledged before it began.
    """
    if data is not None:
        from mussel.engine.backup import create_backup, open_offline  # noqa: PLC0415

        store = open_offline(data)
        try:
            m = create_backup(store, Path(dest))
        finally:
            store.close()
        doc = {
            "path": str(Path(dest).resolve()),
            "created_us": m.created_us,
            "partitions": m.partitions,
            "applied": m.applied,
            "log_end": m.log_end,
            "files": len(m.files),
            "bytes": m.total_bytes,
        }
    else:
        with Client(session.url, token=session.token, timeout=timeout, retries=0) as client:
            made = client.backup(dest)
        doc = {
            "path": made.path,
            "created_us": made.created_us,
            "partitions": made.partitions,
            "applied": made.applied,
            "log_end": made.log_end,
            "files": made.files,
            "bytes": made.bytes,
        }

    def render(out: Console) -> None:
        out.print(fields(_summary(doc)))
        out.print("Backup complete.")

    session.emit({"backup": doc}, render)


@click.command()
@click.argument("backup_dir", metavar="BACKUP", type=click.Path(path_type=Path))
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The data directory to create: new or empty (a non-empty one is refused).",
)
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document.")
def restore(backup_dir: Path, data: Path, json_output: bool) -> None:
    """Restore a backup into a new data directory, checking every file's checksum.

    The restored store is opened once, which replays the backup's log, so that
    `mussel serve --data DIR` starts on it at once.
    """
    from mussel.engine.backup import restore_backup  # noqa: PLC0415 (loads RocksDB)

    m = restore_backup(backup_dir, data)
    doc: dict[str, Any] = {
        "backup": str(backup_dir.resolve()),
        "data": str(data.resolve()),
        "created_us": m.created_us,
        "partitions": m.partitions,
        "files": len(m.files),
        "bytes": m.total_bytes,
    }
    if json_output:
        import json  # noqa: PLC0415

        click.echo(json.dumps({"restored": doc}, indent=2))
        return
    out = console()
    rows = [
        ("data", doc["data"]),
        ("backup taken", ts_time(m.created_us)),
        ("files", str(doc["files"])),
        ("size", size(m.total_bytes)),
    ]
    out.print(fields(rows))
    out.print(f"Restored. Start it with: mussel serve --data {data}")
