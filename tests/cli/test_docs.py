"""Every command has help and a section in docs/cli.md (as sqlite-utils' test_docs.py).

The walk covers the whole click tree, so a new command or option without help or
documentation fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mussel.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "cli.md"
COMMON = {"--url", "--token", "--json", "--help"}


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            if not sub.hidden:
                yield from walk(sub, (*path, name))


def resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


COMMANDS = [path for path in walk(cli) if path]


def sections() -> dict[str, str]:
    """docs/cli.md by ``# `mussel ...` `` heading: the text up to the next heading."""
    out: dict[str, str] = {}
    current = None
    for line in DOCS.read_text().splitlines():
        heading = re.match(r"#+ `(mussel[^`]*)`", line)
        if heading:
            current = heading.group(1)
            out[current] = ""
        elif line.startswith("#"):
            current = None
        elif current is not None:
            out[current] += line + "\n"
    return out


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"serve", "ns", "ns create", "table drop", "put", "get", "scan", "version"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    command = resolve(path)
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: mussel {' '.join(path)}")
    description = (command.help or "").strip()
    assert description, f"mussel {' '.join(path)} has no description"
    assert description.splitlines()[0] in result.stdout
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{param.opts} of mussel {' '.join(path)} has no help"


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_documented_with_an_example(path: tuple[str, ...]) -> None:
    name = "mussel " + " ".join(path)
    docs = sections()
    assert name in docs, f"docs/cli.md has no section for `{name}`"
    text = docs[name]
    command = resolve(path)
    if not isinstance(command, click.Group):
        assert re.search(rf"```sh\n(.*\n)*?\$ {re.escape(name)}\b", text), f"no example of {name}"
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        for opt in param.opts:
            if opt.startswith("--") and opt not in COMMON:
                assert f"`{opt}" in text, f"{opt} of `{name}` is not in its docs/cli.md section"


def test_common_options_are_documented() -> None:
    text = DOCS.read_text()
    for opt in ("--url", "--token", "--json", "--base64", "MUSSEL_URL", "MUSSEL_TOKEN"):
        assert f"`{opt}" in text


def test_readme_links_the_cli_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "## Command line" in readme
    assert "(docs/cli.md)" in readme
