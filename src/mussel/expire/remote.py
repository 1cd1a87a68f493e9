"""Sweep scans in follower processes: the expiration service's use of the idle cores.

Scanning is most of a sweep's work (every stored version is read and judged); the
deletes are few and cheap. So when ``mussel serve`` runs followers, the owner's
sweep workers send each step's scan to a follower (``RemoteScanner``), which runs
``Backend.sweep_scan`` on its RocksDB secondary (``ScanServer``) and answers with
the candidates. The owner then deletes them as usual: only versions still stored
exactly as scanned go, so a follower's view being a little behind is harmless (what
is invisible stays invisible; a version replaced since is kept).

Wire: over a Unix socket, length-prefixed (uint32 big-endian) msgpack frames; one
``ScanRequest`` answered by one ``ScanAnswer``. If no follower answers, the scan
runs in the owner (``fallback``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
import threading
from collections.abc import Callable

import msgspec

from mussel.model import Floor
from mussel.storage.base import RANGE_DELETE_MIN, Backend, SweepPage
from mussel.storage.versions import Visibility

__all__ = ["RemoteScanner", "ScanServer"]

log = logging.getLogger("mussel.expire")

_LEN = struct.Struct(">I")
Scan = Callable[..., SweepPage]


class ScanRequest(msgspec.Struct, array_like=True):
    table_id: int
    max_versions_kept: int
    expired_before_us: int | None
    floors: list[tuple[int, int]]
    hidden_epochs: list[int]
    start: tuple[bytes, bytes] | None
    pk_end: bytes | None
    max_versions: int
    pending: list[int]
    tombstones_before_us: int | None
    min_run: int = RANGE_DELETE_MIN


class ScanAnswer(msgspec.Struct, array_like=True):
    examined: int = 0
    candidates: list[tuple[bytes, bytes]] = []
    candidate_bytes: int = 0
    next_cell: tuple[bytes, bytes] | None = None
    error: str | None = None
    runs: list[tuple[int, int]] = []


_REQ = msgspec.msgpack.Decoder(ScanRequest)
_ANS = msgspec.msgpack.Decoder(ScanAnswer)


def _vis(req: ScanRequest) -> Visibility:
    return Visibility(
        max_versions=req.max_versions_kept,
        expired_before_us=req.expired_before_us,
        floors=tuple(Floor(ts, epoch) for ts, epoch in req.floors),
        hidden_epochs=frozenset(req.hidden_epochs),
    )


class ScanServer(asyncio.Protocol):
    """A follower's end: runs each request's scan in a thread (reads go on meanwhile)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Future[None]] = set()  # one at a time per connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 4:
            (n,) = _LEN.unpack_from(self._buf)
            if len(self._buf) < 4 + n:
                return
            frame, self._buf = self._buf[4 : 4 + n], self._buf[4 + n :]
            task = asyncio.ensure_future(self._answer(frame))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, frame: bytes) -> None:
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, self._scan, frame)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_LEN.pack(len(answer)) + answer)

    def _scan(self, frame: bytes) -> bytes:
        try:
            req = _REQ.decode(frame)
            page = self._backend.sweep_scan(
                req.table_id,
                _vis(req),
                req.start,
                req.pk_end,
                req.max_versions,
                pending=frozenset(req.pending),
                tombstones_before_us=req.tombstones_before_us,
                min_run=req.min_run,
            )
            answer = ScanAnswer(
                page.examined,
                page.candidates,
                page.candidate_bytes,
                page.next_cell,
                runs=page.runs,
            )
        except Exception as exc:  # the owner falls back to scanning itself
            answer = ScanAnswer(error=f"{type(exc).__name__}: {exc}")
        return msgspec.msgpack.encode(answer)


class RemoteScanner:
    """The owner's end: ``sweep_scan``'s signature, run by the followers in turn.

    Thread-safe: each sweep worker thread keeps its own connection per follower.
    """

    def __init__(self, addresses: list[str], fallback: Scan, timeout_s: float = 60.0) -> None:
        self._addresses = addresses
        self._fallback = fallback
        self._timeout_s = timeout_s
        self._turn = itertools.cycle(range(len(addresses)))
        self._turn_lock = threading.Lock()
        self._local = threading.local()
        self.remote_scans = 0
        self.local_scans = 0

    def __call__(
        self,
        table_id: int,
        vis: Visibility,
        start: tuple[bytes, bytes] | None,
        pk_end: bytes | None,
        max_versions: int,
        *,
        pending: frozenset[int] = frozenset(),
        tombstones_before_us: int | None = None,
        min_run: int = RANGE_DELETE_MIN,
    ) -> SweepPage:
        req = ScanRequest(
            table_id,
            vis.max_versions,
            vis.expired_before_us,
            [(f.ts_us, f.epoch) for f in vis.floors],
            sorted(vis.hidden_epochs),
            start,
            pk_end,
            max_versions,
            sorted(pending),
            tombstones_before_us,
            min_run,
        )
        frame = msgspec.msgpack.encode(req)
        for _ in range(len(self._addresses)):
            with self._turn_lock:
                i = next(self._turn)
            try:
                answer = self._ask(i, frame)
            except OSError as exc:
                log.warning("sweep scan: follower %d did not answer (%s)", i, exc)
                self._drop(i)
                continue
            if answer.error is None:
                self.remote_scans += 1
                return SweepPage(
                    answer.examined,
                    answer.candidates,
                    answer.candidate_bytes,
                    answer.next_cell,
                    [(i, j) for i, j in answer.runs],
                )
            log.warning("sweep scan in follower %d failed: %s", i, answer.error)
        self.local_scans += 1
        return self._fallback(
            table_id,
            vis,
            start,
            pk_end,
            max_versions,
            pending=pending,
            tombstones_before_us=tombstones_before_us,
            min_run=min_run,
        )

    def _conn(self, i: int) -> socket.socket:
        conns: dict[int, socket.socket] = self._local.__dict__.setdefault("conns", {})
        sock = conns.get(i)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout_s)
            try:
                sock.connect(self._addresses[i])
            except OSError:
                sock.close()
                raise
            conns[i] = sock
        return sock

    def _drop(self, i: int) -> None:
        conns: dict[int, socket.socket] = self._local.__dict__.setdefault("conns", {})
        sock = conns.pop(i, None)
        if sock is not None:
            sock.close()

    def _ask(self, i: int, frame: bytes) -> ScanAnswer:
        sock = self._conn(i)
        sock.sendall(_LEN.pack(len(frame)) + frame)
        (n,) = _LEN.unpack(self._read(sock, 4))
        return _ANS.decode(self._read(sock, n))

    @staticmethod
    def _read(sock: socket.socket, n: int) -> bytes:
        parts = []
        while n:
            chunk = sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ConnectionResetError("the follower closed the connection")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)
