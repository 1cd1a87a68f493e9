"""``mussel table``: create, list, describe, drop; human and ``--json`` output."""

from __future__ import annotations

import pytest

from mussel import Client
from mussel.cli import tables as cli_tables
from tests.cli.conftest import Mussel, fresh

TABLE_KEYS = {
    "namespace",
    "name",
    "ttl_seconds",
    "max_versions",
    "expire_interval_s",
    "consistency",
    "partitioning",
    "stats",
}


def test_table_create_with_options(mussel: Mussel, client: Client, ns: str) -> None:
    name = f"{ns}/{fresh()}"
    out = mussel.ok(
        "table", "create", name, "--ttl", "3600", "--max-versions", "5", "--consistency",
        "eventual", "--shards", "4",
    )  # fmt: skip
    assert name in out
    assert "3600 s" in out
    assert "hash, 4 shards" in out
    t = client.table(*name.split("/"))
    assert (t.ttl_seconds, t.max_versions, t.consistency) == (3600, 5, "eventual")
    assert t.partitioning.shards == 4


def test_table_create_sets_and_resets_the_expiration_interval(
    mussel: Mussel, ns: str, client: Client
) -> None:
    name = f"{ns}/{fresh()}"
    out = mussel.ok("table", "create", name, "--expire-every", "600")
    assert "every 600 s" in out
    assert client.table(*name.split("/")).expire_interval_s == 600
    t = mussel.json("table", "create", name, "--expire-every", "default")["table"]
    assert t["expire_interval_s"] is None
    err = mussel.fails("table", "create", name, "--expire-every", "soon", code=2)
    assert "'soon' is not a number of seconds or 'default'" in err
    err = mussel.fails("table", "create", name, "--expire-every", "0")
    assert "expire_interval_s" in err and err.endswith("(invalid_request)\n")


def test_table_create_json_has_every_key(mussel: Mussel, ns: str) -> None:
    name = fresh()
    doc = mussel.json("table", "create", f"{ns}/{name}", "--split-points", "g,p")
    t = doc["table"]
    assert set(doc) == {"table"}
    assert set(t) == TABLE_KEYS
    assert (t["namespace"], t["name"]) == (ns, name)
    assert t["ttl_seconds"] is None
    assert t["max_versions"] == 1
    assert t["consistency"] is None  # the namespace's default
    assert t["partitioning"] == {
        "kind": "range",
        "shards": None,
        "split_points": ["g", "p"],
        "encoding": "utf-8",
    }
    assert set(t["stats"]) == {"approx_cells", "approx_bytes"}


def test_table_create_again_updates_only_what_is_given(mussel: Mussel, ns: str) -> None:
    name = f"{ns}/{fresh()}"
    mussel.ok("table", "create", name, "--ttl", "60", "--max-versions", "2")
    t = mussel.json("table", "create", name, "--ttl", "none")["table"]
    assert t["ttl_seconds"] is None
    assert t["max_versions"] == 2


def test_table_create_with_shards_and_split_points_is_a_usage_error(
    mussel: Mussel, ns: str
) -> None:
    result = mussel("table", "create", f"{ns}/{fresh()}", "--shards", "2", "--split-points", "a")
    assert result.exit_code == 2
    assert "not both" in result.stderr


@pytest.mark.parametrize("name", ["nodelimiter", "a/b/c", "/t", "ns/"])
def test_a_name_that_is_not_ns_slash_table_is_a_usage_error(mussel: Mussel, name: str) -> None:
    result = mussel("table", "describe", name)
    assert result.exit_code == 2
    assert "NAMESPACE/TABLE" in result.stderr


def test_table_create_with_a_bad_option_exits_1(mussel: Mussel, ns: str) -> None:
    err = mussel.fails("table", "create", f"{ns}/{fresh()}", "--max-versions", "5000")
    assert "max_versions" in err
    assert err.endswith("(invalid_request)\n")
    assert "(invalid_request)" in mussel.fails("table", "create", f"{ns}/Bad")
    assert "(invalid_request)" in mussel.fails("table", "create", f"{ns}/{fresh()}", "--ttl", "0")


def test_table_list_shows_the_namespaces_tables(mussel: Mussel, client: Client, ns: str) -> None:
    client.put_table(ns, "alpha", ttl_seconds=60)
    client.put_table(ns, "beta")
    out = mussel.ok("table", "list", ns)
    assert "alpha" in out
    assert "beta" in out
    assert "60 s" in out
    doc = mussel.json("table", "list", ns)
    assert [t["name"] for t in doc["tables"]] == ["alpha", "beta"]
    assert all(set(t) == TABLE_KEYS for t in doc["tables"])


def test_table_list_of_an_empty_namespace(mussel: Mussel, ns: str) -> None:
    assert f"no tables in {ns}" in mussel.ok("table", "list", ns)
    assert mussel.json("table", "list", ns) == {"tables": []}


def test_table_describe(mussel: Mussel, table: str) -> None:
    out = mussel.ok("table", "describe", table)
    assert table in out
    assert "never expires" in out
    assert "the namespace's default" in out
    doc = mussel.json("table", "describe", table)
    assert doc["table"]["max_versions"] == 3
    assert doc["table"]["partitioning"]["kind"] == "hash"
    assert doc["table"]["partitioning"]["split_points"] is None


def test_unknown_table_exits_1_with_the_servers_message(mussel: Mussel, ns: str) -> None:
    err = mussel.fails("table", "describe", f"{ns}/nope")
    assert err == f"mussel: table {ns}/nope does not exist (table_not_found)\n"
    assert "(namespace_not_found)" in mussel.fails("table", "list", fresh())


def test_table_drop_without_a_terminal_needs_yes(
    mussel: Mussel, client: Client, table: str
) -> None:
    err = mussel.fails("table", "drop", table)
    assert "pass --yes" in err
    assert "(confirmation_required)" in err
    client.table(*table.split("/"))  # still there
    assert f"dropped table {table}" in mussel.ok("table", "drop", table, "--yes")
    assert "(table_not_found)" in mussel.fails("table", "describe", table)


def test_table_drop_json(mussel: Mussel, table: str) -> None:
    ns, name = table.split("/")
    doc = mussel.json("table", "drop", table, "-y")
    assert doc == {"namespace": ns, "table": name, "dropped": True}


def test_table_drop_asks_on_a_terminal(
    mussel: Mussel, client: Client, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_tables, "_stdin_is_tty", lambda: True)
    result = mussel("table", "drop", table, input="n\n")
    assert result.exit_code == 1
    assert "Drop table" in result.stderr
    client.table(*table.split("/"))  # still there
    result = mussel("table", "drop", table, input="y\n")
    assert result.exit_code == 0, result.output
    assert f"dropped table {table}" in result.stdout
