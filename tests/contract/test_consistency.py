"""SPEC §3 over HTTP: strong reads see every acknowledged write; eventual reads carry
``Mussel-Staleness-Ms``; defaults per namespace, per table, per request."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.contract.conftest import Api, Table, values

STALENESS = "mussel-staleness-ms"


def _staleness(resp: httpx.Response) -> int:
    assert STALENESS in resp.headers, "an eventual read must carry Mussel-Staleness-Ms"
    ms = int(resp.headers[STALENESS])
    assert ms >= 0
    return ms


def test_strong_read_sees_a_durable_write_at_once(table: Table) -> None:
    for i in range(100):
        resp = table.write({"pk": f"p{i}", "sk": "s", "value": f"v{i}"}, ack="durable")
        assert resp.status_code == 200
        assert values(table.row(f"p{i}", {"consistency": "strong"})) == [("s", f"v{i}")]


def test_strong_read_sees_the_latest_overwrite(table: Table) -> None:
    for i in range(50):
        table.write({"pk": "p", "sk": "s", "value": f"v{i}"})
        assert values(table.row("p", {"sk": "s"})) == [("s", f"v{i}")]


def test_strong_reads_see_writes_acknowledged_to_another_client(api: Api, table: Table) -> None:
    """Read-your-writes across clients: the reader has its own connection."""
    with httpx.Client(base_url=api.url, timeout=30) as reader:
        for i in range(50):
            table.write({"pk": f"p{i}", "value": f"v{i}"})
            resp = reader.get(f"{table.path}/rows/p{i}")
            api.check(resp)
            assert values(resp) == [("", f"v{i}")]
            resp = reader.post(f"{table.path}/get", json={"keys": [{"pk": f"p{i}"}]})
            api.check(resp)
            assert resp.json()["results"][0]["cells"][0]["value"] == f"v{i}"
        resp = reader.get(f"{table.path}/scan")
        api.check(resp)
        assert len(resp.json()["cells"]) == 50


def test_strong_reads_under_concurrent_writers(api: Api, table: Table) -> None:
    errors: list[str] = []

    def writer(w: int) -> None:
        with httpx.Client(base_url=api.url, timeout=30) as c:
            for i in range(25):
                pk = f"w{w}-{i}"
                r = c.post(f"{table.path}/write", json={"records": [{"pk": pk, "value": pk}]})
                if r.status_code != 200:
                    errors.append(f"write {pk}: {r.status_code}")
                    continue
                r = c.get(f"{table.path}/rows/{pk}")
                if r.status_code != 200 or [x["value"] for x in r.json()["cells"]] != [pk]:
                    errors.append(f"read {pk}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(table.scan().json()["cells"]) == 100


def test_default_consistency_is_strong(table: Table) -> None:
    table.write({"pk": "p", "value": "v"})
    resp = table.row("p")
    assert values(resp) == [("", "v")]
    assert STALENESS not in resp.headers


@pytest.mark.parametrize("endpoint", ["row", "get", "scan"])
def test_eventual_reads_carry_mussel_staleness_ms(table: Table, endpoint: str) -> None:
    table.write({"pk": "p", "value": "v"}, ack="applied")
    if endpoint == "row":
        resp = table.row("p", {"consistency": "eventual"})
    elif endpoint == "get":
        resp = table.multi_get({"keys": [{"pk": "p"}], "consistency": "eventual"})
    else:
        resp = table.scan({"consistency": "eventual"})
    assert resp.status_code == 200
    _staleness(resp)


def test_eventual_read_after_an_applied_write_sees_it(table: Table) -> None:
    table.write({"pk": "p", "value": "v"}, ack="applied")
    resp = table.row("p", {"consistency": "eventual"})
    assert values(resp) == [("", "v")]
    _staleness(resp)


def test_namespace_default_eventual_applies_to_its_tables(api: Api, ns: str) -> None:
    api.put_namespace(ns, {"consistency": "eventual"})
    t = api.put_table(ns, "t")
    t.write({"pk": "p", "value": "v"}, ack="applied")
    _staleness(t.row("p"))
    _staleness(t.scan())
    _staleness(t.multi_get({"keys": [{"pk": "p"}]}))
    resp = t.row("p", {"consistency": "strong"})  # the request overrides
    assert values(resp) == [("", "v")]
    assert STALENESS not in resp.headers


def test_table_consistency_overrides_the_namespaces(api: Api, ns: str) -> None:
    api.put_namespace(ns, {"consistency": "eventual"})
    strong = api.put_table(ns, "strong", {"consistency": "strong"})
    strong.write({"pk": "p", "value": "v"})
    resp = strong.row("p")
    assert values(resp) == [("", "v")]
    assert STALENESS not in resp.headers
    api.put_namespace(ns, {"consistency": "strong"})
    eventual = api.put_table(ns, "eventual", {"consistency": "eventual"})
    eventual.write({"pk": "p", "value": "v"}, ack="applied")
    _staleness(eventual.row("p"))
    resp = eventual.row("p", {"consistency": "strong"})
    assert STALENESS not in resp.headers


def test_changing_the_namespace_default_takes_effect_at_once(api: Api, ns: str) -> None:
    t = api.put_table(ns, "t")
    t.write({"pk": "p", "value": "v"})
    assert STALENESS not in t.row("p").headers
    api.put_namespace(ns, {"consistency": "eventual"})
    _staleness(t.row("p"))
    api.put(t.path, json={"consistency": "strong"})
    assert STALENESS not in t.row("p").headers
