"""Backup and restore of an embedded store (the layout is in ``manifest.py``).

**Backup** (``create_backup``), while writes go on, in the process that owns the store:

1. hold the log's segments (``LocalLog.holding_segments``: the replayer's ``release``
   deletes nothing meanwhile);
2. checkpoint RocksDB into ``<backup>/db``: the data, the catalog and the applied
   positions A stored with the data, all of one moment;
3. open the log's segments that hold records at or past A, each with its durable
   length, and note the log's end offsets E; end the hold;
4. copy those segments into ``<backup>/log``, each cut at its durable length (whole
   acknowledged frames), hashing every byte; hash the checkpoint's files;
5. write ``MANIFEST.json`` last (atomically): a directory without it is no backup.

Every write acknowledged before the backup began is durable in the log before step 3
(acknowledged means fsync'd), so it is in the backup: in the checkpoint if applied by
step 2, else in the log between A and E. Per partition the backup is a prefix of the
acknowledged writes (the checkpoint is a prefix, the log copy continues it), so a
restore never shows a write without the writes acknowledged before it on its row.

**Restore** (``restore_backup``) into an empty or new directory: every file is copied
and its SHA-256 checked against the manifest (a mismatch fails the restore and removes
what it wrote), then the restored store is opened once, which replays the log from A to
E: ``mussel serve --data DIR`` then starts on a store that is up to date.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

from mussel.clock import Clock
from mussel.engine.manifest import (
    CHUNK_BYTES,
    FORMAT,
    VERSION,
    FileEntry,
    Manifest,
    copy_hashed,
    fsync_dir,
    hash_file,
    read_manifest,
    write_manifest,
)
from mussel.engine.store import Store, StoreConfig
from mussel.errors import ConflictError, CorruptionError, InvalidRequestError, UnavailableError
from mussel.log.local import LocalLog, SegmentCopy, stored_partitions
from mussel.storage.rocksdb import RocksBackend
from mussel.storage.rocksdb.checkpoint import create_checkpoint

__all__ = ["backup_parts", "create_backup", "open_offline", "restore_backup"]

_LOCK = threading.Lock()  # one backup at a time per process


def create_backup(
    store: Store, dest: str | os.PathLike[str], clock: Clock | None = None
) -> Manifest:
    """Back up the embedded ``store`` (the owner's) into ``dest``, a new or empty
    directory; return the manifest. Writes, reads and applies go on meanwhile.

    Raises ``InvalidRequestError`` for a store that is not an embedded owner,
    ``ConflictError`` if ``dest`` is not empty, ``UnavailableError`` on I/O failure
    (what was written to ``dest`` is then removed).
    """
    backend, wlog = store.backend, store.log
    if not isinstance(backend, RocksBackend) or not isinstance(wlog, LocalLog) or backend.secondary:
        raise InvalidRequestError(
            "backups are for embedded mode and are taken by the process that owns the "
            "data; in distributed mode, back up the database and Kafka with their own tools"
        )
    return backup_parts(backend, wlog, dest, (clock or store.clock).now_us())


def backup_parts(
    backend: RocksBackend, wlog: LocalLog, dest: str | os.PathLike[str], created_us: int
) -> Manifest:
    """``create_backup`` of an open primary ``backend`` and the ``wlog`` it applies
    (steps 1-5 of the module docstring); whoever applies the log may be running."""
    target = Path(dest)
    _prepare_target(target)
    try:
        with _LOCK:
            with wlog.holding_segments():
                applied_map = create_checkpoint(backend, target / "db")
                applied = [applied_map.get(p, 0) for p in range(wlog.partitions)]
                copies, ends = wlog.open_segments(dict(enumerate(applied)))
            files = _copy_segments(copies, target / "log")
            files += _hash_tree(target, "db")
            fsync_dir(target)
            manifest = Manifest(
                format=FORMAT,
                version=VERSION,
                created_us=created_us,
                partitions=wlog.partitions,
                applied=applied,
                log_end=ends,
                files=sorted(files, key=lambda f: f.path),
            )
            write_manifest(target, manifest)
    except OSError as exc:
        _clear(target)
        raise UnavailableError(f"backup to {target} failed: {exc}") from exc
    except BaseException:
        _clear(target)
        raise
    return manifest


def _prepare_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConflictError(f"{target} exists and is not an empty directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidRequestError(f"cannot create {target}: {exc.strerror}") from None


def _copy_segments(copies: list[SegmentCopy], into: Path) -> list[FileEntry]:
    files: list[FileEntry] = []
    try:
        into.mkdir()
        for c in copies:
            digest = hashlib.sha256()
            with (into / c.name).open("xb") as out:
                pos = 0
                while pos < c.size:
                    chunk = c.file.read_at(pos, min(CHUNK_BYTES, c.size - pos))
                    if not chunk:
                        raise CorruptionError(
                            f"log segment {c.name} is shorter than its durable size"
                        )
                    out.write(chunk)
                    digest.update(chunk)
                    pos += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            files.append(FileEntry(f"log/{c.name}", c.size, digest.hexdigest()))
        fsync_dir(into)
    finally:
        for c in copies:
            c.file.close()
    return files


def _hash_tree(root: Path, sub: str) -> list[FileEntry]:
    """Size and hash every file under ``root/sub`` (fsync'ing it: a checkpoint's copied
    files may be in the page cache only)."""
    out = []
    base = root / sub
    for dirpath, _, names in os.walk(base):
        for name in names:
            path = Path(dirpath) / name
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            size, digest = hash_file(path)
            out.append(FileEntry(path.relative_to(root).as_posix(), size, digest))
        fsync_dir(Path(dirpath))
    return out


def _clear(target: Path) -> None:
    """Remove what a failed backup or restore wrote into ``target`` (kept itself)."""
    if not target.is_dir():
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def restore_backup(
    backup: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    config: StoreConfig | None = None,
) -> Manifest:
    """Lay out the backup at ``backup`` as the data directory ``data_dir`` (new or
    empty), check every file against the manifest, then open the store once (replaying
    the log's tail) and close it. Returns the manifest.

    Raises ``InvalidRequestError`` if ``backup`` is not a backup this version reads or
    ``data_dir`` is not empty, ``CorruptionError`` (naming the file) if a file is
    missing, of the wrong size or its checksum differs; on any failure ``data_dir`` is
    left empty.
    """
    src = Path(backup)
    manifest = read_manifest(src)
    target = Path(data_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidRequestError(
            f"refusing to restore into {target}: it is not an empty directory (restore into "
            "a new directory, then point mussel serve --data at it)"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidRequestError(f"cannot create {target}: {exc.strerror}") from None
    try:
        _restore_files(src, target, manifest)
        cfg = config or StoreConfig()
        if cfg.partitions != manifest.partitions:
            cfg = replace(cfg, partitions=manifest.partitions)
        Store.open(target, cfg).close()  # replays the log tail; checks the log's frames
    except OSError as exc:
        _clear(target)
        raise UnavailableError(f"restore into {target} failed: {exc}") from exc
    except BaseException:
        _clear(target)
        raise
    return manifest


def _restore_files(src: Path, target: Path, manifest: Manifest) -> None:
    dirs: set[Path] = {target}
    for entry in manifest.files:
        source = src / entry.path
        dest = target / entry.path
        if not source.is_file():
            raise CorruptionError(f"the backup at {src} is missing {entry.path}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dirs.add(dest.parent)
        size, digest = copy_hashed(source, dest)
        if size != entry.bytes or digest != entry.sha256:
            raise CorruptionError(
                f"the backup at {src} is damaged: {entry.path} has {size} bytes with "
                f"SHA-256 {digest[:16]}..., the manifest says {entry.bytes} bytes with "
                f"{entry.sha256[:16]}...; nothing was restored"
            )
    for d in dirs:
        fsync_dir(d)


def open_offline(data_dir: str | os.PathLike[str], config: StoreConfig | None = None) -> Store:
    """Open the store of a stopped server at ``data_dir`` for an offline backup, with the
    partition count its log was created with. Raises ``InvalidRequestError`` if there is
    no store there and ``UnavailableError`` if a running server holds it."""
    root = Path(data_dir)
    if not (root / "db" / "CURRENT").is_file():
        raise InvalidRequestError(f"{root} holds no Mussel data (no {root / 'db' / 'CURRENT'})")
    cfg = config or StoreConfig()
    parts = stored_partitions(root / "log")
    if parts is not None and parts != cfg.partitions:
        cfg = replace(cfg, partitions=parts)
    try:
        return Store.open(root, cfg)
    except UnavailableError as exc:
        if "lock" in exc.message.lower():
            raise UnavailableError(
                f"the data directory {root} is in use (is a server running on it? back it "
                "up through that server: mussel backup --url URL NAME)"
            ) from exc
        raise
