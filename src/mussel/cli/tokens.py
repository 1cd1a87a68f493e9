"""``mussel token``: create, list and revoke bearer tokens (an admin token's commands)."""

from __future__ import annotations

import click
from rich.console import Console

from mussel.cli._render import fields, grid, ts_time
from mussel.cli._session import Session, client_command

__all__ = ["token"]


@click.group()
def token() -> None:
    """Bearer tokens (servers started with --auth token; needs an admin token)."""


@token.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="admin, NS:read or NS:write (write implies read); repeatable.",
)
@click.option("--name", default="", help="A name to tell the token by.")
@client_command
def create(session: Session, scopes: tuple[str, ...], name: str) -> None:
    """Create a token. Its secret is printed once: keep it, it cannot be shown again."""
    made = session.client.create_token(list(scopes), name)
    doc = {"id": made.id, "name": made.name, "scopes": list(made.scopes), "token": made.token}

    def render(console: Console) -> None:
        rows = [("id", made.id), ("name", made.name or "-")]
        rows += [("scopes", ", ".join(made.scopes)), ("token", made.token)]
        console.print(fields(rows))
        console.print("The token is shown only now: store it safely.")

    session.emit(doc, render)


@token.command("list")
@client_command
def list_(session: Session) -> None:
    """List tokens: ids, names and scopes (never secrets)."""
    found = session.client.tokens()
    doc = {
        "tokens": [
            {"id": t.id, "name": t.name, "scopes": list(t.scopes), "created_us": t.created_us}
            for t in found
        ]
    }

    def render(console: Console) -> None:
        table = grid("ID", "NAME", "SCOPES", "CREATED")
        for t in found:
            table.add_row(t.id, t.name or "-", ", ".join(t.scopes), ts_time(t.created_us))
        console.print(table)

    session.emit(doc, render)


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@client_command
def revoke(session: Session, token_id: str) -> None:
    """Revoke a token: it stops working at once, in every server process."""
    session.client.revoke_token(token_id)
    session.emit({"revoked": token_id}, lambda c: c.print(f"token {token_id} revoked"))
