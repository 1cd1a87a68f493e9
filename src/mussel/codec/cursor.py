"""Opaque pagination cursors.

A cursor is base64url (no padding) of a msgpack array ``[1, kind, *position]``:
``kind`` names the read it belongs to ("row" or "scan") and the position is the
last key returned. Clients must treat it as opaque; anything that does not decode
to the expected kind is ``InvalidCursorError`` (400 ``invalid_request``).
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from mussel.errors import InvalidCursorError

__all__ = ["decode_cursor", "encode_cursor"]

_VERSION = 1
_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(list[object])


def encode_cursor(kind: str, *position: bytes | int) -> str:
    raw = _ENC.encode([_VERSION, kind, *position])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str, kind: str, shape: tuple[type, ...]) -> tuple[object, ...]:
    """Decode ``token`` for a read of ``kind``; ``shape`` gives the types of the position."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        items = _DEC.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursorError("cursor is not one this server produced") from exc
    if len(items) != 2 + len(shape) or items[0] != _VERSION or items[1] != kind:
        raise InvalidCursorError(f"cursor does not belong to a {kind} read")
    position = tuple(items[2:])
    for value, typ in zip(position, shape, strict=True):
        if type(value) is not typ:
            raise InvalidCursorError(f"cursor does not belong to a {kind} read")
    return position
