"""Translate rocksdict failures into Mussel errors, at the adapter boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mussel.errors import CorruptionError, MusselError, UnavailableError

__all__ = ["map_backend_errors"]


@contextmanager
def map_backend_errors(what: str) -> Iterator[None]:
    try:
        yield
    except MusselError:
        raise
    except Exception as exc:
        text = str(exc)
        if "Corruption" in text:
            raise CorruptionError(f"RocksDB reports corruption during {what}: {text}") from exc
        raise UnavailableError(f"RocksDB failed during {what}: {text}") from exc
