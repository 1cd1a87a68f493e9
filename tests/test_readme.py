"""README.md's five-minute tour and "Command line" section, run against a real server.

A newcomer copies these commands as they stand, so they are run as they stand: every
fenced ``sh`` block of the tour runs in ``bash -euo pipefail``, its ``python`` block in
the venv's Python, the shell commands quoted inline in its prose (```.venv/bin/...```)
and every ``http://localhost:7070/...`` URL it mentions are tried too, in README order,
against one fresh ``mussel serve``. The only changes made to them are listed in
``substitute`` (and ``ENV_NOTE``). A block of another language in these sections fails
the test rather than being skipped, and the test checks that it found at least as many
blocks and commands as the README has today.

Out of scope: the "Set up" section (``make serve`` is what the tour replaces with a
test server), "Security and tenancy" (``--host 0.0.0.0`` with TLS files) and "The
embedded API" (a ``Store`` in ``./data``, covered by the unit tests).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"
TOUR_HEADING = "## Five-minute tour"
CLI_HEADING = "## Command line"
BIN_DIR = Path(sys.executable).parent

ENV_NOTE = """Besides ``substitute``, commands run with:
- ``MUSSEL_URL`` set to the test server (the CLI's default is http://127.0.0.1:7070,
  the same substitution as the one made in the commands' text), ``MUSSEL_TOKEN`` unset;
- a bash function ``curl`` that adds ``--fail-with-body --silent --show-error``, so an
  HTTP error (which plain curl exits 0 on) fails the block;
- the working directory a fresh temporary one (``> users.json`` lands there).
"""

# Shell blocks run in bash; a curl that gets an HTTP error fails the block (ENV_NOTE).
BASH_PRELUDE = 'curl() { command curl --fail-with-body --silent --show-error "$@"; }\n'

# In prose: a command in backticks, or a URL of the server.
PROSE_RUNNABLE = re.compile(r"`([^`\n]+)`|(https?://(?:localhost|127\.0\.0\.1):7070\S*)")

# A line of a shell block that starts one of the commands the README shows.
COMMAND_START = re.compile(r"^(curl |\.venv/bin/|mussel )")


@dataclass(frozen=True)
class Snippet:
    """A runnable piece of the README: ``kind`` is sh, python or url."""

    kind: str
    text: str


def section(markdown: str, heading: str) -> str:
    """The text from the line starting with ``heading`` to the next ``## `` heading."""
    start = markdown.index("\n" + heading) + 1
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else len(markdown)]


def snippets(text: str, *, inline: bool) -> list[Snippet]:
    """Fenced blocks (and with ``inline``, commands in backticks and localhost URLs of
    the prose between them) in document order. A fence other than sh/python raises."""
    found: list[Snippet] = []
    parts = re.split(r"^```(\w*)\n(.*?)^```\s*$", text, flags=re.M | re.S)
    # re.split with two groups: prose, lang, body, prose, lang, body, ..., prose
    for i in range(0, len(parts), 3):
        prose = parts[i]
        if inline:
            for m in PROSE_RUNNABLE.finditer(prose):
                if m.group(1) and COMMAND_START.match(m.group(1)):
                    found.append(Snippet("sh", m.group(1)))
                elif m.group(2):
                    found.append(Snippet("url", m.group(2).rstrip(".,;:)")))
        if i + 2 < len(parts):
            lang, body = parts[i + 1], parts[i + 2]
            if lang not in ("sh", "python"):
                raise AssertionError(f"README block of unknown language {lang!r}:\n{body}")
            found.append(Snippet(lang, body))
    return found


def command_count(blocks: list[Snippet]) -> int:
    """How many commands the shell snippets start (lines opening with curl/mussel)."""
    return sum(
        1
        for b in blocks
        if b.kind == "sh"
        for line in b.text.splitlines()
        if COMMAND_START.match(line.strip())
    )


def substitute(text: str, *, host_port: str, parquet: Path) -> str:
    """Every change made to a README command before it runs, and nothing else:

    1. ``localhost:7070`` and ``127.0.0.1:7070`` (with or without ``http://``): the
       test server's ``127.0.0.1:PORT``;
    2. ``.venv/bin/`` at the start of a path: the directory of ``sys.executable``
       (the venv the tests run in);
    3. ``mussel`` as the first word of a line: that venv's ``mussel``;
    4. ``/tmp/scores.parquet``: a file in the test's temporary directory.
    """
    text = re.sub(r"\b(?:localhost|127\.0\.0\.1):7070\b", host_port, text)
    text = re.sub(r"(?<![\w./-])\.venv/bin/", f"{BIN_DIR}/", text)
    text = re.sub(r"(?m)^(\s*)mussel ", rf"\g<1>{BIN_DIR}/mussel ", text)
    text = text.replace("/tmp/scores.parquet", str(parquet))
    assert "7070" not in text, f"an address left unsubstituted in:\n{text}"
    return text


@dataclass
class Runner:
    """Runs snippets against one server; ``outputs`` pairs each README text with what
    it printed."""

    server: ServerProcess
    workdir: Path
    parquet: Path

    def __post_init__(self) -> None:
        self.outputs: list[tuple[Snippet, str]] = []
        self.env = {k: v for k, v in os.environ.items() if k != "MUSSEL_TOKEN"}
        self.env["MUSSEL_URL"] = self.server.url

    def run(self, snippet: Snippet) -> str:
        """Run one snippet; raise AssertionError with its output if it fails."""
        text = substitute(
            snippet.text, host_port=self.server.url.removeprefix("http://"), parquet=self.parquet
        )
        if snippet.kind == "url":
            with urllib.request.urlopen(text, timeout=30) as resp:
                assert resp.status == 200, text
                out = f"{resp.headers.get('Content-Type')}\n{resp.read().decode()}"
        else:
            if snippet.kind == "sh":
                argv = ["bash", "-euo", "pipefail", "-c", BASH_PRELUDE + text]
            else:
                argv = [sys.executable, "-c", text]
            proc = subprocess.run(
                argv,
                check=False,
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            out = proc.stdout
            assert proc.returncode == 0, (
                f"README {snippet.kind} snippet failed (exit {proc.returncode}):\n{text}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        self.outputs.append((snippet, out))
        return out

    def output_of(self, needle: str, kind: str | None = None) -> str:
        """What the one snippet (of ``kind``) whose README text contains ``needle``
        printed."""
        hits = [
            out for s, out in self.outputs if needle in s.text and (kind is None or s.kind == kind)
        ]
        assert len(hits) == 1, f"{len(hits)} README snippets contain {needle!r}"
        return hits[0]


def _readme_snippets() -> tuple[list[Snippet], list[Snippet]]:
    markdown = README.read_text()
    return (
        snippets(section(markdown, TOUR_HEADING), inline=True),
        snippets(section(markdown, CLI_HEADING), inline=False),
    )


def test_readme_tour_is_found_whole() -> None:
    tour, cli = _readme_snippets()
    kinds = [s.kind for s in tour]
    # As of this writing: 4 sh blocks + 1 inline command, 1 python block, 1 URL.
    assert kinds.count("sh") >= 5, kinds
    assert kinds.count("python") >= 1, kinds
    assert kinds.count("url") >= 1, kinds
    assert command_count(tour) >= 11
    assert [s.kind for s in cli] == ["sh"]
    assert command_count(cli) >= 5


def test_substitute_changes_only_what_it_lists(tmp_path: Path) -> None:
    pq = tmp_path / "s.parquet"
    text = (
        "curl localhost:7070/x http://127.0.0.1:7070/y\n"
        ".venv/bin/mussel load /tmp/scores.parquet\n"
        "  mussel get a/b c  # mussel stays here\n"
    )
    assert substitute(text, host_port="127.0.0.1:5", parquet=pq) == (
        "curl 127.0.0.1:5/x http://127.0.0.1:5/y\n"
        f"{BIN_DIR}/mussel load {pq}\n"
        f"  {BIN_DIR}/mussel get a/b c  # mussel stays here\n"
    )


def test_readme_tour_runs_verbatim(server: ServerProcess, tmp_path: Path) -> None:
    tour, cli = _readme_snippets()
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    runner = Runner(server, workdir, tmp_path / "scores.parquet")
    for snippet in [*tour, *cli]:
        runner.run(snippet)

    # Written over HTTP, read back over HTTP.
    assert re.search(r'"sk":\s*"name".*"value":\s*"Ada"', runner.output_of("rows/u1?sk=name"))
    assert "Grace" in runner.output_of('mussel.Put("u2", "name", "Grace")')
    assert "Ada" in runner.output_of(".venv/bin/mussel get shop/users u1")
    # The bulk load committed, and u2's score is the loaded value.
    loaded = runner.output_of("mussel load")
    assert "committed" in loaded
    assert re.search(r"^score\s.*\s20\s*$", loaded, flags=re.M), loaded
    assert re.search(r"^state\s+done\s*$", runner.output_of("mussel expire"), flags=re.M)
    # The dashboard shows the namespace and the bulk load.
    page = runner.output_of("/dashboard", kind="url")  # the URL in the prose
    assert page.startswith("text/html")
    data = json.loads(runner.output_of("dashboard/data.json"))
    assert "shop" in [ns["name"] for ns in data["namespaces"]]
    assert [j["state"] for j in data["jobs"] if j["kind"] == "bulkload"] == ["committed"]
    # "Command line": its put is readable in the JSON scan it writes to users.json.
    assert "wrote 1 cell" in runner.output_of("mussel put shop/users u1 email")
    cells = json.loads((workdir / "users.json").read_text())["cells"]
    assert {"pk": "u1", "sk": "email", "value": "a@example.com"}.items() <= cells[0].items()

    # A failing command fails its block (plain curl exits 0 on an HTTP error).
    try:
        runner.run(Snippet("sh", "curl localhost:7070/v1/namespaces/no-such-namespace"))
    except AssertionError as e:
        assert "not_found" in str(e)
    else:
        raise AssertionError("a curl that got a 404 passed")
