"""SST files built from Arrow buffers, in worker processes at batch priority.

rocksdict's ``SstFileWriter`` takes one key at a time and holds the GIL while it does
(~1-2 µs a key), so building the SST files of a bulk load in the store's process would
use one core and slow every other thread of the process (point reads, the replayer)
for the whole load. ``SstBuilders`` runs that loop in ``workers`` processes
instead, each building the file of one contiguous key range of a chunk, optionally at a
lower CPU priority (``nice``; 0 by default: on a machine shared with other work, a
niced load is starved rather than merely yielding to the store's reads). The workers are plain
Python subprocesses running ``serve`` and speaking JSON lines (not ``multiprocessing``,
whose spawned children re-import the caller's main module).

A chunk travels as an Arrow IPC file in the job's scratch directory (written once,
memory-mapped by the worker, removed by it), not through a pipe: a sliced Arrow array
pickles its whole parent buffer.

Contract of ``build``: ``keys`` (cell keys without the table prefix, ascending, no
two equal) and ``values`` are pyarrow binary arrays (chunked or not) of the same
length; it writes the SST files whose keys are ``prefix + key`` and values
``header + value`` for consecutive parts of the chunk, in key order, and returns their
paths (the ranges are disjoint and ascending, so one ``ingest_external_file`` call can
take them all). Errors of a worker (a full disk) are raised by ``build``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc
from rocksdict import SstFileWriter

from mussel.storage.rocksdb.compression import sst_options

__all__ = ["SstBuilders", "serve", "write_sst"]


_EMPTY = pa.scalar(b"", pa.binary())
_SLICE = 8192
"""Cells turned into Python objects at a time: the objects of one slice are freed
before the next is made, so their memory is reused (~15% less CPU than one list of
every key of a chunk, whose fresh pages the kernel must clear, and a small RSS)."""

Binary: TypeAlias = pa.Array | pa.ChunkedArray


def _joined(prefix: pa.Scalar, arr: Binary) -> list[bytes]:
    if not prefix.as_py():
        return arr.to_pylist()  # type: ignore[no-any-return]
    return pc.binary_join_element_wise(prefix, arr, _EMPTY).to_pylist()  # type: ignore[no-any-return]


def write_sst(
    path: str,
    prefix: bytes,
    header: bytes,
    keys: Binary,
    values: Binary,
    compression: str = "lz4",
) -> None:
    """Write ``prefix + keys[i]`` -> ``header + values[i]`` (keys ascending) to an SST file
    at ``path``, compressed as ``compression`` (``compression.py``). ``keys`` and
    ``values`` are binary arrays (chunked or not) of the same length. The prefixes are
    added by Arrow kernels, ``_SLICE`` cells at a time; the only per-key Python is the
    writer's call."""
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys but {len(values)} values")
    p = pa.scalar(prefix, pa.binary())
    h = pa.scalar(header, pa.binary())
    w = SstFileWriter(options=sst_options(compression))
    w.open(path)
    for start in range(0, len(keys), _SLICE):
        ks = _joined(p, keys.slice(start, _SLICE))
        vs = _joined(h, values.slice(start, _SLICE))
        for k, v in zip(ks, vs, strict=True):
            w[k] = v
    w.finish()


def _build_from_file(src: str, path: str, prefix: bytes, header: bytes, compression: str) -> None:
    """Worker side: the chunk part at ``src`` (IPC file, removed here) to an SST file.
    The file is memory-mapped and its record batches used as they are (no copy)."""
    try:
        with pa.memory_map(src, "r") as f:
            t = ipc.open_file(f).read_all()
            write_sst(path, prefix, header, t.column(0), t.column(1), compression)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(src)


def serve() -> None:
    """A builder process: one JSON request a line on stdin (``src``, ``path``, ``prefix``
    and ``header`` in hex), one JSON answer a line on stdout (``{"ok": true}`` or
    ``{"error": "..."}``); exits at the end of stdin."""
    nice = int(os.environ.get("MUSSEL_SST_BUILDER_NICE", "0"))
    if nice > 0:
        with contextlib.suppress(OSError):
            os.nice(nice)
    out = os.fdopen(os.dup(1), "w")  # the answers' channel; stray prints go to stderr
    os.dup2(2, 1)
    for line in sys.stdin:
        try:
            req = json.loads(line)
            _build_from_file(
                req["src"],
                req["path"],
                bytes.fromhex(req["prefix"]),
                bytes.fromhex(req["header"]),
                req["compression"],
            )
            answer: dict[str, object] = {"ok": True}
        except Exception as exc:  # reported to the store's process, which fails the job
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


_PART_SCHEMA = pa.schema([("key", pa.binary()), ("value", pa.binary())])
_MAIN = "from mussel.storage.rocksdb.sstbuild import serve; serve()"


class _Worker:
    def __init__(self, nice: int = 0) -> None:
        env = dict(os.environ)
        env["MUSSEL_SST_BUILDER_NICE"] = str(nice)
        # the parent may have found mussel through sys.path changes of its own
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def send(self, src: Path, path: Path, prefix: bytes, header: bytes, compression: str) -> None:
        req = {
            "src": str(src),
            "path": str(path),
            "prefix": prefix.hex(),
            "header": header.hex(),
            "compression": compression,
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"SST builder process exited (code {self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"SST builder: {answer['error']}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class SstBuilders:
    """``workers`` builder processes (``serve``),
    started on first use and restarted after one dies; ``close`` stops them. Builds of
    concurrent loads take turns (a lock)."""

    def __init__(self, workers: int = 2, nice: int = 0, compression: str = "lz4") -> None:
        self.workers = max(1, workers)
        self.nice = nice
        self.compression = compression
        self._procs: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _ready(self) -> list[_Worker]:
        if self._closed:
            raise RuntimeError("SST builders closed")
        alive = [w for w in self._procs if w.alive()]
        for w in self._procs:
            if w not in alive:
                w.stop()
        while len(alive) < self.workers:
            alive.append(_Worker(self.nice))
        self._procs = alive
        return alive

    def warm(self) -> None:
        """Start the processes now, so the first ``build`` does not wait for them."""
        with self._lock:
            self._ready()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._procs]

    def build(
        self,
        workdir: Path,
        name: str,
        prefix: bytes,
        header: bytes,
        keys: Binary,
        values: Binary,
    ) -> list[Path]:
        """Build the chunk's SST files (module docstring): ``workdir/<name>-<i>.sst``."""
        n = len(keys)
        with self._lock:
            procs = self._ready()
            parts = min(len(procs), max(1, n))
            step = -(-n // parts)
            sent: list[_Worker] = []
            paths: list[Path] = []
            try:
                for i, worker in enumerate(procs[:parts]):
                    lo = i * step
                    if lo >= n:
                        break
                    src = workdir / f"{name}-{i}.in.arrow"
                    path = workdir / f"{name}-{i}.sst"
                    part = pa.table(
                        [keys.slice(lo, step), values.slice(lo, step)], schema=_PART_SCHEMA
                    )
                    with pa.OSFile(str(src), "wb") as sink, ipc.new_file(sink, _PART_SCHEMA) as w:
                        w.write_table(part)  # the chunks as they are: no concatenation
                    worker.send(src, path, prefix, header, self.compression)
                    sent.append(worker)
                    paths.append(path)
            finally:
                errors = []
                for worker in sent:  # every answer is read, even after a failure
                    try:
                        worker.receive()
                    except (RuntimeError, OSError, ValueError) as exc:
                        errors.append(exc)
            if errors:
                raise errors[0]
            return paths

    def close(self) -> None:
        with self._lock:
            self._closed = True
            procs, self._procs = self._procs, []
        for w in procs:
            w.stop()
