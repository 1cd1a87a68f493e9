"""SPEC §4 ``POST .../write``: put/delete batches, defaults, acks, ``{"written": N}``."""

from __future__ import annotations

import json
import time

import pytest

from tests.contract.conftest import Api, Table, cells, error_code, values


def test_write_defaults_op_to_put_and_sk_to_empty(table: Table) -> None:
    resp = table.write({"pk": "p", "value": "v"})
    assert resp.status_code == 200
    assert resp.json() == {"written": 1}
    assert values(table.row("p")) == [("", "v")]
    assert values(table.row("p", {"sk": ""})) == [("", "v")]


def test_write_answers_the_number_of_records_written(table: Table) -> None:
    records = [{"pk": f"p{i}", "sk": "s", "value": str(i)} for i in range(25)]
    records += [{"op": "delete", "pk": "p0", "sk": "s"}, {"op": "delete", "pk": "zz"}]
    resp = table.write(*records)
    assert resp.status_code == 200
    assert resp.json() == {"written": 27}


def test_write_with_ack_durable_is_readable_strongly(table: Table) -> None:
    resp = table.write({"pk": "p", "sk": "s", "value": "v"}, ack="durable")
    assert resp.json() == {"written": 1}
    assert values(table.row("p", {"consistency": "strong"})) == [("s", "v")]


def test_write_with_ack_applied_is_visible_even_to_eventual_reads(table: Table) -> None:
    for i in range(20):
        resp = table.write({"pk": f"p{i}", "sk": "s", "value": f"v{i}"}, ack="applied")
        assert resp.json() == {"written": 1}
        assert values(table.row(f"p{i}", {"consistency": "eventual"})) == [("s", f"v{i}")]


def test_write_without_ts_gets_the_servers_time(table: Table) -> None:
    before = int(time.time() * 1e6)
    table.write({"pk": "p", "value": "v"})
    after = int(time.time() * 1e6)
    ((_, ts, _),) = cells(table.row("p"))
    assert before - 2_000_000 <= ts <= after + 2_000_000


def test_write_keeps_the_explicit_ts(table: Table) -> None:
    table.write({"pk": "p", "sk": "a", "value": "v", "ts": 1_700_000_000_000_000})
    table.write({"pk": "p", "sk": "b", "value": "w", "ts": -5})
    assert cells(table.row("p")) == [("a", 1_700_000_000_000_000, "v"), ("b", -5, "w")]


def test_higher_ts_wins_whatever_the_order_of_writes(table: Table) -> None:
    table.write({"pk": "p", "value": "new", "ts": 200})
    table.write({"pk": "p", "value": "old", "ts": 100})
    assert cells(table.row("p")) == [("", 200, "new")]
    assert cells(table.row("p", {"versions": 5})) == [("", 200, "new"), ("", 100, "old")]


def test_equal_ts_the_later_acknowledged_write_wins(table: Table) -> None:
    table.write({"pk": "p", "value": "first", "ts": 100})
    table.write({"pk": "p", "value": "second", "ts": 100})
    assert cells(table.row("p", {"versions": 5})) == [("", 100, "second")]


def test_retrying_a_write_with_explicit_ts_is_idempotent(table: Table) -> None:
    rec = {"pk": "p", "sk": "s", "value": "v", "ts": 42}
    for _ in range(3):
        assert table.write(rec).json() == {"written": 1}
    assert cells(table.row("p", {"versions": 10})) == [("s", 42, "v")]
    tomb = {"op": "delete", "pk": "p", "sk": "s", "ts": 42}
    for _ in range(2):
        assert table.write(tomb).json() == {"written": 1}
    assert cells(table.row("p", {"versions": 10})) == []


def test_table_keeps_max_versions_newest_first(table: Table) -> None:
    table.write(*({"pk": "p", "value": f"v{ts}", "ts": ts} for ts in range(1, 6)))
    got = cells(table.row("p", {"versions": 10}))
    assert got == [("", 5, "v5"), ("", 4, "v4"), ("", 3, "v3")]


def test_delete_hides_every_version_up_to_its_ts(table: Table) -> None:
    table.write(*({"pk": "p", "sk": "s", "value": f"v{ts}", "ts": ts} for ts in (10, 20, 30)))
    table.write({"op": "delete", "pk": "p", "sk": "s", "ts": 20})
    assert cells(table.row("p", {"versions": 10})) == [("s", 30, "v30")]
    table.write({"op": "delete", "pk": "p", "sk": "s"})  # server time: hides all
    assert cells(table.row("p", {"versions": 10})) == []
    resp = table.row("p", {"sk": "s"})
    assert resp.status_code == 404
    assert error_code(resp) == "key_not_found"


def test_delete_with_lower_ts_than_the_put_hides_nothing(table: Table) -> None:
    table.write({"pk": "p", "value": "v", "ts": 100})
    table.write({"op": "delete", "pk": "p", "ts": 99})
    assert cells(table.row("p")) == [("", 100, "v")]


def test_delete_only_touches_its_own_cell(table: Table) -> None:
    table.write({"pk": "p", "sk": "a", "value": "1"}, {"pk": "p", "sk": "b", "value": "2"})
    table.write({"op": "delete", "pk": "p", "sk": "a"})
    assert values(table.row("p")) == [("b", "2")]


def test_write_of_an_empty_value_is_a_cell(table: Table) -> None:
    table.write({"pk": "p", "sk": "s", "value": ""})
    assert values(table.row("p", {"sk": "s"})) == [("s", "")]


def test_a_batch_writes_to_many_rows_at_once(table: Table) -> None:
    records = [
        {"pk": f"p{i:03}", "sk": f"s{j}", "value": f"{i}.{j}"} for i in range(100) for j in range(5)
    ]
    assert table.write(*records).json() == {"written": 500}
    for i in (0, 57, 99):
        assert values(table.row(f"p{i:03}")) == [(f"s{j}", f"{i}.{j}") for j in range(5)]


@pytest.mark.parametrize(
    "record",
    [
        {"pk": "p"},  # a put needs a value
        {"op": "delete", "pk": "p", "value": "v"},  # a delete takes no value
        {"op": "upsert", "pk": "p", "value": "v"},
        {"op": "PUT", "pk": "p", "value": "v"},
        {"op": None, "pk": "p", "value": "v"},
        {"sk": "s", "value": "v"},  # no pk
        {"pk": "", "value": "v"},
        {"pk": None, "value": "v"},
        {"pk": 5, "value": "v"},
        {"pk": ["p"], "value": "v"},
        {"pk": "p", "sk": 5, "value": "v"},
        {"pk": "p", "value": 5},
        {"pk": "p", "value": {"x": 1}},
        {"pk": "p", "value": "v", "ts": "100"},
        {"pk": "p", "value": "v", "ts": 1.5},
        {"pk": "p", "value": "v", "ts": True},
        {"pk": "p", "value": "v", "ts": 2**63},
        {"pk": "p", "value": "v", "ts": -(2**63) - 1},
        {"pk": "p", "value": "v", "colour": "red"},
    ],
)
def test_write_rejects_a_bad_record_with_400(table: Table, record: dict[str, object]) -> None:
    resp = table.write(record)
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"records": []},
        {"records": None},
        {"records": {"pk": "p", "value": "v"}},
        {"records": [["p", "v"]]},
        {"records": ["p"]},
        {"records": [{"pk": "p", "value": "v"}], "ack": "fsync"},
        {"records": [{"pk": "p", "value": "v"}], "ack": None},
        {"records": [{"pk": "p", "value": "v"}], "consistency": "strong"},
        [{"pk": "p", "value": "v"}],
        "records",
        None,
    ],
)
def test_write_rejects_a_bad_body_with_400(api: Api, table: Table, body: object) -> None:
    resp = api.post(f"{table.path}/write", content=json.dumps(body).encode())
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "invalid_request"
    assert table.scan().json()["cells"] == []


def test_write_without_body_is_400(api: Api, table: Table) -> None:
    resp = api.post(f"{table.path}/write")
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"


def test_write_rejects_unknown_query_parameters(table: Table) -> None:
    resp = table.write({"pk": "p", "value": "v"}, params={"ack": "applied"})
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"
    assert table.scan().json()["cells"] == []


def test_write_to_unknown_table_is_404_table_not_found(api: Api, ns: str) -> None:
    resp = api.post(
        f"/v1/namespaces/{ns}/tables/nope/write", json={"records": [{"pk": "p", "value": "v"}]}
    )
    assert resp.status_code == 404
    assert error_code(resp) == "table_not_found"


def test_write_to_unknown_namespace_is_404_namespace_not_found(api: Api) -> None:
    resp = api.post(
        "/v1/namespaces/no-such-ns-w/tables/t/write", json={"records": [{"pk": "p", "value": "v"}]}
    )
    assert resp.status_code == 404
    assert error_code(resp) == "namespace_not_found"
