"""Storage backends behind one protocol, and the visibility rules they share."""

from mussel.storage.base import ArrowBulkIngest, Backend, RowQuery, ScanQuery, SkRange, TableStats
from mussel.storage.versions import ReadFilter, Visibility, visible_versions

__all__ = [
    "ArrowBulkIngest",
    "Backend",
    "ReadFilter",
    "RowQuery",
    "ScanQuery",
    "SkRange",
    "TableStats",
    "Visibility",
    "visible_versions",
]
