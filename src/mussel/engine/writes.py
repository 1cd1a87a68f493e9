"""Validation of a write batch into log records (``Mutation``), all or nothing."""

from __future__ import annotations

from collections.abc import Sequence

from mussel.errors import InvalidRequestError, MusselError
from mussel.limits import TS_MAX, TS_MIN, Limits
from mussel.model import OP_DELETE, OP_PUT, Delete, Mutation, Put, WellFormedMutations

__all__ = ["to_mutations"]


def _bytes(value: object, what: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise InvalidRequestError(f"{what} must be bytes or a string, not {type(value).__name__}")


def to_mutations(
    table_id: int, ops: Sequence[Put | Delete], now_us: int, limits: Limits
) -> WellFormedMutations:
    """Check every record of a batch and resolve its ts; raise on the first bad one.

    Nothing is returned unless every record is valid, so a batch is written whole or
    not at all. Records without ts get ``now_us``. The result is marked well formed
    (``WellFormedMutations``): the log does not check the records again.
    """
    if not ops:
        raise InvalidRequestError("a write needs at least one record")
    limits.check_batch(len(ops), 0)
    if type(table_id) is not int or type(now_us) is not int:
        raise TypeError("table_id and now_us must be ints")  # a caller's bug, not input
    out = WellFormedMutations()
    append = out.append
    max_pk, max_sk, max_value = limits.max_pk_bytes, limits.max_sk_bytes, limits.max_value_bytes
    total = 0
    for i, op in enumerate(ops):
        try:
            pk = op.pk
            if type(pk) is not bytes:
                pk = _bytes(pk, "pk")
            sk = op.sk
            if type(sk) is not bytes:
                sk = _bytes(sk, "sk")
            ts = op.ts
            if ts is None:
                ts = now_us
            elif type(ts) is not int or not TS_MIN <= ts <= TS_MAX:
                raise InvalidRequestError(
                    "ts must be a 64-bit integer (microseconds since the epoch)"
                )
            size = len(pk)
            n_sk = len(sk)
            if not 0 < size <= max_pk or n_sk > max_sk:
                limits.check_pk(pk)
                limits.check_sk(sk)
            size += n_sk
            if type(op) is Put:
                value = op.value
                if type(value) is not bytes:
                    value = _bytes(value, "value")
                n_value = len(value)
                if n_value > max_value:
                    limits.check_value(value)
                size += n_value
                append(Mutation(table_id, OP_PUT, pk, sk, ts, value))
            elif type(op) is Delete:
                append(Mutation(table_id, OP_DELETE, pk, sk, ts))
            else:
                raise InvalidRequestError("a record must be a Put or a Delete")
        except MusselError as exc:
            raise type(exc)(f"records[{i}]: {exc.message}") from None
        total += size
    limits.check_batch(len(out), total)
    return out
