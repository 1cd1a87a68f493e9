"""``Client`` against a real ``mussel serve``, in msgpack and in JSON mode."""

from __future__ import annotations

import socket

import httpx
import pytest

import mussel
from mussel import Cell, Client, Delete, Put, RowPage, ScanCell
from mussel.client import NamespaceDescription, TableDescription
from mussel.model import Partitioning, Quotas
from tests.client.conftest import BINARY, fresh
from tests.conftest import ServerProcess

# -- service, namespaces, tables ----------------------------------------------------


def test_health_answers_ok(client: Client) -> None:
    assert client.health() == {"status": "ok"}


def test_namespace_lifecycle(client: Client) -> None:
    name = fresh("ns")
    created = client.put_namespace(name, consistency="eventual", quotas={"tables": 7})
    assert isinstance(created, NamespaceDescription)
    assert created.name == name
    assert created.consistency == "eventual"
    assert created.quotas == Quotas(tables=7)
    assert created.usage.tables == 0
    assert client.namespace(name) == created
    assert name in [n.name for n in client.namespaces()]

    client.drop_namespace(name)
    with pytest.raises(mussel.NamespaceNotFoundError) as info:
        client.namespace(name)
    assert info.value.http_status == 404
    assert info.value.code == "namespace_not_found"


def test_put_namespace_is_idempotent_and_updates_only_what_is_given(client: Client) -> None:
    name = fresh("ns")
    client.put_namespace(name, quotas=Quotas(storage_bytes=1 << 30, tables=3))
    again = client.put_namespace(name, consistency="eventual")
    assert again.consistency == "eventual"
    assert again.quotas == Quotas(storage_bytes=1 << 30, tables=3)
    assert [n.name for n in client.namespaces()].count(name) == 1


def test_dropping_a_namespace_with_tables_is_a_conflict(client: Client, ns: str) -> None:
    with pytest.raises(mussel.ConflictError) as info:
        client.drop_namespace(ns)
    assert info.value.http_status == 409


def test_table_lifecycle(client: Client) -> None:
    ns = fresh("ns")
    client.put_namespace(ns)
    table = client.put_table(ns, "users", ttl_seconds=3600, max_versions=3, consistency="strong")
    assert isinstance(table, TableDescription)
    assert (table.namespace, table.name) == (ns, "users")
    assert (table.ttl_seconds, table.max_versions, table.consistency) == (3600, 3, "strong")
    assert table.partitioning == Partitioning(kind="hash", shards=16)
    assert table.stats.approx_cells == 0

    updated = client.put_table(ns, "users", ttl_seconds=None)
    assert updated.ttl_seconds is None
    assert updated.max_versions == 3  # options not given stay as they are
    assert client.table(ns, "users") == updated
    assert [t.name for t in client.tables(ns)] == ["users"]

    client.drop_table(ns, "users")
    assert client.tables(ns) == []
    with pytest.raises(mussel.TableNotFoundError):
        client.table(ns, "users")
    client.drop_namespace(ns)


def test_range_split_points_round_trip_as_bytes(client: Client) -> None:
    ns = fresh("ns")
    client.put_namespace(ns)
    points = [b"\x00a", b"m", BINARY]
    created = client.put_table(
        ns, "r", partitioning={"kind": "range", "split_points": sorted(points)}
    )
    assert created.partitioning == Partitioning(
        kind="range", shards=None, split_points=sorted(points)
    )
    assert client.table(ns, "r").partitioning.split_points == sorted(points)
    again = client.put_table(ns, "r", partitioning=created.partitioning)
    assert again.partitioning == created.partitioning
    with pytest.raises(mussel.ConflictError):
        client.put_table(ns, "r", partitioning=Partitioning(kind="hash", shards=4))


# -- writes and reads ---------------------------------------------------------------


def test_binary_keys_and_values_round_trip(client: Client, ns: str) -> None:
    client.put(ns, "t", BINARY, BINARY + b"sk", BINARY * 3, ts=10)
    client.put(ns, "t", "ключ", "é", "☃ snow", ts=11)
    assert client.get(ns, "t", BINARY, BINARY + b"sk") == [Cell(BINARY + b"sk", 10, BINARY * 3)]
    assert client.get(ns, "t", "ключ", "é") == [Cell("é".encode(), 11, "☃ snow".encode())]
    assert client.row(ns, "t", BINARY) == RowPage(BINARY, [Cell(BINARY + b"sk", 10, BINARY * 3)])
    cells = client.scan(ns, "t").cells
    assert ScanCell(BINARY, BINARY + b"sk", 10, BINARY * 3) in cells


def test_empty_sk_and_empty_value_round_trip(client: Client, ns: str) -> None:
    client.put(ns, "t", b"pk", ts=1)
    assert client.get(ns, "t", b"pk") == [Cell(b"", 1, b"")]


def test_get_of_an_absent_cell_is_empty(client: Client, ns: str) -> None:
    assert client.get(ns, "t", "nobody", "nothing") == []
    assert client.row(ns, "t", "nobody") == RowPage(b"nobody", [])


def test_get_returns_versions_newest_first_within_a_time_range(client: Client, ns: str) -> None:
    client.write(ns, "t", [Put("k", "c", f"v{ts}", ts) for ts in (1, 2, 3, 4)])
    assert [c.ts for c in client.get(ns, "t", "k", "c")] == [4]
    assert [c.ts for c in client.get(ns, "t", "k", "c", versions=3)] == [4, 3, 2]
    assert [c.ts for c in client.get(ns, "t", "k", "c", versions=5, min_ts=2, max_ts=4)] == [3, 2]
    cells = client.get(ns, "t", "k", "c", consistency="eventual", versions=5)
    assert [c.value for c in cells] == [b"v4", b"v3", b"v2", b"v1"]


def test_write_counts_records_and_applies_puts_and_deletes(client: Client, ns: str) -> None:
    written = client.write(
        ns,
        "t",
        [Put("a", "1", "x", 5), Put("a", "2", "y", 5), Delete("a", "1", 6), Put("b", "", "z")],
        ack="applied",
    )
    assert written == 4
    assert client.get(ns, "t", "a", "1") == []
    assert [c.value for c in client.row(ns, "t", "a").cells] == [b"y"]


def test_delete_hides_every_version_up_to_its_ts(client: Client, ns: str) -> None:
    client.write(ns, "t", [Put("k", "s", "old", 1), Put("k", "s", "new", 3)])
    client.delete(ns, "t", "k", "s", ts=2)
    assert [c.value for c in client.get(ns, "t", "k", "s", versions=5)] == [b"new"]
    client.delete(ns, "t", "k", "s")  # at the server's time
    assert client.get(ns, "t", "k", "s") == []


def test_row_reads_a_prefix_and_a_range_of_sk(client: Client, ns: str) -> None:
    client.write(ns, "t", [Put("r", sk, sk.upper()) for sk in ("a1", "a2", "b1", "b2", "c")])

    def sks(page: RowPage) -> list[bytes]:
        return [c.sk for c in page.cells]

    assert sks(client.row(ns, "t", "r")) == [b"a1", b"a2", b"b1", b"b2", b"c"]
    assert sks(client.row(ns, "t", "r", sk_prefix="a")) == [b"a1", b"a2"]
    assert sks(client.row(ns, "t", "r", sk_start="a2", sk_end="c")) == [b"a2", b"b1", b"b2"]
    first = client.row(ns, "t", "r", limit=2)
    assert sks(first) == [b"a1", b"a2"] and first.cursor is not None
    assert sks(client.row(ns, "t", "r", limit=2, cursor=first.cursor)) == [b"b1", b"b2"]


def test_multi_get_answers_each_key_in_order(client: Client, ns: str) -> None:
    client.write(
        ns, "t", [Put(BINARY, "x", "1", 1), Put(BINARY, "y", "2", 1), Put("p", "", "3", 1)]
    )
    pages = client.multi_get(ns, "t", [("p", b""), (BINARY, None), ("absent", None), (BINARY, "y")])
    assert pages == [
        RowPage(b"p", [Cell(b"", 1, b"3")]),
        RowPage(BINARY, [Cell(b"x", 1, b"1"), Cell(b"y", 1, b"2")]),
        RowPage(b"absent", []),
        RowPage(BINARY, [Cell(b"y", 1, b"2")]),
    ]


def test_scan_by_pk_prefix_and_range(client: Client, ns: str) -> None:
    client.write(ns, "t", [Put(pk, "s", pk) for pk in ("u1", "u2", "u3", "v1")])

    def pks(**kwargs: object) -> list[bytes]:
        return [c.pk for c in client.scan(ns, "t", **kwargs).cells]  # type: ignore[arg-type]

    assert pks() == [b"u1", b"u2", b"u3", b"v1"]
    assert pks(pk_prefix="u") == [b"u1", b"u2", b"u3"]
    assert pks(pk_start="u2", pk_end="v1") == [b"u2", b"u3"]


def test_iter_scan_follows_cursors_across_pages(client: Client, ns: str) -> None:
    keys = [bytes([i]) + b"\xff" for i in range(23)]
    client.write(ns, "t", [Put(k, "s", k, 7) for k in keys])
    first = client.scan(ns, "t", limit=5)
    second = client.scan(ns, "t", limit=5, cursor=first.cursor)
    assert first.cursor and second.cursor  # at least three pages
    assert [c.pk for c in client.iter_scan(ns, "t", limit=5)] == keys
    assert [c.pk for c in client.iter_scan(ns, "t", limit=5, pk_prefix=b"\x01")] == [keys[1]]


def test_iter_row_follows_cursors_across_pages(client: Client, ns: str) -> None:
    sks = [f"c{i:03d}".encode() for i in range(17)]
    client.write(ns, "t", [Put("wide", sk, sk, 3) for sk in sks])
    assert client.row(ns, "t", "wide", limit=4).cursor is not None
    assert [c.sk for c in client.iter_row(ns, "t", "wide", limit=4)] == sks
    assert [c.sk for c in client.iter_row(ns, "t", "wide", limit=4, sk_prefix="c01")] == sks[10:]


# -- errors ---------------------------------------------------------------------------


def test_unknown_table_is_table_not_found(client: Client, ns: str) -> None:
    for call in (
        lambda: client.get(ns, "missing", "k"),
        lambda: client.put(ns, "missing", "k", "s", "v"),
        lambda: client.scan(ns, "missing"),
        lambda: client.multi_get(ns, "missing", [("k", None)]),
    ):
        with pytest.raises(mussel.TableNotFoundError) as info:
            call()
        assert info.value.http_status == 404
        assert isinstance(info.value, mussel.NotFoundError)


def test_bad_input_is_invalid_request(client: Client, ns: str) -> None:
    with pytest.raises(mussel.InvalidRequestError) as info:
        client.put_namespace("Not A Name")
    assert info.value.http_status == 400
    assert info.value.code == "invalid_request"
    with pytest.raises(mussel.InvalidRequestError):
        client.put(ns, "t", b"", "s", "v")  # empty pk
    with pytest.raises(mussel.InvalidRequestError):
        client.scan(ns, "t", cursor="not-a-cursor")
    with pytest.raises(mussel.InvalidRequestError):
        client.write(ns, "t", ["not a record"])  # type: ignore[list-item]


def test_value_over_the_limit_is_too_large(client: Client, ns: str) -> None:
    with pytest.raises(mussel.TooLargeError) as info:
        client.put(ns, "t", "k", "s", b"\x00" * ((1 << 20) + 1))
    assert info.value.http_status == 413
    assert info.value.code == "too_large"
    assert client.get(ns, "t", "k", "s") == []  # nothing of it was written


def test_batch_over_the_record_limit_is_too_large(client: Client, ns: str) -> None:
    with pytest.raises(mussel.TooLargeError):
        client.write(ns, "t", [Put(b"k", b"%d" % i, b"") for i in range(10_001)])


def test_no_server_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        Client(f"http://127.0.0.1:{port}", retries=0) as c,
        pytest.raises(mussel.UnavailableError) as info,
    ):
        c.health()
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_client_shares_one_server_between_modes(shared_server: ServerProcess) -> None:
    ns = fresh("ns")
    with Client(shared_server.url) as packed, Client(shared_server.url, msgpack=False) as text:
        packed.put_namespace(ns)
        packed.put_table(ns, "t")
        packed.put(ns, "t", BINARY, BINARY, BINARY, ts=1)
        assert text.get(ns, "t", BINARY, BINARY) == [Cell(BINARY, 1, BINARY)]
        text.put(ns, "t", BINARY, b"2", b"\xff", ts=2)
        assert packed.get(ns, "t", BINARY, b"2") == [Cell(b"2", 2, b"\xff")]
