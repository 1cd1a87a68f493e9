"""docs/operations.md's configuration reference is what the code accepts and says.

``MUSSEL_UPDATE_DOCS=1`` rewrites the generated part of the doc.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from mussel.cli.config_reference import field_docs, reference, splice
from mussel.cli.serve import CONFIG_SECTIONS, load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_doc_holds_the_generated_reference() -> None:
    text = DOC.read_text()
    expected = splice(text)
    if os.environ.get("MUSSEL_UPDATE_DOCS") and expected != text:
        DOC.write_text(expected)
        text = expected
    assert text == expected, (
        "docs/operations.md's configuration reference is not what the code says; "
        "MUSSEL_UPDATE_DOCS=1 rewrites it"
    )


def test_every_key_is_a_field_with_a_meaning() -> None:
    for section, (cls, keys) in CONFIG_SECTIONS.items():
        names = {f.name for f in dataclasses.fields(cls)}
        docs = field_docs(cls)
        for key in keys:
            assert key in names, f"[{section}] {key} is not a field of {cls.__name__}"
            assert docs.get(key), f"[{section}] {key}: write a docstring under the field"
    assert '| `compression` | string | `"lz4"` |' in reference()


def test_a_file_setting_every_key_to_its_documented_default_loads(tmp_path: Path) -> None:
    lines: list[str] = []
    for section, (cls, keys) in CONFIG_SECTIONS.items():
        lines.append(f"[{section}]")
        defaults = {f.name: f for f in dataclasses.fields(cls)}
        for key in keys:
            value = defaults[key].default
            if value is None or value is dataclasses.MISSING:
                continue
            lines.append(f"{key} = {_toml(value)}")
    path = tmp_path / "mussel.toml"
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # valid TOML
    cfg = load_config(path)
    assert cfg.port == 7070 and cfg.store.limits.max_pk_bytes == 1024


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return f'"{value}"'
    return repr(value)
