"""SPEC §4 ``GET .../rows/{pk}``: sk, sk_prefix, sk_start/sk_end, min_ts/max_ts, versions,
limit + cursor, consistency; 404 ``key_not_found`` for an absent ``sk=``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.conftest import Api, Table, cells, error_code, values

SKS = ["", "a", "a/1", "a/2", "ab", "b", "b/1", "c", "\u00e9"]  # bytewise order


@pytest.fixture
def row(table: Table) -> Table:
    """Row ``p`` with a cell per SKS (value = sk.upper()), ts 100, 200 and 300 each."""
    records = [
        {"pk": "p", "sk": sk, "value": f"{sk.upper()}@{ts}", "ts": ts}
        for sk in SKS
        for ts in (100, 200, 300)
    ]
    assert table.write(*records).status_code == 200
    return table


def _sks(resp: Any) -> list[str]:
    return [sk for sk, _, _ in cells(resp)]


def test_row_answers_every_cell_ordered_by_sk_bytewise(row: Table) -> None:
    resp = row.row("p")
    body = resp.json()
    assert body["pk"] == "p"
    assert body["cursor"] is None
    assert _sks(resp) == SKS
    assert all(ts == 300 for _, ts, _ in cells(resp)), "newest version only by default"


def test_absent_row_is_200_with_no_cells(table: Table) -> None:
    resp = table.row("nobody")
    assert resp.status_code == 200
    assert resp.json() == {"pk": "nobody", "cells": [], "cursor": None}


def test_sk_selects_one_cell(row: Table) -> None:
    assert cells(row.row("p", {"sk": "a/1"})) == [("a/1", 300, "A/1@300")]
    assert cells(row.row("p", {"sk": ""})) == [("", 300, "@300")]


def test_sk_of_an_absent_cell_is_404_key_not_found(row: Table) -> None:
    for sk in ("zzz", "a/"):
        resp = row.row("p", {"sk": sk})
        assert resp.status_code == 404
        assert error_code(resp) == "key_not_found"
    resp = row.row("nobody", {"sk": "a"})
    assert resp.status_code == 404
    assert error_code(resp) == "key_not_found"


def test_sk_prefix_selects_the_cells_starting_with_it(row: Table) -> None:
    assert _sks(row.row("p", {"sk_prefix": "a"})) == ["a", "a/1", "a/2", "ab"]
    assert _sks(row.row("p", {"sk_prefix": "a/"})) == ["a/1", "a/2"]
    assert _sks(row.row("p", {"sk_prefix": "x"})) == []
    assert _sks(row.row("p", {"sk_prefix": ""})) == SKS


def test_sk_start_and_sk_end_select_a_half_open_range(row: Table) -> None:
    assert _sks(row.row("p", {"sk_start": "a/1", "sk_end": "b"})) == ["a/1", "a/2", "ab"]
    assert _sks(row.row("p", {"sk_start": "b"})) == ["b", "b/1", "c", "\u00e9"]
    assert _sks(row.row("p", {"sk_end": "a/1"})) == ["", "a"]
    assert _sks(row.row("p", {"sk_start": "c", "sk_end": "c"})) == []


def test_min_ts_and_max_ts_select_a_half_open_time_range(row: Table) -> None:
    got = cells(row.row("p", {"sk": "a", "versions": 10, "min_ts": 200}))
    assert got == [("a", 300, "A@300"), ("a", 200, "A@200")]
    got = cells(row.row("p", {"sk": "a", "versions": 10, "max_ts": 300}))
    assert got == [("a", 200, "A@200"), ("a", 100, "A@100")]
    got = cells(row.row("p", {"sk": "a", "versions": 10, "min_ts": 100, "max_ts": 200}))
    assert got == [("a", 100, "A@100")]
    got = cells(row.row("p", {"sk_prefix": "b", "max_ts": 300}))
    assert got == [("b", 200, "B@200"), ("b/1", 200, "B/1@200")]


def test_time_range_without_a_version_in_it_is_404_for_sk(row: Table) -> None:
    resp = row.row("p", {"sk": "a", "min_ts": 301})
    assert resp.status_code == 404
    assert error_code(resp) == "key_not_found"
    assert cells(row.row("p", {"min_ts": 301})) == []


def test_versions_gives_up_to_n_versions_newest_first(row: Table) -> None:
    assert cells(row.row("p", {"sk": "b", "versions": 2})) == [
        ("b", 300, "B@300"),
        ("b", 200, "B@200"),
    ]
    got = cells(row.row("p", {"sk_prefix": "b", "versions": 3}))
    assert got == [("b", ts, f"B@{ts}") for ts in (300, 200, 100)] + [
        ("b/1", ts, f"B/1@{ts}") for ts in (300, 200, 100)
    ]


def _pages(table: Table, pk: str, **params: Any) -> tuple[list[tuple[str, int, str]], int]:
    got: list[tuple[str, int, str]] = []
    cursor = None
    pages = 0
    while True:
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        resp = table.row(pk, query)
        page = cells(resp)
        assert len(page) <= params["limit"]
        got += page
        pages += 1
        cursor = resp.json()["cursor"]
        if cursor is None:
            return got, pages
        assert isinstance(cursor, str) and cursor
        assert pages < 100, "pagination does not end"


@pytest.mark.parametrize("limit", [1, 2, 4, 9, 10])
def test_limit_and_cursor_page_through_the_row_until_cursor_is_null(row: Table, limit: int) -> None:
    full = cells(row.row("p"))
    got, pages = _pages(row, "p", limit=limit)
    assert got == full
    assert pages >= len(full) // limit


def test_pagination_keeps_the_filters_and_versions(row: Table) -> None:
    full = cells(row.row("p", {"sk_prefix": "a", "versions": 3, "min_ts": 200}))
    assert len(full) == 8
    got, _ = _pages(row, "p", limit=3, sk_prefix="a", versions=3, min_ts=200)
    assert got == full


def test_consistency_may_be_given_per_read(row: Table) -> None:
    for consistency in ("strong", "eventual"):
        assert _sks(row.row("p", {"consistency": consistency})) == SKS


def test_pk_may_hold_any_character_percent_encoded(table: Table) -> None:
    pks = ["a/b", "a b", "a?b=c&d", "%41", "..", "ü😀", "a+b", "#x"]
    table.write(*({"pk": pk, "value": pk} for pk in pks))
    for pk in pks:
        resp = table.row(pk)
        assert resp.json()["pk"] == pk
        assert values(resp) == [("", pk)]


@pytest.mark.parametrize(
    "params",
    [
        {"versions": "0"},
        {"versions": "-1"},
        {"versions": "two"},
        {"versions": "1001"},
        {"limit": "0"},
        {"limit": "-3"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"limit": "100000"},
        {"min_ts": "yesterday"},
        {"max_ts": "1e6"},
        {"min_ts": str(2**64)},
        {"consistency": "linearizable"},
        {"cursor": "not-a-cursor"},
        {"cursor": ""},
        {"encoding": "hex"},
        {"colour": "red"},
        {"sk": "a", "skk": "b"},
    ],
)
def test_bad_row_query_parameters_are_400(row: Table, params: dict[str, str]) -> None:
    resp = row.row("p", params)
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "invalid_request"


def test_repeated_query_parameter_is_400(row: Table) -> None:
    resp = row.row("p", "sk=a&sk=b")
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"


def test_cursor_of_another_row_is_400(row: Table) -> None:
    row.write(*({"pk": "q", "sk": f"s{i}", "value": "v"} for i in range(3)))
    cursor = row.row("q", {"limit": 1}).json()["cursor"]
    assert cursor
    resp = row.row("p", {"limit": 1, "cursor": cursor})
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"


def test_cursor_of_a_scan_is_400_for_a_row(row: Table) -> None:
    cursor = row.scan({"limit": 1}).json()["cursor"]
    assert cursor
    resp = row.row("p", {"limit": 1, "cursor": cursor})
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"


def test_row_of_unknown_table_or_namespace_is_404(api: Api, ns: str) -> None:
    resp = api.get(f"/v1/namespaces/{ns}/tables/nope/rows/p")
    assert (resp.status_code, error_code(resp)) == (404, "table_not_found")
    resp = api.get("/v1/namespaces/no-such-ns-r/tables/t/rows/p")
    assert (resp.status_code, error_code(resp)) == (404, "namespace_not_found")
