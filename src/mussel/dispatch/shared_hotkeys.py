"""Hot keys across the dispatchers of a distributed deployment.

Each dispatcher counts the pks it serves (``observability.hotkeys.HotKeys``); in
embedded mode the owner asks its followers for their counts, but dispatchers do not
know each other. So each one publishes its snapshot in the database's metadata
(``meta_key("hotkeys", <process id>)``) every ``period_s`` while it counted anything,
and ``GET .../hotkeys`` on any dispatcher adds the others' published snapshots to its
own: a dispatcher's hits show everywhere within ``period_s``. Snapshots carry the
window they count (windows are aligned on wall-clock time in every process), so a
dead dispatcher's last one stops counting after a window; one older than
``forget_s`` is removed by whoever reads it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from mussel.codec.keys import meta_key
from mussel.errors import MusselError
from mussel.observability.hotkeys import HotKeys
from mussel.storage.base import Backend

__all__ = ["SharedHotKeys"]

log = logging.getLogger("mussel.hotkeys")

_PREFIX = meta_key("hotkeys", "")


class SharedHotKeys:
    def __init__(
        self,
        hot: HotKeys,
        backend: Backend,
        *,
        period_s: float = 0.5,
        forget_s: float = 3600.0,
        limit: int = 256,
    ) -> None:
        self._hot = hot
        self._backend = backend
        self._period_s = period_s
        self._forget_s = forget_s
        self._limit = limit
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self._key = meta_key("hotkeys", self.process_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._published: Any = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mussel-hotkeys", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop publishing and remove this process's snapshot."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self._backend.meta_write({self._key: None})
        except MusselError as exc:
            log.warning("cannot remove this dispatcher's hot keys: %s", exc)

    def publish(self) -> None:
        """Store this process's snapshot now, if it changed since the last one."""
        snap = self._hot.snapshot(self._limit)
        if snap == self._published:
            return
        raw = msgspec.msgpack.encode({"at": time.time(), "snapshot": snap})
        self._backend.meta_write({self._key: raw})
        self._published = snap

    def peers(self) -> list[Mapping[str, Any]]:
        """The other dispatchers' published snapshots (as ``HotKeys.top`` takes them)."""
        out: list[Mapping[str, Any]] = []
        stale: list[bytes] = []
        now = time.time()
        for key, raw in self._backend.meta_scan(_PREFIX):
            if key == self._key:
                continue
            try:
                item = msgspec.msgpack.decode(raw)
                at, snap = float(item["at"]), item["snapshot"]
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                stale.append(key)  # not ours to read: a damaged or foreign item
                continue
            if now - at > self._forget_s:
                stale.append(key)
            else:
                out.append(snap)
        if stale:
            self._backend.meta_write(dict.fromkeys(stale, None))
        return out

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.publish()
            except MusselError as exc:
                log.debug("cannot publish hot keys: %s", exc)
