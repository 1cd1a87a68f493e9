"""Bodies on the wire: JSON or msgpack in, JSON or msgpack out, keys as text or base64.

SPEC §4: JSON by default; ``application/msgpack`` in Content-Type/Accept. In JSON,
pk, sk and value are UTF-8 strings, or base64 with ``encoding=base64`` (standard
alphabet in bodies, base64url in paths; decoders accept either, padded or not).
In msgpack, keys and values are binary (``bin``); strings are accepted too (as their
UTF-8 bytes, or as base64 text with ``encoding=base64``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from mussel.errors import InvalidRequestError

__all__ = ["Wire", "decode_key"]

MSGPACK = "application/msgpack"
JSON = "application/json"

_json_enc = msgspec.json.Encoder()
_msgpack_enc = msgspec.msgpack.Encoder()
_B64_TRANS = bytes.maketrans(b"-_", b"+/")


class _MsgpackKey(bytes):
    """The key type of the lenient msgpack decoding (bin or str)."""


class MsgpackText(_MsgpackKey):
    """A key or value that a msgpack body gave as ``str`` (held as its UTF-8 bytes)."""


class MsgpackBin(_MsgpackKey):
    """A key or value that a msgpack body gave as ``bin``."""


def _msgpack_key(typ: type, obj: Any) -> Any:
    if typ is _MsgpackKey:
        if isinstance(obj, bytes):
            return MsgpackBin(obj)
        if isinstance(obj, str):
            return MsgpackText(obj.encode("utf-8", "surrogatepass"))
        raise TypeError(f"expected bin or str, got {type(obj).__name__}")
    raise NotImplementedError


def decode_key(text: str | bytes, base64_mode: bool, what: str) -> bytes:
    """A key or value from the wire: bytes as is, text as UTF-8, or base64 text."""
    if isinstance(text, bytes):
        if type(text) is bytes:
            return text
        if not (base64_mode and type(text) is MsgpackText):
            return bytes(text)
        text = text.decode("utf-8", "surrogatepass")
    if not base64_mode:
        return text.encode("utf-8", "surrogatepass")
    raw = text.encode("ascii", "replace").translate(_B64_TRANS)
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError(f"{what} is not valid base64") from exc


class Wire:
    """The codec of one request: how to read its body and write its answer."""

    __slots__ = ("base64", "msgpack_in", "msgpack_out")

    def __init__(self, content_type: str, accept: str, base64_mode: bool) -> None:
        self.msgpack_in = content_type.lower().startswith(MSGPACK)  # media types: any case
        self.msgpack_out = MSGPACK in accept.lower()
        self.base64 = base64_mode

    @property
    def content_type(self) -> str:
        return MSGPACK if self.msgpack_out else JSON

    def decode(self, body: bytes, typ: Any) -> Any:
        """Decode and type-check a body; any mismatch is ``InvalidRequestError``.

        ``typ`` is generic in its key type: ``typ[bytes]`` for msgpack, ``typ[str]``
        for JSON (non-generic types are used as they are).
        """
        if not body:
            raise InvalidRequestError("the request needs a body")
        generic = bool(getattr(typ, "__parameters__", ()))
        try:
            if self.msgpack_in:
                try:
                    return msgspec.msgpack.decode(body, type=typ[bytes] if generic else typ)
                except msgspec.ValidationError:
                    if not generic:
                        raise
                # keys or values given as msgpack str: the slower, lenient decoding
                return msgspec.msgpack.decode(body, type=typ[_MsgpackKey], dec_hook=_msgpack_key)
            return msgspec.json.decode(body, type=typ[str] if generic else typ)
        except msgspec.ValidationError as exc:
            raise InvalidRequestError(f"invalid body: {exc}") from exc
        except msgspec.DecodeError as exc:
            kind = "msgpack" if self.msgpack_in else "JSON"
            raise InvalidRequestError(f"malformed {kind} body: {exc}") from exc

    def key(self, raw: str | bytes, what: str) -> bytes:
        return decode_key(raw, self.base64, what)

    def out(self, data: bytes) -> str | bytes:
        """A key or value for the answer."""
        if self.msgpack_out:
            return data
        if self.base64:
            return base64.b64encode(data).decode("ascii")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError(
                "the data holds bytes that are not UTF-8; read it with encoding=base64 "
                "or Accept: application/msgpack"
            ) from None

    def encode(self, obj: Any) -> bytes:
        return _msgpack_enc.encode(obj) if self.msgpack_out else _json_enc.encode(obj)
