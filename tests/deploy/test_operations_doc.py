"""docs/operations.md lists every metric a real server exports, with its type, labels
and help text, and names the files and commands of deploy/ that exist.

The metrics table sits between two markers and is generated from the scrape: when the
server's metrics change, run ``MUSSEL_UPDATE_DOCS=1 pytest tests/deploy`` to rewrite
it, then read the diff.
"""

from __future__ import annotations

import os
import re

from tests.deploy.checks import K8S_VERSIONS, REPO
from tests.deploy.conftest import Family, Scrape

DOC = REPO / "docs" / "operations.md"
BEGIN = "<!-- metrics: generated from a real scrape by tests/deploy/test_operations_doc.py -->"
END = "<!-- end of metrics -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def metrics_table(scrape: Scrape) -> str:
    rows = [
        "| metric | type | labels | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for f in sorted(scrape.families.values(), key=lambda f: f.name):
        rows.append(f"| `{f.name}` | {f.type} | {_labels(f)} | {_cell(f.help)}{_series(f)} |")
    return "\n".join(rows)


def _labels(f: Family) -> str:
    return ", ".join(f"`{name}`" for name in sorted(f.labels)) or "none"


def _series(f: Family) -> str:
    if f.type != "histogram":
        return ""
    suffixes = sorted(s.removeprefix(f.name) for s in f.samples)
    return " Series: " + ", ".join(f"`{s}`" for s in suffixes) + " (with `le`)."


def _section(text: str) -> str:
    assert BEGIN in text and END in text, f"docs/operations.md needs the markers {BEGIN!r}"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_the_doc_lists_every_exported_metric(scrape: Scrape) -> None:
    text = DOC.read_text()
    expected = metrics_table(scrape)
    if os.environ.get("MUSSEL_UPDATE_DOCS") and _section(text) != expected:
        head, rest = text.split(BEGIN, 1)
        DOC.write_text(head + BEGIN + "\n\n" + expected + "\n\n" + END + rest.split(END, 1)[1])
        text = DOC.read_text()
    assert _section(text) == expected, (
        "docs/operations.md's metrics table is not what the server exports; "
        "MUSSEL_UPDATE_DOCS=1 rewrites it:\n" + expected
    )
    for name in scrape.families:  # and nothing outside the table contradicts it
        assert f"`{name}`" in text


def test_the_doc_check_can_fail(scrape: Scrape) -> None:
    table = metrics_table(scrape)
    assert "`mussel_requests_total` | counter | `code`, `namespace`, `operation`, `table`" in table
    assert "`mussel_request_duration_seconds` | histogram |" in table
    fewer = Scrape(scrape.text, dict(list(scrape.families.items())[1:]))
    assert metrics_table(fewer) != _section(DOC.read_text())


def test_the_doc_names_only_files_that_exist() -> None:
    text = DOC.read_text()
    for path in set(re.findall(r"`((?:deploy|docs|src|tests)/[\w./-]+)`", text)):
        assert (REPO / path).exists(), path
    for needle in [
        "docker build -f deploy/Dockerfile",
        "kubectl apply -k deploy/kubernetes",
        "deploy/grafana/mussel.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ]:
        assert needle in text, needle
    versions = " and ".join(v.rsplit(".", 1)[0] for v in K8S_VERSIONS)
    assert f"strict JSON schemas of Kubernetes {versions}" in text
