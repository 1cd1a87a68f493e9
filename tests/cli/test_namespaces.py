"""``mussel ns``: create, list, describe, drop; human and ``--json`` output."""

from __future__ import annotations

from mussel import Client
from tests.cli.conftest import Mussel, fresh

NAMESPACE_KEYS = {"name", "consistency", "quotas", "usage"}
QUOTA_KEYS = {"storage_bytes", "read_qps", "write_qps", "tables"}
USAGE_KEYS = {"bytes", "tables", "read_qps", "write_qps"}


def test_ns_create_prints_the_namespace(mussel: Mussel, client: Client) -> None:
    name = fresh()
    out = mussel.ok("ns", "create", name, "--consistency", "eventual", "--quota", "tables=4")
    assert name in out
    assert "eventual" in out
    assert "unlimited" in out  # quotas not given
    created = client.namespace(name)
    assert created.consistency == "eventual"
    assert created.quotas.tables == 4


def test_ns_create_json_has_every_key_even_unset_quotas(mussel: Mussel) -> None:
    name = fresh()
    doc = mussel.json("ns", "create", name, "--quota", "storage_bytes=1048576")
    ns = doc["namespace"]
    assert set(doc) == {"namespace"}
    assert set(ns) == NAMESPACE_KEYS
    assert set(ns["quotas"]) == QUOTA_KEYS
    assert set(ns["usage"]) == USAGE_KEYS
    assert ns["name"] == name
    assert ns["consistency"] == "strong"
    assert ns["quotas"] == {
        "storage_bytes": 1048576,
        "read_qps": None,
        "write_qps": None,
        "tables": None,
    }


def test_ns_create_twice_updates_only_what_is_given(mussel: Mussel) -> None:
    name = fresh()
    mussel.ok("ns", "create", name, "--consistency", "eventual", "--quota", "tables=2")
    doc = mussel.json("ns", "create", name, "--quota", "tables=none")
    assert doc["namespace"]["consistency"] == "eventual"
    assert doc["namespace"]["quotas"]["tables"] is None


def test_ns_create_with_an_unknown_quota_is_a_usage_error(mussel: Mussel) -> None:
    result = mussel("ns", "create", fresh(), "--quota", "disks=3")
    assert result.exit_code == 2
    assert "storage_bytes" in result.stderr
    result = mussel("ns", "create", fresh(), "--quota", "tables=-1")
    assert result.exit_code == 2


def test_ns_create_with_a_bad_name_fails_with_the_servers_reason(mussel: Mussel) -> None:
    err = mussel.fails("ns", "create", "Bad Name")
    assert err.startswith("mussel: invalid namespace name")
    assert err.endswith("(invalid_request)\n")
    assert err.count("\n") == 1


def test_ns_list_shows_every_namespace(mussel: Mussel, ns: str) -> None:
    assert ns in mussel.ok("ns", "list")
    doc = mussel.json("ns", "list")
    assert set(doc) == {"namespaces"}
    (found,) = [n for n in doc["namespaces"] if n["name"] == ns]
    assert set(found) == NAMESPACE_KEYS


def test_ns_describe_shows_quotas_and_usage(mussel: Mussel, client: Client) -> None:
    name = fresh()
    client.put_namespace(name, quotas={"storage_bytes": 10 << 20})
    client.put_table(name, "t1")
    out = mussel.ok("ns", "describe", name)
    assert "10.0 MiB (10485760 bytes)" in out
    assert "tables" in out
    doc = mussel.json("ns", "describe", name)
    assert doc["namespace"]["usage"]["tables"] == 1
    assert doc["namespace"]["quotas"]["storage_bytes"] == 10 << 20


def test_ns_describe_unknown_namespace_exits_1(mussel: Mussel) -> None:
    err = mussel.fails("ns", "describe", fresh())
    assert err.startswith("mussel: ")
    assert "(namespace_not_found)" in err


def test_ns_drop_removes_an_empty_namespace(mussel: Mussel, client: Client) -> None:
    name = fresh()
    client.put_namespace(name)
    assert f"dropped namespace {name}" in mussel.ok("ns", "drop", name)
    assert name not in [n.name for n in client.namespaces()]
    other = fresh()
    client.put_namespace(other)
    assert mussel.json("ns", "drop", other) == {"namespace": other, "dropped": True}


def test_ns_drop_of_a_namespace_with_tables_exits_1(mussel: Mussel, table: str) -> None:
    ns = table.partition("/")[0]
    assert "(conflict)" in mussel.fails("ns", "drop", ns)
