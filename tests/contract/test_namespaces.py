"""SPEC §4 namespaces: PUT (idempotent create-or-update), GET list, GET one, DELETE."""

from __future__ import annotations

import pytest

from tests.contract.conftest import Api, error_code, unique_name

NO_QUOTAS = {"storage_bytes": None, "read_qps": None, "write_qps": None, "tables": None}


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return unique_name(request)


def test_put_namespace_creates_it_with_defaults(api: Api, name: str) -> None:
    resp = api.put(f"/v1/namespaces/{name}")
    assert resp.status_code == 200
    ns = resp.json()["namespace"]
    assert ns["name"] == name
    assert ns["consistency"] == "strong"
    assert ns["quotas"] == NO_QUOTAS
    assert ns["usage"]["bytes"] == 0
    assert ns["usage"]["tables"] == 0


def test_put_namespace_is_idempotent(api: Api, name: str) -> None:
    body = {"consistency": "eventual", "quotas": {"tables": 5}}
    first = api.put(f"/v1/namespaces/{name}", json=body)
    second = api.put(f"/v1/namespaces/{name}", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert [n["name"] for n in api.get("/v1/namespaces").json()["namespaces"]].count(name) == 1


def test_put_namespace_updates_given_fields_and_keeps_the_others(api: Api, name: str) -> None:
    api.put_namespace(name, {"consistency": "eventual", "quotas": {"read_qps": 100}})
    ns = api.put_namespace(name, {"quotas": {"write_qps": 7}})
    assert ns["consistency"] == "eventual"
    assert ns["quotas"] == {**NO_QUOTAS, "read_qps": 100, "write_qps": 7}
    ns = api.put_namespace(name, {"consistency": "strong"})
    assert ns["consistency"] == "strong"
    assert ns["quotas"]["read_qps"] == 100
    ns = api.put_namespace(name, {"quotas": {"read_qps": None}})
    assert ns["quotas"]["read_qps"] is None
    ns = api.put_namespace(name)  # no body: nothing changes
    assert ns["quotas"] == {**NO_QUOTAS, "write_qps": 7}


def test_put_namespace_sets_every_quota(api: Api, name: str) -> None:
    quotas = {"storage_bytes": 10 << 30, "read_qps": 1000, "write_qps": 500, "tables": 20}
    ns = api.put_namespace(name, {"quotas": quotas})
    assert ns["quotas"] == quotas
    assert api.get(f"/v1/namespaces/{name}").json()["namespace"]["quotas"] == quotas


@pytest.mark.parametrize(
    "body",
    [
        {"consistency": "sometimes"},
        {"consistency": 1},
        {"quotas": {"tables": -1}},
        {"quotas": {"tables": "many"}},
        {"quotas": {"disk": 5}},
        {"quotas": []},
        {"color": "blue"},
        [],
        "strong",
    ],
)
def test_put_namespace_rejects_bad_bodies(api: Api, name: str, body: object) -> None:
    resp = api.put(f"/v1/namespaces/{name}", json=body)
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"
    assert api.get(f"/v1/namespaces/{name}").status_code == 404, "a rejected PUT created it"


def test_list_namespaces_lists_every_namespace_once(
    api: Api, request: pytest.FixtureRequest
) -> None:
    names = [unique_name(request, f"{i}-") for i in range(3)]
    for n in names:
        api.put_namespace(n)
    listed = api.get("/v1/namespaces").json()["namespaces"]
    got = [n["name"] for n in listed]
    assert len(got) == len(set(got))
    assert set(names) <= set(got)
    for n in listed:
        assert {"name", "consistency", "quotas", "usage"} <= set(n)


def test_get_namespace_shows_usage_of_its_tables(api: Api, name: str) -> None:
    api.put_namespace(name)
    t1 = api.put_table(name, "a")
    api.put_table(name, "b")
    usage = api.get(f"/v1/namespaces/{name}").json()["namespace"]["usage"]
    assert usage["tables"] == 2
    assert usage["bytes"] == 0
    resp = t1.write(*({"pk": f"p{i}", "value": "x" * 100} for i in range(10)), ack="applied")
    assert resp.status_code == 200
    usage = api.get(f"/v1/namespaces/{name}").json()["namespace"]["usage"]
    assert usage["bytes"] >= 1000
    assert usage["tables"] == 2


def test_get_namespace_shows_read_and_write_rates(api: Api, name: str) -> None:
    api.put_namespace(name)
    t = api.put_table(name, "t")
    for i in range(5):
        assert t.write({"pk": f"p{i}", "value": "v"}).status_code == 200
        assert t.row(f"p{i}").status_code == 200
    usage = api.get(f"/v1/namespaces/{name}").json()["namespace"]["usage"]
    assert usage["write_qps"] > 0
    assert usage["read_qps"] > 0


def test_get_unknown_namespace_is_404_namespace_not_found(api: Api, name: str) -> None:
    resp = api.get(f"/v1/namespaces/{name}")
    assert resp.status_code == 404
    assert error_code(resp) == "namespace_not_found"


def test_delete_namespace_with_tables_is_409_then_200_once_they_are_gone(
    api: Api, name: str
) -> None:
    api.put_namespace(name)
    api.put_table(name, "t")
    resp = api.delete(f"/v1/namespaces/{name}")
    assert resp.status_code == 409
    assert error_code(resp) == "conflict"
    assert api.get(f"/v1/namespaces/{name}").status_code == 200, "a 409 must change nothing"
    assert api.get(f"/v1/namespaces/{name}/tables/t").status_code == 200
    assert api.delete(f"/v1/namespaces/{name}/tables/t").status_code == 200
    resp = api.delete(f"/v1/namespaces/{name}")
    assert resp.status_code == 200
    assert resp.json() == {"deleted": name}
    resp = api.get(f"/v1/namespaces/{name}")
    assert resp.status_code == 404
    assert name not in [n["name"] for n in api.get("/v1/namespaces").json()["namespaces"]]


def test_delete_unknown_namespace_is_404(api: Api, name: str) -> None:
    resp = api.delete(f"/v1/namespaces/{name}")
    assert resp.status_code == 404
    assert error_code(resp) == "namespace_not_found"


def test_deleted_namespace_can_be_created_again_fresh(api: Api, name: str) -> None:
    api.put_namespace(name, {"consistency": "eventual", "quotas": {"tables": 3}})
    assert api.delete(f"/v1/namespaces/{name}").status_code == 200
    ns = api.put_namespace(name)
    assert ns["consistency"] == "strong"
    assert ns["quotas"] == NO_QUOTAS


def test_namespace_endpoints_reject_unknown_query_parameters(api: Api, name: str) -> None:
    resp = api.put(f"/v1/namespaces/{name}", params={"consistency": "eventual"})
    assert (resp.status_code, error_code(resp)) == (400, "invalid_request")
    assert api.get(f"/v1/namespaces/{name}").status_code == 404, "nothing created"
    api.put_namespace(name)
    resp = api.delete(f"/v1/namespaces/{name}", params={"force": "true"})
    assert (resp.status_code, error_code(resp)) == (400, "invalid_request")
    assert api.get(f"/v1/namespaces/{name}").status_code == 200, "nothing deleted"
    assert api.get("/v1/namespaces", params={"limit": "5"}).status_code == 400
