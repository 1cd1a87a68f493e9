"""``mussel top``: the busiest keys of a table."""

from __future__ import annotations

from mussel import Client
from tests.cli.conftest import Mussel


def test_top_lists_the_busiest_keys(mussel: Mussel, client: Client, table: str) -> None:
    ns, name = table.split("/")
    client.put(ns, name, "hot", "s", "v")
    for _ in range(20):
        client.get(ns, name, "hot", "s")
    client.get(ns, name, "cold", "s")
    doc = mussel.json("top", table, "--limit", "2")
    assert [k["pk"] for k in doc["keys"]] == ["hot", "cold"]
    assert doc["keys"][0]["per_s"] > doc["keys"][1]["per_s"]
    assert "hot" in mussel.ok("top", table)


def test_top_of_an_unknown_table_fails_clearly(mussel: Mussel, ns: str) -> None:
    assert "table_not_found" in mussel.fails("top", f"{ns}/nope")
