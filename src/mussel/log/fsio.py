"""The file layer of :class:`mussel.log.local.LocalLog`: the few file operations it uses.

``LocalLog`` touches the disk only through a :class:`FileSystem`, so tests can inject one
that fails, counts or holds a sync (``tests/unit/log/test_local_log.py``).
:class:`OsFileSystem` is the real one (POSIX: ``os`` calls on file descriptors, ``flock``).

Contract of every implementation: a method either does all of what it says or raises
``OSError`` (``lock`` raises ``UnavailableError`` when the lock is held elsewhere). Nothing
here retries, buffers or caches: durability is exactly what ``sync``/``sync_dir`` give.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from typing import Protocol

from mussel.errors import UnavailableError

__all__ = ["Closeable", "FileSystem", "OsFileSystem", "ReadableFile", "WritableFile"]


class Closeable(Protocol):
    def close(self) -> None: ...


class WritableFile(Protocol):
    """A file open for appending; one thread writes it."""

    def write(self, data: bytes) -> None:
        """Append all of ``data`` (the file is open in append mode)."""
        ...

    def sync(self) -> None:
        """Make everything written durable (fdatasync)."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (later writes still append at its end)."""
        ...

    def close(self) -> None:
        """Idempotent."""
        ...


class ReadableFile(Protocol):
    """A file open for positional reads."""

    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer only at the end of the file)."""
        ...

    def close(self) -> None:
        """Idempotent."""
        ...


class FileSystem(Protocol):
    """The file operations the log uses; tests inject one that fails or counts."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents; nothing if it exists."""
        ...

    def listdir(self, path: str) -> list[str]: ...

    def open_append(self, path: str) -> WritableFile:
        """Open ``path`` for appending, creating it if missing."""
        ...

    def open_read(self, path: str) -> ReadableFile: ...

    def remove(self, path: str) -> None: ...

    def sync_dir(self, path: str) -> None:
        """Make the directory's entries (created, removed files) durable."""
        ...

    def lock(self, path: str) -> Closeable:
        """Hold an exclusive lock on ``path`` until the returned file is closed; raise
        ``UnavailableError`` if another holder has it."""
        ...


_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class _OsFile:
    """A file descriptor, for writing (append mode) or reading."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def sync(self) -> None:
        _datasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read_at(self, offset: int, size: int) -> bytes:
        chunks = []
        while size > 0:
            chunk = os.pread(self._fd, size, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            size -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The real file system (POSIX)."""

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def open_append(self, path: str) -> WritableFile:
        return _OsFile(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))

    def open_read(self, path: str) -> ReadableFile:
        return _OsFile(os.open(path, os.O_RDONLY))

    def remove(self, path: str) -> None:
        os.remove(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> Closeable:
        f = _OsFile(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.close()
            raise UnavailableError(f"{path} is locked: the log is open elsewhere") from exc
        return f
