"""Entry point of the ``mussel`` command: one click group over the library.

::

    mussel serve                                the embedded server     (serve.py)
    mussel ns create|list|describe|drop         namespaces              (namespaces.py)
    mussel table create|list|describe|drop      tables                  (tables.py)
    mussel put|delete|get|scan                  cells                   (data.py)
    mussel load, mussel job list|show|cancel    bulk loads              (load.py)
    mussel dev-cluster                          a local distributed cluster (devcluster.py)
    mussel backup, mussel restore               backups of an embedded server (backup.py)
    mussel version

Every command but ``serve`` talks to a server through ``mussel.client.Client``, the
library users call. A subcommand's module is imported only when it runs (or when
help lists it), so ``mussel serve`` loads neither the HTTP client nor rich, and
``mussel get`` does not load the server. The reference is ``docs/cli.md``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import click

import mussel
from mussel.cli._errors import CliError
from mussel.errors import MusselError

__all__ = ["cli", "main"]

_LAZY: Mapping[str, str] = {
    "serve": "mussel.cli.serve:serve",
    "ns": "mussel.cli.namespaces:ns",
    "table": "mussel.cli.tables:table",
    "put": "mussel.cli.data:put",
    "get": "mussel.cli.data:get",
    "delete": "mussel.cli.data:delete",
    "scan": "mussel.cli.data:scan",
    "expire": "mussel.cli.expire:expire",
    "token": "mussel.cli.tokens:token",
    "top": "mussel.cli.top:top",
    "load": "mussel.cli.load:load",
    "job": "mussel.cli.load:job",
    "dev-cluster": "mussel.cli.devcluster:dev_cluster",
    "backup": "mussel.cli.backup:backup",
    "restore": "mussel.cli.backup:restore",
}


class MusselGroup(click.Group):
    """The root group: lazily loaded subcommands, and no traceback ever reaches the user.

    A ``MusselError`` a command lets out is ``CliError`` (exit status 1); any other
    exception is reported as ``internal`` (``MUSSEL_DEBUG=1`` shows the traceback).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*_LAZY, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except MusselError as exc:
            raise CliError(exc.message, exc.code) from exc
        except Exception as exc:
            if os.environ.get("MUSSEL_DEBUG"):
                raise
            raise CliError(
                f"internal error: {type(exc).__name__}: {exc} (MUSSEL_DEBUG=1 shows the traceback)",
                "internal",
            ) from exc


@click.group(
    name="mussel", cls=MusselGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(mussel.__version__, prog_name="mussel", message="%(prog)s %(version)s")
def cli() -> None:
    """Mussel, a key-value store for derived data: run a server and use it.

    Client commands reach the server at --url (env MUSSEL_URL, default
    http://127.0.0.1:7070). Add --json to any of them for machine output.
    """


@cli.command()
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document.")
def version(json_output: bool) -> None:
    """Print the version of this command."""
    if json_output:
        click.echo(json.dumps({"version": mussel.__version__}))
    else:
        click.echo(f"mussel {mussel.__version__}")


def main(argv: list[str] | None = None) -> int:
    """Run ``mussel`` with ``argv`` (default: the process's); return the exit status."""
    try:
        cli.main(args=argv, prog_name="mussel")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
