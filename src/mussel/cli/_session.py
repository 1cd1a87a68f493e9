"""What every client command shares: its options, its ``Client``, its errors, its keys.

A client command is declared with :func:`client_command`, which adds the common
options (``--url``/``MUSSEL_URL``, ``--token``/``MUSSEL_TOKEN``, ``--json``) and
calls the command with a :class:`Session` as first argument::

    @ns.command("list")
    @client_command
    def list_(session: Session) -> None:
        session.emit(doc, render)

Errors: every ``MusselError`` the command lets out becomes :class:`CliError`, one
line on stderr, ``mussel: <message> (<code>)``, exit status 1. A server that cannot
be reached at all says so with its URL. Usage errors stay click's (exit status 2).

Keys and values (:class:`Keys`): arguments are UTF-8 text (any bytes the shell
passes survive, through ``surrogateescape``), or base64 with ``--base64``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
import httpx
from rich.console import Console

from mussel.cli._errors import CliError
from mussel.cli._render import console
from mussel.client import Client
from mussel.errors import MusselError, UnavailableError

__all__ = [
    "DEFAULT_URL",
    "Keys",
    "Session",
    "base64_option",
    "client_command",
    "split_table",
]

DEFAULT_URL = "http://127.0.0.1:7070"

# Control characters (but tab and newline) are escaped for people, so that a value
# cannot move the cursor or recolour the terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if chr(c) not in "\t\n"}
_CONTROL.update({c: f"\\u{c:04x}" for c in range(0x80, 0xA0)})

F = TypeVar("F", bound=Callable[..., Any])


def _cli_error(exc: MusselError, url: str) -> CliError:
    """``exc`` for the user; an unreachable server is named by its URL."""
    cause = exc.__cause__
    if isinstance(exc, UnavailableError) and isinstance(cause, httpx.TimeoutException):
        return CliError(f"the server at {url} did not answer in time: {cause}", exc.code)
    if isinstance(exc, UnavailableError) and isinstance(cause, httpx.TransportError):
        return CliError(f"cannot reach the server at {url}: {cause}", exc.code)
    return CliError(exc.message, exc.code)


class Session:
    """One command's connection and output mode.

    ``client`` is created on first use and closed when the command ends.
    """

    def __init__(self, url: str, token: str | None, json_output: bool) -> None:
        self.url = url
        self.token = token
        self.json = json_output
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, token=self.token)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def emit(self, doc: dict[str, Any], render: Callable[[Console], None]) -> None:
        """Print ``doc`` as one JSON document with ``--json``, else ``render`` it for people."""
        if self.json:
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        render(console())


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL", ctx, param)
    return value.rstrip("/")


_COMMON_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--url",
        envvar="MUSSEL_URL",
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        callback=_check_url,
        help="Base URL of the server.",
    ),
    click.option(
        "--token",
        envvar="MUSSEL_TOKEN",
        default=None,
        show_envvar=True,
        help="Bearer token sent to the server.",
    ),
    click.option(
        "--json",
        "json_output",
        is_flag=True,
        help="Print one JSON document (stable keys) instead of tables.",
    ),
]


def client_command(f: Callable[..., None]) -> Callable[..., None]:
    """Add the common options to a command; call it with a ``Session`` first."""

    @functools.wraps(f)
    def run(*args: Any, url: str, token: str | None, json_output: bool, **kwargs: Any) -> None:
        session = Session(url, token, json_output)
        try:
            f(session, *args, **kwargs)
        except MusselError as exc:
            raise _cli_error(exc, url) from exc
        finally:
            session.close()

    out: Callable[..., None] = run
    for option in reversed(_COMMON_OPTIONS):
        out = option(out)
    return out


def base64_option(f: F) -> F:
    return click.option(
        "--base64",
        "use_base64",
        is_flag=True,
        help="Keys and values, in arguments and output, are base64.",
    )(f)


def split_table(value: str) -> tuple[str, str]:
    """``NS/TABLE`` as ``(namespace, table)``; a usage error if it is not that shape."""
    ns, sep, table = value.partition("/")
    if not sep or not ns or not table or "/" in table:
        raise click.BadParameter(f"{value!r}: expected NAMESPACE/TABLE", param_hint="'NS/TABLE'")
    return ns, table


class Keys:
    """Keys and values between the command line and bytes: UTF-8 text, or base64.

    Output that is not valid UTF-8 (without ``--base64``) is shown to people with
    backslash escapes (``\\xff``), as are control characters but tab and newline,
    and written to JSON as base64, with the cell's ``encoding`` field saying so.
    """

    def __init__(self, use_base64: bool) -> None:
        self.base64 = use_base64

    def arg(self, value: str, name: str) -> bytes:
        """A key or value given as an argument, as bytes."""
        if not self.base64:
            return value.encode("utf-8", "surrogateescape")
        text = value.strip().replace("-", "+").replace("_", "/")
        text += "=" * (-len(text) % 4)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise click.BadParameter(f"{value!r} is not valid base64", param_hint=name) from None

    def text(self, data: bytes) -> str:
        """``data`` for people: base64, or text with backslash escapes for invalid UTF-8."""
        if self.base64:
            return base64.b64encode(data).decode("ascii")
        return data.decode("utf-8", "backslashreplace").translate(_CONTROL)

    def json_fields(self, **fields: bytes) -> dict[str, str]:
        """``fields`` as JSON strings plus ``encoding``: ``utf-8``, or ``base64`` for all
        of them when ``--base64`` is given or any one is not valid UTF-8."""
        if not self.base64:
            try:
                out = {name: data.decode("utf-8") for name, data in fields.items()}
            except UnicodeDecodeError:
                pass
            else:
                out["encoding"] = "utf-8"
                return out
        out = {name: base64.b64encode(data).decode("ascii") for name, data in fields.items()}
        out["encoding"] = "base64"
        return out
