"""SPEC §4 ``POST .../get``: one result per key, in order; consistency; versions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.conftest import Api, Table, error_code


@pytest.fixture
def filled(table: Table) -> Table:
    records = [
        {"pk": pk, "sk": sk, "value": f"{pk}.{sk}@{ts}", "ts": ts}
        for pk in ("p1", "p2", "p3")
        for sk in ("a", "b")
        for ts in (10, 20)
    ]
    # applied: the eventual-read tests must see it too (SPEC §3: eventual reads may
    # miss writes that are only durable)
    assert table.write(*records, ack="applied").status_code == 200
    return table


def _results(resp: Any) -> list[tuple[str, list[tuple[str, int, str]]]]:
    assert resp.status_code == 200, resp.text
    return [
        (r["pk"], [(c["sk"], c["ts"], c["value"]) for c in r["cells"]])
        for r in resp.json()["results"]
    ]


def test_multi_get_answers_one_result_per_key_in_order(filled: Table) -> None:
    keys = [
        {"pk": "p3", "sk": "b"},
        {"pk": "p1", "sk": "a"},
        {"pk": "absent", "sk": "a"},
        {"pk": "p2", "sk": "zz"},
        {"pk": "p1", "sk": "a"},
    ]
    got = _results(filled.multi_get({"keys": keys}))
    assert got == [
        ("p3", [("b", 20, "p3.b@20")]),
        ("p1", [("a", 20, "p1.a@20")]),
        ("absent", []),
        ("p2", []),
        ("p1", [("a", 20, "p1.a@20")]),
    ]


def test_multi_get_key_without_sk_answers_the_row(filled: Table) -> None:
    got = _results(filled.multi_get({"keys": [{"pk": "p2"}, {"pk": "nobody"}]}))
    assert got == [("p2", [("a", 20, "p2.a@20"), ("b", 20, "p2.b@20")]), ("nobody", [])]


def test_multi_get_key_with_empty_sk_answers_that_cell(table: Table) -> None:
    table.write({"pk": "p", "value": "root"}, {"pk": "p", "sk": "x", "value": "x"})
    got = _results(table.multi_get({"keys": [{"pk": "p", "sk": ""}]}))
    assert [(pk, [(sk, v) for sk, _, v in cs]) for pk, cs in got] == [("p", [("", "root")])]


def test_multi_get_versions_gives_up_to_n_versions(filled: Table) -> None:
    got = _results(filled.multi_get({"keys": [{"pk": "p1", "sk": "b"}], "versions": 2}))
    assert got == [("p1", [("b", 20, "p1.b@20"), ("b", 10, "p1.b@10")])]


def test_multi_get_with_no_keys_answers_no_results(filled: Table) -> None:
    assert _results(filled.multi_get({"keys": []})) == []


def test_multi_get_of_many_keys(table: Table) -> None:
    table.write(*({"pk": f"p{i}", "value": str(i)} for i in range(300)))
    keys = [{"pk": f"p{i}", "sk": ""} for i in reversed(range(0, 400, 3))]
    got = _results(table.multi_get({"keys": keys}))
    assert [pk for pk, _ in got] == [k["pk"] for k in keys]
    for pk, cs in got:
        i = int(pk[1:])
        assert [v for _, _, v in cs] == ([str(i)] if i < 300 else [])


@pytest.mark.parametrize("consistency", ["strong", "eventual"])
def test_multi_get_takes_a_consistency(filled: Table, consistency: str) -> None:
    body = {"keys": [{"pk": "p1", "sk": "a"}], "consistency": consistency}
    assert _results(filled.multi_get(body)) == [("p1", [("a", 20, "p1.a@20")])]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"keys": None},
        {"keys": "p1"},
        {"keys": [{"sk": "a"}]},
        {"keys": [{"pk": ""}]},
        {"keys": [{"pk": 1}]},
        {"keys": [{"pk": "p", "sk": 1}]},
        {"keys": [{"pk": "p", "value": "v"}]},
        {"keys": [["p", "a"]]},
        {"keys": [{"pk": "p"}], "versions": 0},
        {"keys": [{"pk": "p"}], "versions": "2"},
        {"keys": [{"pk": "p"}], "consistency": "linearizable"},
        {"keys": [{"pk": "p"}], "limit": 3},
    ],
)
def test_multi_get_rejects_bad_bodies_with_400(filled: Table, body: object) -> None:
    resp = filled.multi_get(body)
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "invalid_request"


def test_multi_get_of_unknown_table_or_namespace_is_404(api: Api, ns: str) -> None:
    body = {"keys": [{"pk": "p"}]}
    resp = api.post(f"/v1/namespaces/{ns}/tables/nope/get", json=body)
    assert (resp.status_code, error_code(resp)) == (404, "table_not_found")
    resp = api.post("/v1/namespaces/no-such-ns-m/tables/t/get", json=body)
    assert (resp.status_code, error_code(resp)) == (404, "namespace_not_found")
