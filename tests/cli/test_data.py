"""``mussel put``, ``delete``, ``get``, ``scan``: human and ``--json`` output, keys as
text or base64, cursors followed up to ``--limit``."""

from __future__ import annotations

import base64

import pytest

from mussel import Client, Put
from mussel.cli import data as cli_data
from tests.cli.conftest import Mussel

CELL_KEYS = ["pk", "sk", "ts", "value", "encoding"]

# Bytes no text protocol likes: NUL, 0xff, a lone continuation byte, a bad sequence.
BINARY = b"\x00bin\xff\xfe\x80\xc3\x28"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fill(client: Client, table: str, cells: list[tuple[str, str, str]], ts: int = 1000) -> None:
    ns, name = table.split("/")
    client.write(ns, name, [Put(pk, sk, value, ts) for pk, sk, value in cells], ack="applied")


# -- put and get a cell -----------------------------------------------------------


def test_put_then_get_a_cell(mussel: Mussel, table: str) -> None:
    assert f"wrote 1 cell to {table}" in mussel.ok("put", table, "u1", "email", "a@example.com")
    out = mussel.ok("get", table, "u1", "email")
    assert "email" in out
    assert "a@example.com" in out
    assert "1 cell" in out


def test_get_json_has_stable_keys(mussel: Mussel, table: str) -> None:
    assert mussel.json("put", table, "u1", "name", "Ada", "--ts", "1000") == {"written": 1}
    doc = mussel.json("get", table, "u1", "name")
    assert list(doc) == ["cells", "more"]
    assert doc["cells"] == [
        {"pk": "u1", "sk": "name", "ts": 1000, "value": "Ada", "encoding": "utf-8"}
    ]
    assert doc["more"] is False


def test_get_versions_newest_first(mussel: Mussel, table: str) -> None:
    for ts, value in ((1, "one"), (2, "two"), (3, "three")):
        mussel.ok("put", table, "pk", "sk", value, "--ts", str(ts), "--ack", "applied")
    doc = mussel.json("get", table, "pk", "sk", "--versions", "2")
    assert [(c["ts"], c["value"]) for c in doc["cells"]] == [(3, "three"), (2, "two")]
    out = mussel.ok("get", table, "pk", "sk", "--versions", "3", "--min-ts", "2")
    assert "three" in out
    assert "two" in out
    assert "one" not in out
    assert "1970-01-01T00:00:00.000003Z" in out


def test_get_of_an_absent_cell_prints_no_cells_and_exits_0(mussel: Mussel, table: str) -> None:
    assert mussel.json("get", table, "nobody", "nothing") == {"cells": [], "more": False}
    assert "0 cells" in mussel.ok("get", table, "nobody", "nothing")


def test_values_are_printed_as_they_are_never_as_markup(mussel: Mussel, table: str) -> None:
    mussel.ok("put", table, "u1", "bio", "[bold red]not markup[/]")
    assert "[bold red]not markup[/]" in mussel.ok("get", table, "u1", "bio")


def test_put_empty_sk_and_eventual_read(mussel: Mussel, table: str) -> None:
    mussel.ok("put", table, "u1", "", "empty sk", "--ack", "applied")
    doc = mussel.json("get", table, "u1", "", "--consistency", "eventual")
    assert [c["value"] for c in doc["cells"]] == ["empty sk"]


# -- get a row ----------------------------------------------------------------------


def test_get_a_row_sk_ascending(mussel: Mussel, client: Client, table: str) -> None:
    fill(client, table, [("u1", "b", "2"), ("u1", "a", "1"), ("u1", "c", "3"), ("u2", "a", "x")])
    doc = mussel.json("get", table, "u1")
    assert [(c["pk"], c["sk"], c["value"]) for c in doc["cells"]] == [
        ("u1", "a", "1"),
        ("u1", "b", "2"),
        ("u1", "c", "3"),
    ]
    assert all(list(c) == CELL_KEYS for c in doc["cells"])
    out = mussel.ok("get", table, "u1")
    assert f"{table} row u1: 3 cells" in out


def test_get_a_row_by_sk_prefix_and_range(mussel: Mussel, client: Client, table: str) -> None:
    fill(client, table, [("u1", sk, sk.upper()) for sk in ("aa", "ab", "b", "c", "d")])

    def sks(*args: str) -> list[str]:
        return [c["sk"] for c in mussel.json("get", table, "u1", *args)["cells"]]

    assert sks("--sk-prefix", "a") == ["aa", "ab"]
    assert sks("--sk-start", "b") == ["b", "c", "d"]
    assert sks("--sk-start", "ab", "--sk-end", "c") == ["ab", "b"]


def test_get_a_row_follows_cursors_up_to_limit(
    mussel: Mussel, client: Client, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_data, "PAGE_CELLS", 3)  # several pages from a small row
    fill(client, table, [("u1", f"s{i:02}", str(i)) for i in range(10)])
    doc = mussel.json("get", table, "u1", "--limit", "7")
    assert [c["sk"] for c in doc["cells"]] == [f"s{i:02}" for i in range(7)]
    assert doc["more"] is True
    doc = mussel.json("get", table, "u1", "--limit", "0")
    assert len(doc["cells"]) == 10
    assert doc["more"] is False
    assert "(more: raise --limit)" in mussel.ok("get", table, "u1", "--limit", "4")


def test_get_with_sk_and_a_row_option_is_a_usage_error(mussel: Mussel, table: str) -> None:
    result = mussel("get", table, "u1", "sk", "--sk-prefix", "a")
    assert result.exit_code == 2
    assert "drop SK" in result.stderr


# -- delete ---------------------------------------------------------------------------


def test_delete_a_cell(mussel: Mussel, client: Client, table: str) -> None:
    fill(client, table, [("u1", "a", "1"), ("u1", "b", "2")])
    assert f"deleted 1 cell from {table}" in mussel.ok("delete", table, "u1", "a")
    assert [c["sk"] for c in mussel.json("get", table, "u1")["cells"]] == ["b"]


def test_delete_a_whole_row(mussel: Mussel, client: Client, table: str) -> None:
    fill(client, table, [("u1", "a", "1"), ("u1", "b", "2"), ("u1", "", "e"), ("u2", "a", "x")])
    assert mussel.json("delete", table, "u1", "--ack", "applied") == {"written": 3}
    assert mussel.json("get", table, "u1")["cells"] == []
    assert len(mussel.json("get", table, "u2")["cells"]) == 1
    assert "deleted 0 cells" in mussel.ok("delete", table, "u1")


def test_delete_at_a_ts_hides_only_older_versions(
    mussel: Mussel, client: Client, table: str
) -> None:
    fill(client, table, [("u1", "a", "old")], ts=10)
    fill(client, table, [("u1", "a", "new")], ts=30)
    mussel.ok("delete", table, "u1", "a", "--ts", "20", "--ack", "applied")
    doc = mussel.json("get", table, "u1", "a", "--versions", "3")
    assert [(c["ts"], c["value"]) for c in doc["cells"]] == [(30, "new")]


# -- scan -----------------------------------------------------------------------------


def test_scan_in_pk_sk_order(mussel: Mussel, client: Client, table: str) -> None:
    fill(client, table, [("b", "y", "3"), ("a", "z", "2"), ("a", "x", "1"), ("c", "x", "4")])
    doc = mussel.json("scan", table)
    assert [(c["pk"], c["sk"], c["value"]) for c in doc["cells"]] == [
        ("a", "x", "1"),
        ("a", "z", "2"),
        ("b", "y", "3"),
        ("c", "x", "4"),
    ]
    assert doc["more"] is False
    assert all(list(c) == CELL_KEYS for c in doc["cells"])
    out = mussel.ok("scan", table)
    assert f"scan of {table}: 4 cells" in out
    assert out.splitlines()[0].split() == ["pk", "sk", "ts", "time", "value"]


def test_scan_by_pk_prefix_and_range(mussel: Mussel, client: Client, table: str) -> None:
    fill(client, table, [(pk, "s", pk) for pk in ("a1", "a2", "b1", "b2", "c1")])

    def pks(*args: str) -> list[str]:
        return [c["pk"] for c in mussel.json("scan", table, *args)["cells"]]

    assert pks("--pk-prefix", "b") == ["b1", "b2"]
    assert pks("--pk-start", "a2", "--pk-end", "b2") == ["a2", "b1"]
    assert pks("--pk-start", "b2") == ["b2", "c1"]


def test_scan_follows_cursors_up_to_limit(
    mussel: Mussel, client: Client, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_data, "PAGE_CELLS", 4)
    fill(client, table, [(f"p{i:02}", "s", str(i)) for i in range(15)])
    doc = mussel.json("scan", table, "--limit", "9")
    assert [c["pk"] for c in doc["cells"]] == [f"p{i:02}" for i in range(9)]
    assert doc["more"] is True
    doc = mussel.json("scan", table, "--limit", "0")
    assert len(doc["cells"]) == 15
    assert doc["more"] is False
    assert len(mussel.json("scan", table)["cells"]) == 15  # default limit 100


def test_scan_of_an_unknown_table_exits_1(mussel: Mussel, ns: str) -> None:
    err = mussel.fails("scan", f"{ns}/missing")
    assert err == f"mussel: table {ns}/missing does not exist (table_not_found)\n"
    assert "(table_not_found)" in mussel.fails("put", f"{ns}/missing", "p", "s", "v")
    assert "(table_not_found)" in mussel.fails("get", f"{ns}/missing", "p")
    assert "(table_not_found)" in mussel.fails("delete", f"{ns}/missing", "p", "s")


def test_put_with_an_empty_pk_exits_1(mussel: Mussel, table: str) -> None:
    assert "(invalid_request)" in mussel.fails("put", table, "", "s", "v")


# -- binary keys and values -----------------------------------------------------------


def test_base64_arguments_and_output(mussel: Mussel, client: Client, table: str) -> None:
    ns, name = table.split("/")
    mussel.ok("put", table, b64(b"\xffpk"), b64(b"sk"), b64(BINARY), "--base64")
    assert client.get(ns, name, b"\xffpk", b"sk")[0].value == BINARY
    doc = mussel.json("get", table, b64(b"\xffpk"), b64(b"sk"), "--base64")
    (cell,) = doc["cells"]
    assert (cell["pk"], cell["sk"], cell["value"]) == (b64(b"\xffpk"), b64(b"sk"), b64(BINARY))
    assert cell["encoding"] == "base64"
    # base64url without padding is accepted too
    url_pk = base64.urlsafe_b64encode(b"\xffpk").decode().rstrip("=")
    assert b64(BINARY) in mussel.ok("get", table, url_pk, "--base64")
    assert mussel.json("scan", table, "--base64")["cells"][0]["value"] == b64(BINARY)
    mussel.ok("delete", table, url_pk, b64(b"sk"), "--base64", "--ack", "applied")
    assert client.get(ns, name, b"\xffpk", b"sk") == []


def test_invalid_base64_is_a_usage_error(mussel: Mussel, table: str) -> None:
    result = mussel("put", table, "not base64!", "c2s=", "dg==", "--base64")
    assert result.exit_code == 2
    assert "not valid base64" in result.stderr


def test_non_utf8_output_is_escaped_for_people_and_base64_in_json(
    mussel: Mussel, client: Client, table: str
) -> None:
    ns, name = table.split("/")
    client.put(ns, name, "u1", "bin", BINARY, ts=5)
    client.put(ns, name, "u1", "txt", "plain", ts=5)
    client.put(ns, name, "u1", "esc", "\x1b[2Jcleared", ts=5)
    out = mussel.ok("get", table, "u1")
    assert r"\x00bin\xff\xfe\x80\xc3(" in out
    assert r"\x1b[2Jcleared" in out
    assert "\x1b" not in out
    cells = {c["sk"] if c["encoding"] == "utf-8" else "?": c for c in
             mussel.json("get", table, "u1")["cells"]}  # fmt: skip
    assert cells["txt"]["value"] == "plain"
    assert cells["esc"]["value"] == "\x1b[2Jcleared"  # valid UTF-8 stays text in JSON
    binary = cells["?"]
    assert binary["encoding"] == "base64"
    assert (binary["pk"], binary["sk"], binary["value"]) == (b64(b"u1"), b64(b"bin"), b64(BINARY))
