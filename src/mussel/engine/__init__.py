"""The embedded engine: one ``Store`` composing catalog, log, replayer and backend."""

from mussel.engine.store import Ack, Store, StoreConfig, Table

__all__ = ["Ack", "Store", "StoreConfig", "Table"]
