"""Translate psycopg failures into Mussel errors, at the adapter boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool

from mussel.errors import CorruptionError, MusselError, UnavailableError

__all__ = ["is_retryable", "map_sql_errors"]


def is_retryable(exc: BaseException) -> bool:
    """A serialization failure or deadlock: the transaction may simply be run again."""
    return isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected)


@contextmanager
def map_sql_errors(what: str) -> Iterator[None]:
    """Connection loss, timeouts and server trouble become ``UnavailableError``;
    data the database refuses (it cannot hold what Mussel stored) ``CorruptionError``."""
    try:
        yield
    except MusselError:
        raise
    except psycopg_pool.PoolTimeout as exc:
        raise UnavailableError(f"no database connection for {what}: {exc}") from exc
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        raise CorruptionError(f"the database refused data during {what}: {exc}") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise UnavailableError(f"database unavailable during {what}: {exc}") from exc
    except psycopg.Error as exc:
        raise MusselError(f"database error during {what}: {exc}") from exc
