"""SPEC §4 bodies: JSON and msgpack both ways; ``encoding=base64`` (standard alphabet in
bodies, base64url in paths, either accepted, padded or not); binary-safe keys and values."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from tests.contract.conftest import (
    MSGPACK,
    Api,
    Table,
    b64,
    b64url,
    check_envelope,
    error_code,
    quote,
    values,
)

# Bytes that are not UTF-8, NUL bytes, and bytes whose base64 has '+', '/' and padding.
BINARY = [
    b"\x00",
    b"\x00\x00\x00",
    b"\xff\xfe\xfd",
    b"\xc3\x28",  # invalid 2-byte sequence
    b"\xfb\xff\xbf",  # base64 '+/+/'
    b"\xfb\xef",  # base64 '++8=' (padded)
    b"k\x00v\x80",
    bytes(range(256)),
]


def _mp(resp: Any) -> Any:
    assert resp.headers["content-type"].startswith(MSGPACK), resp.headers["content-type"]
    return msgspec.msgpack.decode(resp.content)


def _write_mp(table: Table, records: list[dict[str, Any]], **kw: Any) -> Any:
    return table.api.post(
        f"{table.path}/write", msgpack={"records": records}, accept_msgpack=True, **kw
    )


# -- msgpack ---------------------------------------------------------------------


def test_msgpack_write_and_read_round_trip_binary_keys_and_values(table: Table) -> None:
    records = [{"pk": pk, "sk": pk[::-1], "value": pk + b"\x00" + pk} for pk in BINARY]
    resp = _write_mp(table, records)
    assert resp.status_code == 200
    assert _mp(resp) == {"written": len(BINARY)}
    for pk in BINARY:
        path = f"{table.path}/rows/{b64url(pk)}?encoding=base64"
        body = _mp(table.api.get(path, accept_msgpack=True))
        assert body["pk"] == pk
        assert [(c["sk"], c["value"]) for c in body["cells"]] == [(pk[::-1], pk + b"\x00" + pk)]
        assert body["cursor"] is None
        assert isinstance(body["cells"][0]["ts"], int)


def test_msgpack_read_with_percent_encoded_binary_pk(table: Table) -> None:
    pk = b"\x00\xffa/b"
    assert _write_mp(table, [{"pk": pk, "value": b"\x01"}]).status_code == 200
    body = _mp(table.api.get(f"{table.path}/rows/{quote(pk)}", accept_msgpack=True))
    assert body["pk"] == pk
    assert [c["value"] for c in body["cells"]] == [b"\x01"]


def test_msgpack_multi_get_and_scan_answer_binary(table: Table) -> None:
    records = [{"pk": pk, "sk": b"\x00", "value": pk} for pk in BINARY]
    assert _write_mp(table, records).status_code == 200
    keys = [{"pk": pk, "sk": b"\x00"} for pk in reversed(BINARY)]
    resp = table.api.post(f"{table.path}/get", msgpack={"keys": keys}, accept_msgpack=True)
    results = _mp(resp)["results"]
    assert [r["pk"] for r in results] == list(reversed(BINARY))
    assert [[c["value"] for c in r["cells"]] for r in results] == [[pk] for pk in reversed(BINARY)]
    body = _mp(table.scan(accept_msgpack=True))
    assert [(c["pk"], c["sk"], c["value"]) for c in body["cells"]] == [
        (pk, b"\x00", pk) for pk in sorted(BINARY)
    ]
    assert body["cursor"] is None


def test_msgpack_body_may_give_keys_as_strings(table: Table) -> None:
    resp = _write_mp(table, [{"pk": "text", "sk": b"\xff", "value": "caf\u00e9"}])
    assert _mp(resp) == {"written": 1}
    body = _mp(table.row("text", accept_msgpack=True))
    assert [(c["sk"], c["value"]) for c in body["cells"]] == [(b"\xff", "caf\u00e9".encode())]


def test_msgpack_in_json_out_and_json_in_msgpack_out(table: Table) -> None:
    resp = table.api.post(f"{table.path}/write", msgpack={"records": [{"pk": b"p", "value": b"v"}]})
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {"written": 1}
    resp = table.write({"pk": "q", "value": "w"}, accept_msgpack=True)
    assert _mp(resp) == {"written": 1}
    assert values(table.row("p")) == [("", "v")]
    assert [c["value"] for c in _mp(table.row("q", accept_msgpack=True))["cells"]] == [b"w"]


def test_msgpack_errors_answer_the_envelope_in_msgpack(table: Table) -> None:
    resp = table.api.post(
        f"{table.path}/write",
        content=b"\xc1",
        headers={"content-type": MSGPACK},
        accept_msgpack=True,
    )
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"
    assert _mp(resp)["error"]["code"] == "invalid_request"


def test_msgpack_catalog_answers(api: Api, ns: str) -> None:
    resp = api.put(
        f"/v1/namespaces/{ns}/tables/t", msgpack={"max_versions": 4}, accept_msgpack=True
    )
    assert _mp(resp)["table"]["max_versions"] == 4
    assert _mp(api.get(f"/v1/namespaces/{ns}", accept_msgpack=True))["namespace"]["name"] == ns
    assert len(_mp(api.get(f"/v1/namespaces/{ns}/tables", accept_msgpack=True))["tables"]) == 1


# -- base64 ----------------------------------------------------------------------


def test_base64_write_and_read_round_trip_binary(table: Table) -> None:
    records = [{"pk": b64(pk), "sk": b64(pk[:1]), "value": b64(pk * 2)} for pk in BINARY]
    resp = table.write(*records, params={"encoding": "base64"})
    assert resp.json() == {"written": len(BINARY)}
    for pk in BINARY:
        resp = table.api.get(f"{table.path}/rows/{b64url(pk)}", params={"encoding": "base64"})
        body = resp.json()
        assert body["pk"] == b64(pk), "answers use the standard alphabet, padded"
        assert [(c["sk"], c["value"]) for c in body["cells"]] == [(b64(pk[:1]), b64(pk * 2))]


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: base64.b64encode(b).decode(),
        lambda b: base64.b64encode(b).decode().rstrip("="),
        lambda b: base64.urlsafe_b64encode(b).decode(),
        lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
    ],
    ids=["standard", "standard-unpadded", "urlsafe", "urlsafe-unpadded"],
)
def test_base64_decoders_accept_either_alphabet_with_or_without_padding(
    table: Table, encode: Any
) -> None:
    pk, sk, value = b"\xfb\xff\xbf\xfe", b"\xfb\xef", b"\x00\xff\x3e\x3f"
    resp = table.write(
        {"pk": encode(pk), "sk": encode(sk), "value": encode(value)},
        params={"encoding": "base64"},
    )
    assert resp.status_code == 200, resp.text
    got = table.api.get(
        f"{table.path}/rows/{quote(encode(pk))}",
        params={"encoding": "base64", "sk": encode(sk)},
    )
    assert got.status_code == 200, got.text
    assert [(c["sk"], c["value"]) for c in got.json()["cells"]] == [(b64(sk), b64(value))]
    got = table.multi_get(
        {"keys": [{"pk": encode(pk), "sk": encode(sk)}]}, params={"encoding": "base64"}
    )
    assert got.json()["results"][0]["pk"] == b64(pk)
    assert got.json()["results"][0]["cells"][0]["value"] == b64(value)
    got = table.scan({"encoding": "base64", "pk_prefix": encode(pk[:3])})
    assert [(c["pk"], c["value"]) for c in got.json()["cells"]] == [(b64(pk), b64(value))]


def test_base64_query_keys_select_ranges(table: Table) -> None:
    sks = [b"\x00", b"\x00\x01", b"\x01", b"\xff"]
    table.write(
        *({"pk": b64(b"p"), "sk": b64(s), "value": b64(s)} for s in sks),
        params={"encoding": "base64"},
    )
    path = f"{table.path}/rows/{b64url(b'p')}"
    got = table.api.get(path, params={"encoding": "base64", "sk_prefix": b64url(b"\x00")})
    assert [c["sk"] for c in got.json()["cells"]] == [b64(b"\x00"), b64(b"\x00\x01")]
    got = table.api.get(
        path, params={"encoding": "base64", "sk_start": b64(b"\x00\x01"), "sk_end": b64(b"\xff")}
    )
    assert [c["sk"] for c in got.json()["cells"]] == [b64(b"\x00\x01"), b64(b"\x01")]


def test_empty_sk_in_base64_is_the_empty_string(table: Table) -> None:
    table.write({"pk": b64(b"\x00"), "sk": "", "value": b64(b"v")}, params={"encoding": "base64"})
    pk = b64url(b"\x00")
    got = table.api.get(f"{table.path}/rows/{pk}", params={"encoding": "base64", "sk": ""})
    assert [(c["sk"], c["value"]) for c in got.json()["cells"]] == [("", b64(b"v"))]


def test_json_without_base64_reads_text_written_with_base64(table: Table) -> None:
    table.write(
        {"pk": b64(b"hello"), "value": b64("w\u00f6rld".encode())}, params={"encoding": "base64"}
    )
    assert values(table.row("hello")) == [("", "w\u00f6rld")]


@pytest.mark.parametrize(
    "bad", ["!!!!", "abc$", "a", "ab=c", "====", "YW Jj", "\u00e9\u00e9\u00e9\u00e9"]
)
def test_bad_base64_in_a_body_is_400(table: Table, bad: str) -> None:
    for record in (
        {"pk": bad, "value": "dg=="},
        {"pk": "cA==", "sk": bad, "value": "dg=="},
        {"pk": "cA==", "value": bad},
    ):
        resp = table.write(record, params={"encoding": "base64"})
        assert resp.status_code == 400, (record, resp.text)
        assert error_code(resp) == "invalid_request"
    resp = table.multi_get({"keys": [{"pk": bad}]}, params={"encoding": "base64"})
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_request"


@pytest.mark.parametrize("bad", ["!!!!", "a", "abc$", "%FF%FE"])
def test_bad_base64_in_a_path_or_query_is_400(table: Table, bad: str) -> None:
    resp = table.api.get(f"{table.path}/rows/{bad}", params={"encoding": "base64"})
    assert (resp.status_code, error_code(resp)) == (400, "invalid_request")
    for name in ("sk", "sk_prefix", "sk_start", "sk_end"):
        resp = table.api.get(f"{table.path}/rows/cA", params={"encoding": "base64", name: bad})
        assert (resp.status_code, error_code(resp)) == (400, "invalid_request"), name
    for name in ("pk_start", "pk_end", "pk_prefix"):
        resp = table.scan({"encoding": "base64", name: bad})
        assert (resp.status_code, error_code(resp)) == (400, "invalid_request"), name


# -- non-UTF-8 data read as JSON text --------------------------------------------


def test_json_read_of_non_utf8_data_without_base64_is_a_clear_400(table: Table) -> None:
    assert _write_mp(table, [{"pk": b"p", "sk": b"s", "value": b"\xff\x00"}]).status_code == 200
    assert _write_mp(table, [{"pk": b"\xfe", "value": b"ok"}]).status_code == 200
    for resp in (
        table.row("p"),
        table.row(b"\xfe"),
        table.multi_get({"keys": [{"pk": "p"}]}),
        table.scan(),
    ):
        assert resp.status_code == 400, resp.text
        err = resp.json()["error"]
        assert err["code"] == "invalid_request"
        assert "UTF-8" in err["message"] and "base64" in err["message"]
    got = table.api.get(f"{table.path}/rows/cA", params={"encoding": "base64"})
    assert got.json()["cells"][0]["value"] == b64(b"\xff\x00")


def test_json_body_keys_are_utf8_text(table: Table) -> None:
    text = "\u00e9\u4e2d\U0001f600\x00nul"
    table.write({"pk": text, "sk": text, "value": text})
    assert values(table.row(text)) == [(text, text)]
    got = table.api.get(f"{table.path}/rows/{b64url(text.encode())}", params={"encoding": "base64"})
    assert got.json()["cells"][0]["value"] == b64(text.encode())


# -- keys in paths and queries keep their exact bytes ------------------------------


def test_query_keys_are_their_percent_encoded_bytes(table: Table) -> None:
    sks = [b"\xff", b"\xff\x00", b"\xfe", "\u00e9".encode()]
    assert _write_mp(table, [{"pk": b"p", "sk": sk, "value": sk} for sk in sks]).status_code == 200
    for sk in sks:
        body = _mp(table.api.get(f"{table.path}/rows/p?sk={quote(sk)}", accept_msgpack=True))
        assert [c["value"] for c in body["cells"]] == [sk]
    body = _mp(table.api.get(f"{table.path}/rows/p?sk_prefix=%FF", accept_msgpack=True))
    assert [c["sk"] for c in body["cells"]] == [b"\xff", b"\xff\x00"]
    body = _mp(table.api.get(f"{table.path}/rows/p?sk_start=%FE&sk_end=%FF", accept_msgpack=True))
    assert [c["sk"] for c in body["cells"]] == [b"\xfe"]
    assert values(table.row("p", {"sk": "\u00e9"})) == [("\u00e9", "\u00e9")]


def test_raw_non_ascii_bytes_in_a_path_are_400_percent_encoded_ones_work(
    api: Api, table: Table
) -> None:
    from tests.contract.test_errors import _raw

    pk = "caf\u00e9"
    table.write({"pk": pk, "value": "v"})
    path = f"{table.path}/rows/".encode() + pk.encode()
    status, _, body = _raw(api, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400
    assert check_envelope(msgspec.json.decode(body))["code"] == "invalid_request"
    assert values(table.row(pk)) == [("", "v")]


def test_media_types_are_case_insensitive(table: Table) -> None:
    body = msgspec.msgpack.encode({"records": [{"pk": b"p", "value": b"\xff"}]})
    resp = table.api.post(
        f"{table.path}/write",
        content=body,
        headers={"content-type": "Application/MsgPack", "accept": "APPLICATION/MSGPACK"},
    )
    assert _mp(resp) == {"written": 1}
