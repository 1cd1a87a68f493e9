"""The distributed backend on a PostgreSQL-compatible database (psycopg 3).

Only this package imports psycopg and psycopg_pool.
"""

from mussel.storage.sql.backend import SCHEMA_VERSION, SqlBackend
from mussel.storage.sql.dialect import (
    CELLS,
    CockroachDialect,
    Dialect,
    PostgresDialect,
    YugabyteDialect,
)
from mussel.storage.sql.jobs import JobRow, SqlJobQueue, TaskClaim, TaskCounts

__all__ = [
    "CELLS",
    "SCHEMA_VERSION",
    "CockroachDialect",
    "Dialect",
    "JobRow",
    "PostgresDialect",
    "SqlBackend",
    "SqlJobQueue",
    "TaskClaim",
    "TaskCounts",
    "YugabyteDialect",
]
