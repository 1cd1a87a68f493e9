"""The manifest of a backup: what it holds, and the checks that prove it intact.

A backup is a directory::

    <backup>/MANIFEST.json     written last: a directory without it is not a backup
    <backup>/db/...            a RocksDB checkpoint (the data, the catalog, and the
                               replayer's applied positions stored with the data)
    <backup>/log/NNN...N.log   the write log's segments from the one holding the
                               applied positions onwards, cut at a durable frame

``MANIFEST.json`` (one JSON object; a reader refuses a ``version`` it does not know)::

    {"format": "mussel-backup", "version": 1,
     "created_us": <int, microseconds since the epoch>,
     "partitions": <int P, the write log's partition count>,
     "applied":  [<int>] * P,   next offset to apply per partition, as stored in db/
     "log_end":  [<int>] * P,   the copied log's end offset per partition
     "files": [{"path": "db/000008.sst", "bytes": <int>, "sha256": "<hex>"}, ...]}

Every file of the backup is listed with its size and SHA-256; paths are relative,
``/``-separated, under ``db/`` or ``log/``. ``applied[p] <= log_end[p]``: the log holds
every record of partition p from ``applied[p]`` to ``log_end[p]``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Final

import msgspec

from mussel.errors import CorruptionError, InvalidRequestError

__all__ = [
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "FileEntry",
    "Manifest",
    "copy_hashed",
    "fsync_dir",
    "hash_file",
    "read_manifest",
    "write_manifest",
]

FORMAT: Final = "mussel-backup"
VERSION: Final = 1
MANIFEST: Final = "MANIFEST.json"
CHUNK_BYTES: Final = 4 << 20


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    bytes: int
    sha256: str


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: int
    created_us: int
    partitions: int
    applied: list[int]
    log_end: list[int]
    files: list[FileEntry]

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def hash_file(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def copy_hashed(src: Path, dst: Path) -> tuple[int, str]:
    """Copy ``src`` to the new file ``dst`` (fsync'd); return (size, SHA-256 hex) of the
    bytes written."""
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dst.open("xb") as fout:
        while chunk := fin.read(CHUNK_BYTES):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return size, digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(backup: Path, manifest: Manifest) -> None:
    """Write ``MANIFEST.json`` atomically (temporary file, fsync, rename, fsync dir)."""
    tmp = backup / (MANIFEST + ".tmp")
    with tmp.open("wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(backup / MANIFEST)
    fsync_dir(backup)


def read_manifest(backup: Path) -> Manifest:
    """The manifest of the backup at ``backup``, checked for shape and sense.

    Raises ``InvalidRequestError`` if ``backup`` is not a complete backup of a format
    this version reads, ``CorruptionError`` if its manifest is damaged.
    """
    path = backup / MANIFEST
    if not backup.is_dir():
        raise InvalidRequestError(f"{backup} is not a directory")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidRequestError(
            f"{backup} is not a Mussel backup: it has no {MANIFEST} (a backup that did "
            "not finish has none)"
        ) from None
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from None
    try:
        head = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise CorruptionError(f"{path} is damaged: {exc}") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise InvalidRequestError(f"{path} is not the manifest of a Mussel backup")
    if head.get("version") != VERSION:
        raise InvalidRequestError(
            f"{path}: backup format version {head.get('version')!r} is not supported "
            f"(this version reads {VERSION})"
        )
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except msgspec.ValidationError as exc:
        raise CorruptionError(f"{path} is damaged: {exc}") from None
    _check(manifest, path)
    return manifest


def _check(m: Manifest, path: Path) -> None:
    p = m.partitions
    if p < 1 or len(m.applied) != p or len(m.log_end) != p:
        raise CorruptionError(f"{path} is damaged: offsets do not match partitions={p}")
    if any(a < 0 or a > e for a, e in zip(m.applied, m.log_end, strict=True)):
        raise CorruptionError(f"{path} is damaged: an applied offset is past the log's end")
    seen: set[str] = set()
    for f in m.files:
        rel = PurePosixPath(f.path)
        if (
            rel.is_absolute()
            or ".." in rel.parts
            or len(rel.parts) < 2
            or rel.parts[0] not in ("db", "log")
            or f.path in seen
            or f.bytes < 0
            or len(f.sha256) != 64
        ):
            raise CorruptionError(f"{path} is damaged: bad file entry {f.path!r}")
        seen.add(f.path)
