"""Namespaces and tables, persisted in the backend's metadata store."""

from mussel.catalog.catalog import Catalog
from mussel.catalog.options import UNSET, parse_table_options

__all__ = ["UNSET", "Catalog", "parse_table_options"]
