"""SPEC §4 ``GET .../scan``: pk_start/pk_end, pk_prefix, limit + cursor (export)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.conftest import Api, Table, error_code

PKS = ["a", "a1", "a2", "ab", "b", "b1", "c", "\u00e9"]


@pytest.fixture
def filled(table: Table) -> Table:
    records = [
        {"pk": pk, "sk": sk, "value": f"{pk}.{sk}", "ts": ts}
        for pk in PKS
        for sk in ("x", "y")
        for ts in (1, 2)
    ]
    # applied: the eventual-read tests must see it too (SPEC §3: eventual reads may
    # miss writes that are only durable)
    assert table.write(*records, ack="applied").status_code == 200
    return table


def _cells(resp: Any) -> list[tuple[str, str, int, str]]:
    assert resp.status_code == 200, resp.text
    return [(c["pk"], c["sk"], c["ts"], c["value"]) for c in resp.json()["cells"]]


def _pks(resp: Any) -> list[str]:
    out: list[str] = []
    for pk, *_ in _cells(resp):
        if not out or out[-1] != pk:
            out.append(pk)
    return out


def test_scan_answers_every_cell_in_pk_then_sk_order(filled: Table) -> None:
    resp = filled.scan()
    assert resp.json()["cursor"] is None
    got = _cells(resp)
    assert got == [(pk, sk, 2, f"{pk}.{sk}") for pk in PKS for sk in ("x", "y")]


def test_scan_of_an_empty_table_is_empty(table: Table) -> None:
    assert table.scan().json() == {"cells": [], "cursor": None}


def test_scan_pk_start_and_pk_end_select_a_half_open_range(filled: Table) -> None:
    assert _pks(filled.scan({"pk_start": "a2", "pk_end": "b1"})) == ["a2", "ab", "b"]
    assert _pks(filled.scan({"pk_start": "b"})) == ["b", "b1", "c", "\u00e9"]
    assert _pks(filled.scan({"pk_end": "a2"})) == ["a", "a1"]
    assert _pks(filled.scan({"pk_start": "zz"})) == ["\u00e9"]


def test_scan_pk_prefix_selects_the_rows_starting_with_it(filled: Table) -> None:
    assert _pks(filled.scan({"pk_prefix": "a"})) == ["a", "a1", "a2", "ab"]
    assert _pks(filled.scan({"pk_prefix": "b1"})) == ["b1"]
    assert _pks(filled.scan({"pk_prefix": "q"})) == []


def test_scan_versions_and_time_range(filled: Table) -> None:
    got = _cells(filled.scan({"pk_prefix": "c", "versions": 5}))
    assert got == [("c", sk, ts, f"c.{sk}") for sk in ("x", "y") for ts in (2, 1)]
    got = _cells(filled.scan({"pk_prefix": "c", "max_ts": 2}))
    assert got == [("c", "x", 1, "c.x"), ("c", "y", 1, "c.y")]


def _pages(table: Table, **params: Any) -> list[tuple[str, str, int, str]]:
    got: list[tuple[str, str, int, str]] = []
    cursor = None
    for _ in range(200):
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        resp = table.scan(query)
        page = _cells(resp)
        assert len(page) <= params["limit"]
        got += page
        cursor = resp.json()["cursor"]
        if cursor is None:
            return got
    raise AssertionError("pagination does not end")


@pytest.mark.parametrize("limit", [1, 3, 5, 16, 1000])
def test_scan_limit_and_cursor_export_the_table_until_cursor_is_null(
    filled: Table, limit: int
) -> None:
    assert _pages(filled, limit=limit) == _cells(filled.scan())


def test_scan_pagination_keeps_the_range_and_versions(filled: Table) -> None:
    full = _cells(filled.scan({"pk_start": "a1", "pk_end": "c", "versions": 2}))
    assert len(full) == 5 * 4
    assert _pages(filled, limit=5, pk_start="a1", pk_end="c", versions=2) == full


def test_scan_exports_a_larger_table_exactly_once(table: Table) -> None:
    records = [
        {"pk": f"k{i:04}", "sk": f"s{j}", "value": "v"} for i in range(600) for j in range(2)
    ]
    assert table.write(*records).status_code == 200
    got = _pages(table, limit=250)
    assert [(pk, sk) for pk, sk, _, _ in got] == [(r["pk"], r["sk"]) for r in records]


@pytest.mark.parametrize("consistency", ["strong", "eventual"])
def test_scan_takes_a_consistency(filled: Table, consistency: str) -> None:
    assert _pks(filled.scan({"consistency": consistency})) == PKS


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "lots"},
        {"limit": "100000"},
        {"versions": "0"},
        {"cursor": "garbage"},
        {"consistency": "sometimes"},
        {"pk": "a"},
        {"sk_prefix": "a"},
        {"encoding": "base32"},
    ],
)
def test_bad_scan_query_parameters_are_400(filled: Table, params: dict[str, str]) -> None:
    resp = filled.scan(params)
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "invalid_request"


def test_row_cursor_is_400_for_a_scan(filled: Table) -> None:
    cursor = filled.row("a", {"limit": 1}).json()["cursor"]
    assert cursor
    resp = filled.scan({"cursor": cursor, "limit": 1})
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"


def test_scan_of_unknown_table_or_namespace_is_404(api: Api, ns: str) -> None:
    resp = api.get(f"/v1/namespaces/{ns}/tables/nope/scan")
    assert (resp.status_code, error_code(resp)) == (404, "table_not_found")
    resp = api.get("/v1/namespaces/no-such-ns-s/tables/t/scan")
    assert (resp.status_code, error_code(resp)) == (404, "namespace_not_found")
