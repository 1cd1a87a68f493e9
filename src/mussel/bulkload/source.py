"""Where a bulk load reads from: Parquet files at a URL, read in streaming batches.

A source URL names a file, a directory or a glob:

* ``/data/x.parquet``, ``file:///data/x.parquet``, ``s3://bucket/prefix/`` (pyarrow's
  own filesystems: local and S3, which stream), or any other fsspec URL (through
  ``fsspec`` wrapped in a pyarrow filesystem);
* a directory is read recursively, as Spark writes it: ``part-*`` files, skipping
  every file or directory whose name starts with ``_`` or ``.`` (``_SUCCESS``,
  ``_committed_*``, ``.crc`` files); Hive directories ``col=value/`` add a string
  column ``col`` with ``value`` to every row below them;
* a glob (``*``, ``?``, ``[``) is matched against the paths below its fixed prefix.

Files are read in path order (SPEC: duplicates keep the last in source order) and
each in row order, one record batch at a time, so memory does not grow with the
input. ``open_source`` checks what can be checked up front (the files exist, are
Parquet, have a footer) and raises ``InvalidRequestError`` naming the file.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mussel.errors import InvalidRequestError, MusselError, UnavailableError

__all__ = ["Batch", "ParquetSource", "SourceFile", "open_source"]

_GLOB = set("*?[")


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str  # in the filesystem's own terms
    size_bytes: int
    rows: int
    schema: pa.Schema
    partition: tuple[tuple[str, str], ...]  # Hive col=value pairs, outermost first


@dataclass(frozen=True, slots=True)
class Batch:
    """A record batch of one file, with the index of its first row in that file."""

    file: SourceFile
    first_row: int
    data: pa.RecordBatch


def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] == ":\\"):
        path = unquote(parsed.path) if scheme == "file" else url
        return pafs.LocalFileSystem(), path
    if scheme in ("s3", "s3a", "gs", "gcs", "hdfs", "viewfs"):
        try:
            fs, path = pafs.FileSystem.from_uri(url)
            return fs, path
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
            pass
    try:
        import fsspec  # noqa: PLC0415  (optional path: only for other schemes)

        ffs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InvalidRequestError(f"unsupported source URL {url!r}: {exc}") from exc
    return pafs.PyFileSystem(pafs.FSSpecHandler(ffs)), path


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def _partition(rel_dir: str) -> tuple[tuple[str, str], ...]:
    out = []
    for part in rel_dir.split("/"):
        if "=" in part:
            col, _, value = part.partition("=")
            if col:
                out.append((col, unquote(value)))
    return tuple(out)


class ParquetSource:
    """An opened source: its files (sorted by path), their sizes and schemas."""

    def __init__(self, url: str, fs: pafs.FileSystem, files: list[SourceFile]) -> None:
        self.url = url
        self.fs = fs
        self.files = files
        self.total_bytes = sum(f.size_bytes for f in files)
        self.total_rows = sum(f.rows for f in files)

    def batches(self, batch_rows: int = 65_536) -> Iterator[Batch]:
        """Every row, file by file in path order, in record batches."""
        for f in self.files:
            first = 0
            try:
                with self.fs.open_input_file(f.path) as handle:
                    pf = pq.ParquetFile(handle)
                    for rb in pf.iter_batches(batch_size=batch_rows, use_threads=True):
                        yield Batch(f, first, rb)
                        first += rb.num_rows
            except MusselError:
                raise
            except (OSError, pa.ArrowException) as exc:
                raise InvalidRequestError(
                    f"{f.path}: cannot read the file after row {first}: {exc}"
                ) from exc

    def file(self, path: str) -> SourceFile:
        """The source's file at ``path`` (``InvalidRequestError`` if it has none)."""
        for f in self.files:
            if f.path == path:
                return f
        raise InvalidRequestError(f"{path} is no longer part of the source {self.url!r}")

    def row_group_rows(self, f: SourceFile) -> list[int]:
        """The number of rows of each row group of ``f``, in order."""
        try:
            with self.fs.open_input_file(f.path) as handle:
                meta = pq.ParquetFile(handle).metadata
                return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        except (OSError, pa.ArrowException) as exc:
            raise InvalidRequestError(f"{f.path} is not a readable Parquet file: {exc}") from exc

    def slice_batches(
        self, f: SourceFile, row_groups: Sequence[int], first_row: int, batch_rows: int = 65_536
    ) -> Iterator[Batch]:
        """The rows of some row groups of ``f`` (consecutive, the first starting at row
        ``first_row`` of the file), in record batches numbered like ``batches``."""
        first = first_row
        try:
            with self.fs.open_input_file(f.path) as handle:
                pf = pq.ParquetFile(handle)
                for rb in pf.iter_batches(
                    batch_size=batch_rows, row_groups=list(row_groups), use_threads=True
                ):
                    yield Batch(f, first, rb)
                    first += rb.num_rows
        except MusselError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise InvalidRequestError(
                f"{f.path}: cannot read the file after row {first}: {exc}"
            ) from exc


def _list(fs: pafs.FileSystem, path: str, url: str) -> tuple[str, list[pafs.FileInfo]]:
    """(root directory for partitions, the data files' infos)."""
    if any(c in _GLOB for c in path):
        cut = min(path.index(c) for c in _GLOB if c in path)
        base = posixpath.dirname(path[:cut]) or "/"
        if fs.get_file_info(base).type != pafs.FileType.Directory:
            raise InvalidRequestError(f"no file matches the source {url!r}")
        matched = [i for i in _walk(fs, base, url) if fnmatch.fnmatchcase(i.path, path)]
        if not matched:
            raise InvalidRequestError(f"no file matches the source {url!r}")
        return base, matched
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InvalidRequestError(f"source {url!r} does not exist")
    if info.type == pafs.FileType.File:
        return posixpath.dirname(path), [info]
    root = path.rstrip("/") or "/"
    files = _walk(fs, root, url)
    if not files:
        raise InvalidRequestError(f"directory {url!r} has no data files")
    return root, files


MAX_LISTED = 100_000
"""Entries a directory source may hold (a guard against ``/`` and the like)."""


def _walk(fs: pafs.FileSystem, root: str, url: str) -> list[pafs.FileInfo]:
    """Data files below ``root``, not descending into hidden (``_``/``.``) directories."""
    files: list[pafs.FileInfo] = []
    todo = [root]
    seen = 0
    while todo:
        listing = fs.get_file_info(pafs.FileSelector(todo.pop(), recursive=False))
        seen += len(listing)
        if seen > MAX_LISTED:
            raise InvalidRequestError(
                f"directory {url!r} holds more than {MAX_LISTED} entries; "
                "name a narrower directory or a glob"
            )
        for i in listing:
            if _hidden(posixpath.basename(i.path)):
                continue
            if i.type == pafs.FileType.Directory:
                todo.append(i.path)
            elif i.type == pafs.FileType.File:
                files.append(i)
    return files


def open_source(url: str) -> ParquetSource:
    """List and check a source (``InvalidRequestError`` naming the bad file)."""
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("source must be a non-empty URL or path")
    fs, path = _filesystem(url)
    try:
        root, infos = _list(fs, path, url)
    except MusselError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise UnavailableError(f"cannot list the source {url!r}: {exc}") from exc
    files = []
    for info in sorted(infos, key=lambda i: i.path):
        try:
            with fs.open_input_file(info.path) as handle:
                meta = pq.ParquetFile(handle).metadata
                schema = meta.schema.to_arrow_schema()
                rows = meta.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise InvalidRequestError(f"{info.path} is not a readable Parquet file: {exc}") from exc
        rel_dir = posixpath.dirname(info.path[len(root) :].lstrip("/"))
        files.append(SourceFile(info.path, info.size or 0, rows, schema, _partition(rel_dir)))
    return ParquetSource(url, fs, files)
