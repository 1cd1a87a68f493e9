"""The configuration file's reference, generated from its schema.

``CONFIG_SECTIONS`` (``mussel.cli.serve``) names, per ``[section]`` of the TOML file
that ``mussel serve --config`` reads, the dataclass its keys set and the keys it
takes. This module renders that as Markdown: each key's TOML type, its default and
its meaning, which is the docstring written under the field in the dataclass (the
attribute-docstring convention). docs/operations.md holds the output between two
markers, and a test keeps it equal to what this renders, so the reference cannot
drift from the code.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from mussel.cli.serve import CONFIG_SECTIONS

__all__ = ["BEGIN", "END", "field_docs", "reference", "splice"]

BEGIN = "<!-- config-reference: generated from the code; edit the docstrings, not this -->"
END = "<!-- end of config-reference -->"


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Per field of dataclass ``cls``: the string literal right below it, as one line."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, [*body[1:], None], strict=True):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if (
            isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _toml_type(annotation: Any) -> str:
    names = {int: "integer", float: "number", str: "string", bool: "boolean", Path: "path"}
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [_toml_type(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" (optional)" if type(None) in args else "")
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return f'"{value}"'
    return repr(value)


def reference() -> str:
    """The Markdown reference of every section and key (without the markers)."""
    out: list[str] = []
    for section, (cls, keys) in CONFIG_SECTIONS.items():
        hints = typing.get_type_hints(cls)
        by_name = {f.name: f for f in dataclasses.fields(cls)}
        docs = field_docs(cls)
        out += [f"### `[{section}]`", "", "| key | type | default | meaning |"]
        out.append("| --- | --- | --- | --- |")
        for key in keys:
            meaning = docs.get(key, "").replace("``", "`").replace("|", "\\|")
            row = f"`{key}` | {_toml_type(hints[key])} | `{_default(by_name[key])}`"
            out.append(f"| {row} | {meaning} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def splice(doc: str) -> str:
    """``doc`` with the text between the markers replaced by ``reference()``."""
    head, sep, rest = doc.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError("the document lacks the config-reference markers")
    return f"{head}{BEGIN}\n\n{reference()}\n{END}{tail}"
