"""``CliError``: how every failure reaches the user, ``mussel: <message> (<code>)``.

One line on stderr and exit status 1; never a traceback. The code is the SPEC §5
code of the server's answer (``table_not_found``, ``invalid_request``, ...), or one
of the CLI's own (``confirmation_required``, ``internal``). Usage errors are not
``CliError``: click reports them, with exit status 2.
"""

from __future__ import annotations

from typing import IO, Any

import click

__all__ = ["CliError"]


class CliError(click.ClickException):
    """A failure the user should read: ``mussel: <message> (<code>)``, exit status 1."""

    exit_code = 1

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code

    def format_message(self) -> str:
        return f"mussel: {self.message} ({self.code})"

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=True)
