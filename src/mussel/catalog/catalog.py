"""``Catalog``: the namespaces and tables of a store, in the backend's metadata.

Items (JSON values)::

    meta_key("ns", name)              -> NamespaceInfo
    meta_key("table", "ns/table")     -> TableInfo
    meta_key("seq", "table_id")       -> next table id (decimal)
    meta_key("seq", "catalog")        -> the catalog's version (decimal), +1 per change
    meta_key("token", "<id>")         -> TokenInfo (a bearer token's scopes and hash)
    meta_key("dropped", "<id>")       -> TableInfo of a dropped table, until its space
                                         is reclaimed (the expiration service)

The whole catalog is cached in memory; every change is one atomic, durable
``meta_write`` made under the catalog lock, then published by swapping the cache.
``generation`` grows with every change, so callers may cache what they derive
from the catalog.

Shared catalogs (distributed mode, ``shared=True``): several processes change one
catalog in one database. Every change then writes the next catalog version with
``meta_write(..., expect={version: the one this process read})``, a compare-and-set:
if another process changed the catalog meanwhile, the write fails with
``ConflictError``, this process reloads and runs the operation again on fresh state
(so two dispatchers never hand out one table id, nor lose each other's changes).
A lookup that misses checks the stored version first (``refresh``), so a table
created through another process is found at once; other changes (options, drops)
reach a process when it next calls ``refresh`` (a dispatcher does so every few
hundred milliseconds).

Table ids are never reused, so a dropped table's log records and data can never
be taken for a later table's.

``apply_lock`` is held by the replayer while it applies a batch and by
``drop_table`` while it removes data, so a batch never lands in a dropped table.

Bulk-load epochs (see ``TableInfo``): ``reserve_epoch`` hands a job a fresh epoch
(pending, so invisible), ``commit_epoch`` makes it visible in one catalog write
(for a replace, with its floor), ``abort_epoch`` hides it for good. Each takes an
optional ``write(items, expect)`` that writes the catalog items itself (inside a
caller's transaction: distributed bulk loads write the job's state, and the loaded
data, in the same transaction); ``expect`` is the compare-and-set of a shared catalog
(``None`` otherwise), and a write that finds it stale must raise ``ConflictError``
having written nothing.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from mussel.catalog.options import UNSET, parse_quotas, parse_table_options
from mussel.catalog.tokens import TokenInfo, check_scopes, hash_secret, new_secret
from mussel.clock import Clock
from mussel.codec.keys import meta_key
from mussel.errors import (
    ConflictError,
    InvalidRequestError,
    MusselError,
    NamespaceNotFoundError,
    NotFoundError,
    QuotaExceededError,
    TableNotFoundError,
)
from mussel.model import (
    Consistency,
    Floor,
    NamespaceInfo,
    TableInfo,
    check_consistency,
    check_name,
)
from mussel.storage.base import Backend

log = logging.getLogger("mussel.catalog")

__all__ = ["DROPPED_PREFIX", "VERSION_KEY", "Catalog", "CatalogWrite", "dropped_key"]

_F = TypeVar("_F", bound=Callable[..., Any])
CatalogWrite = Callable[[Mapping[bytes, bytes | None], Mapping[bytes, bytes | None] | None], None]
"""``write(items, expect)``: writes catalog items in a caller's own step (see above)."""


class _Stale(Exception):
    """A shared catalog changed under this process's feet: reload and try again."""


def _retrying(method: _F) -> _F:
    """Run a catalog change again on fresh state while another process wins the race."""

    @functools.wraps(method)
    def run(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        for _ in range(_RETRIES):
            try:
                return method(self, *args, **kwargs)
            except _Stale:
                self.reload()
        raise ConflictError("the catalog is changing too fast to apply this change; retry")

    return run  # type: ignore[return-value]


_NS_PREFIX = meta_key("ns", "")
_TABLE_PREFIX = meta_key("table", "")
_SEQ_KEY = meta_key("seq", "table_id")
VERSION_KEY = meta_key("seq", "catalog")
_RETRIES = 20
DROPPED_PREFIX = meta_key("dropped", "")
_TOKEN_PREFIX = meta_key("token", "")


def dropped_key(table_id: int) -> bytes:
    """A dropped table whose space the expiration service has yet to reclaim."""
    return meta_key("dropped", f"{table_id:010d}")


class Catalog:
    def __init__(self, backend: Backend, clock: Clock, *, shared: bool = False) -> None:
        self._backend = backend
        self.shared = shared
        self._version = 0
        self._clock = clock
        self._lock = threading.RLock()
        self.apply_lock = threading.Lock()
        self._namespaces: dict[str, NamespaceInfo] = {}
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._by_id: dict[int, TableInfo] = {}
        self._tokens: dict[str, TokenInfo] = {}  # by hash of the secret
        self.generation = 0
        self.next_table_id = 1
        """Every table id below this one is in this catalog, or was dropped (ids are
        never reused): records of a lower unknown id belong to a dropped table; a
        higher one is a table created since this process last read the catalog."""
        self.listeners: list[Callable[[], None]] = []
        """Called (under the catalog lock) after each change is durable, before the
        call that made it returns. Must not raise."""
        self.reload()

    @property
    def version(self) -> int:
        """The stored catalog's version as this process last wrote or read it: one more
        with each change."""
        return self._version

    def reload(self) -> None:
        """Re-read the catalog from the backend (e.g. on a read-only secondary)."""
        raw_version = self._backend.meta_get(VERSION_KEY)
        raw_seq = self._backend.meta_get(_SEQ_KEY)  # before the tables: see next_table_id
        namespaces = {
            ns.name: ns
            for ns in (
                msgspec.json.decode(v, type=NamespaceInfo)
                for _, v in self._backend.meta_scan(_NS_PREFIX)
            )
        }
        tables = {
            (t.namespace, t.name): t
            for t in (
                msgspec.json.decode(v, type=TableInfo)
                for _, v in self._backend.meta_scan(_TABLE_PREFIX)
            )
        }
        tokens = {
            t.hash: t
            for t in (
                msgspec.json.decode(v, type=TokenInfo)
                for _, v in self._backend.meta_scan(_TOKEN_PREFIX)
            )
        }
        with self._lock:
            self._version = int(raw_version) if raw_version else 0
            self.next_table_id = int(raw_seq) if raw_seq else 1
            self._namespaces = namespaces
            self._tokens = tokens
            self._publish_tables(tables)

    def refresh(self) -> bool:
        """Reload if the stored catalog changed since this process last read it (one
        metadata read). Returns whether it did."""
        raw = self._backend.meta_get(VERSION_KEY)
        if (int(raw) if raw else 0) == self._version:
            return False
        self.reload()
        return True

    def _commit(
        self,
        items: Mapping[bytes, bytes | None],
        write: CatalogWrite | None = None,
    ) -> None:
        """Write ``items`` and the next catalog version in one atomic step (a
        compare-and-set on the version when the catalog is shared). Call with
        ``_lock`` held; raises ``_Stale`` if another process changed the catalog."""
        version = self._version + 1
        items = {**items, VERSION_KEY: str(version).encode()}
        if self.shared:
            current = str(self._version).encode() if self._version else None
            try:
                if write is not None:
                    write(items, {VERSION_KEY: current})
                else:
                    self._backend.meta_write(items, expect={VERSION_KEY: current})
            except ConflictError:
                raise _Stale from None
        elif write is not None:
            write(items, None)
        else:
            self._backend.meta_write(items)
        self._version = version

    def _publish_tables(self, tables: dict[tuple[str, str], TableInfo]) -> None:
        self._tables = tables
        self._by_id = {t.id: t for t in tables.values()}
        self._changed()

    def _changed(self) -> None:
        self.generation += 1
        for listener in self.listeners:
            listener()

    # -- namespaces -----------------------------------------------------------

    @_retrying
    def put_namespace(
        self, name: str, *, consistency: Any = UNSET, quotas: Any = UNSET
    ) -> NamespaceInfo:
        """Create or update a namespace (idempotent). Omitted fields keep their value."""
        check_name(name, "namespace name")
        with self._lock:
            current = self._namespaces.get(name)
            ns = current or NamespaceInfo(name=name, created_us=self._clock.now_us())
            changes: dict[str, Any] = {}
            if consistency is not UNSET:
                changes["consistency"] = check_consistency(consistency)
            if quotas is not UNSET:
                changes["quotas"] = parse_quotas(quotas or {}, ns.quotas)
            ns = msgspec.structs.replace(ns, **changes)
            if ns != current:
                self._commit({meta_key("ns", name): msgspec.json.encode(ns)})
                self._namespaces = {**self._namespaces, name: ns}
                self._changed()
            return ns

    def get_namespace(self, name: str) -> NamespaceInfo:
        ns = self._namespaces.get(name)
        if ns is None and self.shared and self.refresh():
            ns = self._namespaces.get(name)
        if ns is None:
            raise NamespaceNotFoundError(f"namespace {name!r} does not exist")
        return ns

    def known(self, namespace: str, table: str = "") -> bool:
        """Whether this process knows the namespace (and the table, if given) now: no
        I/O, no refresh of a shared catalog (for metric labels, on the event loop)."""
        if table:
            return (namespace, table) in self._tables
        return namespace in self._namespaces

    def list_namespaces(self) -> list[NamespaceInfo]:
        """Every namespace; a shared catalog is read again first if another process
        changed it (one metadata read), so a listing shows what any process created."""
        if self.shared:
            self.refresh()
        return sorted(self._namespaces.values(), key=lambda n: n.name)

    @_retrying
    def delete_namespace(self, name: str) -> None:
        with self._lock:
            self.get_namespace(name)
            if any(ns == name for ns, _ in self._tables):
                raise ConflictError(f"namespace {name!r} still has tables; drop them first")
            self._commit({meta_key("ns", name): None})
            self._namespaces = {k: v for k, v in self._namespaces.items() if k != name}
            self._changed()

    # -- tables ---------------------------------------------------------------

    @_retrying
    def put_table(self, namespace: str, name: str, options: Mapping[str, Any]) -> TableInfo:
        """Create a table, or update the options it names (idempotent).

        Changing the partitioning of an existing table is ``ConflictError``.
        """
        check_name(name, "table name")
        with self._lock:
            self.get_namespace(namespace)
            current = self._tables.get((namespace, name))
            opts = parse_table_options(options, current.options if current else None)
            if current is not None:
                if opts.partitioning != current.options.partitioning:
                    raise ConflictError(
                        f"table {namespace}/{name} exists with partitioning "
                        f"{current.options.partitioning.to_json()}; it cannot change"
                    )
                if opts == current.options:
                    return current
                table = msgspec.structs.replace(current, options=opts)
                self._write_table(table)
                return table
            limit = self._namespaces[namespace].quotas.tables
            if limit is not None and sum(1 for ns, _ in self._tables if ns == namespace) >= limit:
                raise QuotaExceededError(
                    f"namespace {namespace!r} has {limit} tables, its quota: drop one or "
                    "raise the quota to create another"
                )
            raw_seq = self._backend.meta_get(_SEQ_KEY)
            table_id = int(raw_seq) if raw_seq else 1
            table = TableInfo(
                namespace=namespace,
                name=name,
                id=table_id,
                options=opts,
                created_us=self._clock.now_us(),
            )
            self._write_table(table, {_SEQ_KEY: str(table_id + 1).encode()})
            self.next_table_id = max(self.next_table_id, table_id + 1)
        points = opts.partitioning.split_points
        if points:
            try:
                self._backend.presplit(table_id, points)
            except MusselError as exc:  # the table exists and works, only unsplit
                log.warning("table %s/%s created but not presplit: %s", namespace, name, exc)
        return table

    def _write_table(
        self,
        table: TableInfo,
        extra: Mapping[bytes, bytes] | None = None,
        write: CatalogWrite | None = None,
    ) -> None:
        key = meta_key("table", table.qualified)
        self._commit({key: msgspec.json.encode(table), **(extra or {})}, write)
        self._publish_tables({**self._tables, (table.namespace, table.name): table})

    def get_table(self, namespace: str, name: str) -> TableInfo:
        table = self._tables.get((namespace, name))
        if table is None and self.shared and self.refresh():
            table = self._tables.get((namespace, name))
        if table is None:
            self.get_namespace(namespace)
            raise TableNotFoundError(f"table {namespace}/{name} does not exist")
        return table

    def table_by_id(self, table_id: int) -> TableInfo | None:
        return self._by_id.get(table_id)

    def list_tables(self, namespace: str) -> list[TableInfo]:
        """The namespace's tables (a shared catalog is read again first, as for
        ``list_namespaces``)."""
        if self.shared:
            self.refresh()
        self.get_namespace(namespace)
        return sorted((t for t in self._tables.values() if t.namespace == namespace), key=_name)

    def all_tables(self) -> list[TableInfo]:
        return sorted(self._tables.values(), key=lambda t: t.id)

    def epochs(self) -> dict[int, int]:
        """table id -> current epoch, for every live table (a snapshot)."""
        return {t.id: t.epoch for t in self._by_id.values()}

    @_retrying
    def drop_table(self, namespace: str, name: str) -> TableInfo:
        """Remove a table and its data. Its id is never used again."""
        with self._lock, self.apply_lock:
            table = self.get_table(namespace, name)
            self._commit(
                {
                    meta_key("table", table.qualified): None,
                    dropped_key(table.id): msgspec.json.encode(table),
                }
            )
            self._publish_tables({k: v for k, v in self._tables.items() if v.id != table.id})
            self._backend.drop_table_data(table.id)
            return table

    @_retrying
    def add_floor(self, namespace: str, name: str, ts_us: int) -> TableInfo:
        """Start a new epoch and hide older-epoch versions with ts <= ``ts_us``.

        This is the commit point of a ``replace`` bulk load: versions applied from
        now on carry the new epoch and stay visible.
        """
        with self._lock, self.apply_lock:
            table = self.get_table(namespace, name)
            # Versions applied so far must keep their old epoch after a crash, so they
            # are made durable before the new epoch is.
            self._backend.sync()
            epoch = max(table.epoch, table.epoch_seq) + 1
            table = msgspec.structs.replace(
                table, epoch=epoch, epoch_seq=epoch, floors=(*table.floors, Floor(ts_us, epoch))
            )
            self._write_table(table)
            return table

    def _table_by_id_checked(self, namespace: str, name: str, table_id: int) -> TableInfo:
        table = self.get_table(namespace, name)
        if table.id != table_id:
            raise TableNotFoundError(
                f"table {namespace}/{name} was dropped (and created again) during the job"
            )
        return table

    @_retrying
    def reserve_epoch(
        self, namespace: str, name: str, write: CatalogWrite | None = None
    ) -> tuple[TableInfo, int]:
        """Reserve a fresh epoch for a bulk load of the table; it starts pending.

        The counter is persisted before the epoch is handed out, so an epoch is never
        given twice, even after a crash.
        """
        with self._lock:
            table = self.get_table(namespace, name)
            epoch = max(table.epoch, table.epoch_seq) + 1
            table = msgspec.structs.replace(
                table, epoch_seq=epoch, pending_epochs=(*table.pending_epochs, epoch)
            )
            self._write_table(table, write=write)
            return table, epoch

    @_retrying
    def commit_epoch(
        self,
        namespace: str,
        name: str,
        table_id: int,
        epoch: int,
        floor_ts_us: int | None = None,
        write: CatalogWrite | None = None,
    ) -> TableInfo:
        """Make the versions of a pending ``epoch`` visible: ONE catalog write.

        With ``floor_ts_us`` (a replace at T) the same write adds ``Floor(T, epoch)`` and
        makes ``epoch`` the streaming epoch, so older-epoch versions with ts <= T vanish
        at the same instant as the loaded cells appear. A replace may commit only when
        no other load of the table is pending (``ConflictError``), since a floor hides
        exactly the epochs below its own. ``write`` (default ``backend.meta_write``)
        writes the catalog items; a bulk ingest passes its own to write deferred cells
        in the same atomic step.
        """
        with self._lock, self.apply_lock:
            table = self._table_by_id_checked(namespace, name, table_id)
            if epoch not in table.pending_epochs:
                raise ConflictError(
                    f"epoch {epoch} of table {table.qualified} is not pending (aborted?)"
                )
            pending = tuple(e for e in table.pending_epochs if e != epoch)
            changes: dict[str, Any] = {"pending_epochs": pending}
            if floor_ts_us is not None:
                if pending:
                    raise ConflictError(
                        f"a replace of {table.qualified} cannot commit while other loads "
                        "of the table are running"
                    )
                # Versions applied so far must keep their old epoch after a crash (the
                # replayer would stamp them again with the new one), so they are made
                # durable before the new streaming epoch is.
                self._backend.sync()
                changes["epoch"] = epoch
                changes["floors"] = (*table.floors, Floor(floor_ts_us, epoch))
            table = msgspec.structs.replace(table, **changes)
            key = meta_key("table", table.qualified)
            self._commit({key: msgspec.json.encode(table)}, write)
            self._publish_tables({**self._tables, (table.namespace, table.name): table})
            return table

    @_retrying
    def abort_epoch(
        self,
        namespace: str,
        name: str,
        table_id: int,
        epoch: int,
        write: CatalogWrite | None = None,
    ) -> None:
        """Hide a pending epoch for good (a failed or cancelled load). No-op when the
        table is gone or the epoch is not pending."""
        with self._lock:
            try:
                table = self._table_by_id_checked(namespace, name, table_id)
            except (TableNotFoundError, NamespaceNotFoundError):
                return
            if epoch not in table.pending_epochs:
                return
            self._write_table(
                msgspec.structs.replace(
                    table,
                    pending_epochs=tuple(e for e in table.pending_epochs if e != epoch),
                    aborted_epochs=(*table.aborted_epochs, epoch),
                ),
                write=write,
            )

    def abort_pending_epochs(self) -> list[tuple[str, int]]:
        """At start-up, no load is running: every pending epoch is aborted.
        Returns (table, epoch) for each one aborted."""
        aborted: list[tuple[str, int]] = []
        with self._lock:
            for table in list(self._tables.values()):
                for epoch in table.pending_epochs:
                    self.abort_epoch(table.namespace, table.name, table.id, epoch)
                    aborted.append((table.qualified, epoch))
        return aborted

    # -- tokens (SPEC §6) ------------------------------------------------------

    @_retrying
    def create_token(self, name: str, scopes: list[object]) -> tuple[TokenInfo, str]:
        """A new token; returns it and its secret (shown this once, stored hashed)."""
        if not isinstance(name, str) or len(name) > 200:
            raise InvalidRequestError("a token's name is a string of at most 200 characters")
        checked = check_scopes(scopes)
        token_id, secret = new_secret()
        info = TokenInfo(token_id, name, checked, hash_secret(secret), self._clock.now_us())
        self._put_token(info)
        return info, secret

    @_retrying
    def ensure_token(self, token_id: str, name: str, secret: str, scopes: list[object]) -> None:
        """Make ``secret`` a token with these scopes under ``token_id`` (for tokens an
        operator gives, e.g. ``MUSSEL_ADMIN_TOKEN``); replaces that id's old secret."""
        info = TokenInfo(
            token_id, name, check_scopes(scopes), hash_secret(secret), self._clock.now_us()
        )
        with self._lock:
            old = self.token_by_id(token_id)
            if old is not None and (old.hash, old.scopes) == (info.hash, info.scopes):
                return
        self._put_token(info)

    def _put_token(self, info: TokenInfo) -> None:
        with self._lock:
            self._commit({meta_key("token", info.id): msgspec.json.encode(info)})
            tokens = {h: t for h, t in self._tokens.items() if t.id != info.id}
            tokens[info.hash] = info
            self._tokens = tokens
            self._changed()

    def list_tokens(self) -> list[TokenInfo]:
        return sorted(self._tokens.values(), key=lambda t: (t.created_us, t.id))

    @_retrying
    def revoke_token(self, token_id: str) -> TokenInfo:
        """Remove a token (``NotFoundError`` if there is none with that id)."""
        with self._lock:
            found = self.token_by_id(token_id)
            if found is None:
                raise NotFoundError(f"no token with id {token_id!r}")
            self._commit({meta_key("token", token_id): None})
            self._tokens = {h: t for h, t in self._tokens.items() if t.id != token_id}
            self._changed()
            return found

    def token_by_id(self, token_id: str) -> TokenInfo | None:
        """The token with this id, if any (a shared catalog is read again on a miss:
        another process may have just created it)."""
        found = next((t for t in self._tokens.values() if t.id == token_id), None)
        if found is None and self.shared and self.refresh():
            found = next((t for t in self._tokens.values() if t.id == token_id), None)
        return found

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The token whose secret this is, if any (read again on a miss, as above)."""
        key = hash_secret(secret)
        found = self._tokens.get(key)
        if found is None and self.shared and self.refresh():
            found = self._tokens.get(key)
        return found

    def consistency_of(self, table: TableInfo) -> Consistency:
        """The table's default read consistency (its own, else its namespace's)."""
        if table.options.consistency is not None:
            return table.options.consistency
        return self.get_namespace(table.namespace).consistency


def _name(t: TableInfo) -> str:
    return t.name
