"""SPEC §4 tables: PUT (idempotent; 409 on a partitioning change), GET list/one, DELETE."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.contract.conftest import Api, Table, b64, b64url, error_code, values

DEFAULTS = {
    "ttl_seconds": None,
    "max_versions": 1,
    "consistency": None,
    "partitioning": {"kind": "hash", "shards": 16},
}


def _options(t: dict[str, Any]) -> dict[str, Any]:
    return {k: t[k] for k in DEFAULTS}


def test_put_table_creates_it_with_default_options(api: Api, ns: str) -> None:
    resp = api.put(f"/v1/namespaces/{ns}/tables/t", json={})
    assert resp.status_code == 200
    t = resp.json()["table"]
    assert t["namespace"] == ns
    assert t["name"] == "t"
    assert _options(t) == DEFAULTS
    assert t["stats"] == {"approx_cells": 0, "approx_bytes": 0}


def test_put_table_without_body_creates_it(api: Api, ns: str) -> None:
    resp = api.put(f"/v1/namespaces/{ns}/tables/t")
    assert resp.status_code == 200
    assert _options(resp.json()["table"]) == DEFAULTS


def test_put_table_with_every_option(api: Api, ns: str) -> None:
    body = {
        "ttl_seconds": 3600,
        "max_versions": 1000,
        "consistency": "eventual",
        "partitioning": {"kind": "hash", "shards": 4},
    }
    t = api.put(f"/v1/namespaces/{ns}/tables/t", json=body).json()["table"]
    assert _options(t) == body
    assert _options(api.get(f"/v1/namespaces/{ns}/tables/t").json()["table"]) == body


def test_put_table_with_range_partitioning(api: Api, ns: str) -> None:
    part = {"kind": "range", "split_points": ["g", "p"]}
    t = api.put(f"/v1/namespaces/{ns}/tables/t", json={"partitioning": part}).json()["table"]
    assert t["partitioning"] == part


def test_put_table_is_idempotent(api: Api, ns: str) -> None:
    body = {"ttl_seconds": 60, "max_versions": 3, "partitioning": {"kind": "hash", "shards": 8}}
    first = api.put(f"/v1/namespaces/{ns}/tables/t", json=body)
    second = api.put(f"/v1/namespaces/{ns}/tables/t", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(api.get(f"/v1/namespaces/{ns}/tables").json()["tables"]) == 1


def test_put_table_updates_given_options_and_keeps_the_others(api: Api, ns: str) -> None:
    api.put_table(ns, "t", {"ttl_seconds": 60, "max_versions": 3, "consistency": "strong"})
    t = api.put(f"/v1/namespaces/{ns}/tables/t", json={"max_versions": 5}).json()["table"]
    assert (t["ttl_seconds"], t["max_versions"], t["consistency"]) == (60, 5, "strong")
    t = api.put(f"/v1/namespaces/{ns}/tables/t", json={"ttl_seconds": None}).json()["table"]
    assert (t["ttl_seconds"], t["max_versions"]) == (None, 5)
    t = api.put(f"/v1/namespaces/{ns}/tables/t", json={"consistency": None}).json()["table"]
    assert t["consistency"] is None


def test_put_table_keeps_its_data_when_options_change(api: Api, table: Table) -> None:
    table.put("p", "s", "v")
    api.put(table.path, json={"ttl_seconds": 86400})
    assert values(table.row("p")) == [("s", "v")]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"kind": "hash", "shards": 16}, {"kind": "hash", "shards": 4}),
        ({"kind": "hash", "shards": 4}, {"kind": "range", "split_points": ["m"]}),
        ({"kind": "range", "split_points": ["m"]}, {"kind": "range", "split_points": ["n"]}),
        ({"kind": "range", "split_points": ["m"]}, {"kind": "hash"}),
    ],
)
def test_put_table_is_409_if_partitioning_would_change(
    api: Api, ns: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    api.put_table(ns, "t", {"partitioning": first, "max_versions": 2})
    resp = api.put(
        f"/v1/namespaces/{ns}/tables/t", json={"partitioning": second, "max_versions": 7}
    )
    assert resp.status_code == 409
    assert error_code(resp) == "conflict"
    t = api.get(f"/v1/namespaces/{ns}/tables/t").json()["table"]
    assert t["max_versions"] == 2, "a rejected PUT must change nothing"
    resp = api.put(f"/v1/namespaces/{ns}/tables/t", json={"partitioning": first})
    assert resp.status_code == 200, "the same partitioning again is fine"


@pytest.mark.parametrize(
    "body",
    [
        {"max_versions": 0},
        {"max_versions": 1001},
        {"max_versions": "3"},
        {"max_versions": True},
        {"ttl_seconds": -5},
        {"ttl_seconds": 0},
        {"ttl_seconds": 1.5},
        {"consistency": "linearizable"},
        {"partitioning": {"kind": "round-robin"}},
        {"partitioning": {"kind": "hash", "shards": 0}},
        {"partitioning": {"kind": "hash", "shards": "4"}},
        {"partitioning": {"kind": "hash", "split_points": ["a"]}},
        {"partitioning": {"kind": "range", "split_points": ["b", "a"]}},
        {"partitioning": {"kind": "range", "split_points": [""]}},
        {"partitioning": "hash"},
        {"compression": "zstd"},
        ["max_versions", 3],
    ],
)
def test_put_table_rejects_bad_options(api: Api, ns: str, body: object) -> None:
    resp = api.put(f"/v1/namespaces/{ns}/tables/t", json=body)
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "invalid_request"
    assert api.get(f"/v1/namespaces/{ns}/tables/t").status_code == 404, "a rejected PUT created it"


def test_put_table_in_unknown_namespace_is_404_namespace_not_found(api: Api) -> None:
    resp = api.put("/v1/namespaces/no-such-ns-t/tables/t", json={})
    assert resp.status_code == 404
    assert error_code(resp) == "namespace_not_found"


def test_list_tables_lists_the_namespaces_tables_only(api: Api, ns: str) -> None:
    for name in ("b", "a", "c"):
        api.put_table(ns, name, {"max_versions": 2})
    other = f"{ns[:60]}-x"
    api.put_namespace(other)
    api.put_table(other, "z")
    resp = api.get(f"/v1/namespaces/{ns}/tables")
    assert resp.status_code == 200
    tables = resp.json()["tables"]
    assert sorted(t["name"] for t in tables) == ["a", "b", "c"]
    for t in tables:
        assert t["namespace"] == ns
        assert t["max_versions"] == 2
        assert "stats" in t


def test_list_tables_of_unknown_namespace_is_404(api: Api) -> None:
    resp = api.get("/v1/namespaces/no-such-ns-l/tables")
    assert resp.status_code == 404
    assert error_code(resp) == "namespace_not_found"


def test_get_table_shows_options_and_stats(api: Api, table: Table) -> None:
    rows = [{"pk": f"p{i}", "sk": f"s{j}", "value": "v" * 50} for i in range(10) for j in range(3)]
    assert table.write(*rows, ack="applied").status_code == 200
    t = api.get(table.path).json()["table"]
    assert t["max_versions"] == 3
    assert t["stats"]["approx_cells"] >= 30
    assert t["stats"]["approx_bytes"] >= 30 * 50


def test_get_unknown_table_is_404_table_not_found(api: Api, ns: str) -> None:
    resp = api.get(f"/v1/namespaces/{ns}/tables/nope")
    assert resp.status_code == 404
    assert error_code(resp) == "table_not_found"


def test_get_table_of_unknown_namespace_is_404_namespace_not_found(api: Api) -> None:
    resp = api.get("/v1/namespaces/no-such-ns-g/tables/t")
    assert resp.status_code == 404
    assert error_code(resp) == "namespace_not_found"


def test_delete_table_removes_it_and_its_data(api: Api, table: Table) -> None:
    table.put("p", "s", "v")
    table.put("q", "s", "w")
    resp = api.delete(table.path)
    assert resp.status_code == 200
    assert resp.json() == {"deleted": f"{table.ns}/{table.name}"}
    resp = api.get(table.path)
    assert resp.status_code == 404
    assert error_code(resp) == "table_not_found"
    resp = table.row("p")
    assert resp.status_code == 404
    assert error_code(resp) == "table_not_found"
    assert api.get(f"/v1/namespaces/{table.ns}/tables").json()["tables"] == []


def test_recreated_table_is_empty(api: Api, table: Table) -> None:
    table.write(*({"pk": f"p{i}", "sk": "s", "value": "v"} for i in range(20)), ack="applied")
    assert api.delete(table.path).status_code == 200
    again = api.put_table(table.ns, table.name)
    assert values(again.row("p1")) == []
    scan = again.scan()
    assert scan.json() == {"cells": [], "cursor": None}
    assert api.get(again.path).json()["table"]["stats"] == {"approx_cells": 0, "approx_bytes": 0}
    assert _options(api.get(again.path).json()["table"]) == DEFAULTS


def test_delete_unknown_table_is_404(api: Api, ns: str) -> None:
    resp = api.delete(f"/v1/namespaces/{ns}/tables/nope")
    assert resp.status_code == 404
    assert error_code(resp) == "table_not_found"


def test_binary_split_points_round_trip_in_msgpack_and_base64(api: Api, ns: str) -> None:
    point = b"\xff\x00k"
    body = msgspec.msgpack.encode({"partitioning": {"kind": "range", "split_points": [point]}})
    path = f"/v1/namespaces/{ns}/tables/t"
    resp = api.put(path, content=body, headers={"content-type": "application/msgpack"})
    assert resp.status_code == 400, "a JSON answer cannot carry that split point"
    assert "base64" in resp.json()["error"]["message"]
    assert api.get(path).status_code == 404, "a rejected PUT must create nothing"
    resp = api.put(
        path, content=body, headers={"content-type": "application/msgpack"}, accept_msgpack=True
    )
    assert resp.status_code == 200
    got = msgspec.msgpack.decode(resp.content)["table"]["partitioning"]
    assert got == {"kind": "range", "split_points": [point]}
    resp = api.get(path, params={"encoding": "base64"})
    assert resp.status_code == 200
    assert resp.json()["table"]["partitioning"]["split_points"] == [b64(point)]
    resp = api.get(path)
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"


def test_split_points_may_be_given_in_base64(api: Api, ns: str) -> None:
    part = {"kind": "range", "split_points": [b64url(b"\x00\x01"), b64(b"\xfa\xfb\xfc")]}
    resp = api.put(
        f"/v1/namespaces/{ns}/tables/t", json={"partitioning": part}, params={"encoding": "base64"}
    )
    assert resp.status_code == 200
    got = resp.json()["table"]["partitioning"]["split_points"]
    assert got == [b64(b"\x00\x01"), b64(b"\xfa\xfb\xfc")]


def test_table_endpoints_reject_unknown_query_parameters(api: Api, table: Table) -> None:
    resp = api.delete(table.path, params={"cascade": "1"})
    assert (resp.status_code, error_code(resp)) == (400, "invalid_request")
    assert api.get(table.path).status_code == 200, "nothing deleted"
    resp = api.put(table.path, json={"max_versions": 9}, params={"dry_run": "1"})
    assert (resp.status_code, error_code(resp)) == (400, "invalid_request")
    assert api.get(table.path).json()["table"]["max_versions"] == 3, "nothing changed"
    assert api.get(table.path, params={"verbose": "1"}).status_code == 400
    assert api.get(f"/v1/namespaces/{table.ns}/tables", params={"limit": "1"}).status_code == 400
