"""External sort of cells by key, dropping duplicates, in bounded memory.

Cells (``layouts.CELL_SCHEMA``) arrive in source order. Each gets a sort key: the
``codec.keys`` encoding of (pk, sk, ts) without the table prefix,
``escaped(pk) 0x00 0x01 escaped(sk) 0x00 0x01 uint64(0x7FFF.. - ts)``, whose bytewise
order is (pk, sk) ascending then ts descending, exactly the store's. Cells are
buffered up to ``run_bytes``, sorted by key (a stable sort: equal keys stay in source
order), stripped of duplicate keys (the last in source order is kept, the SPEC rule), and, when
more than one run is needed, spilled to an Arrow IPC file in ``workdir``.

``sorted_chunks`` then yields the sorted, duplicate-free cells in chunks. With
several runs it merges them without a per-cell Python loop: it takes from every run
the rows up to the smallest "last key buffered" among the runs, sorts that slice
(all rows with those keys are in it), drops duplicates and yields it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from mussel.bulkload.layouts import CELL_SCHEMA

__all__ = ["KEYED_SCHEMA", "Sorter", "sort_keys"]

_TS_BIAS = 0x7FFF_FFFF_FFFF_FFFF
KEYED_SCHEMA = CELL_SCHEMA.append(pa.field("key", pa.binary()))


def _one_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _escaped(arr: pa.Array) -> pa.Array:
    """``codec.keys.escape`` of every value; the array itself (no copy) when no value
    has a 0x00 byte, which one vectorised scan of its data tells."""
    if len(arr) == 0:
        return arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=arr.offset + len(arr) + 1)
    lo, hi = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    data = arr.buffers()[2]
    if data is None or not np.frombuffer(data, dtype=np.uint8)[lo:hi].all():
        return pc.replace_substring(arr, b"\x00", b"\x00\xff")
    return arr


def sort_keys(cells: pa.Table) -> pa.Array:
    """The encoded cell keys (module docstring) of a ``CELL_SCHEMA`` table."""
    n = cells.num_rows
    ts = cells.column("ts").to_numpy()
    inv = (np.uint64(_TS_BIAS) - ts.astype(np.int64).view(np.uint64)).astype(">u8")
    # the 8-byte parts as a binary array over the numpy buffer (offsets 0, 8, 16, ...)
    ts_part = pa.Array.from_buffers(
        pa.binary(),
        n,
        [None, pa.py_buffer(np.arange(0, 8 * n + 1, 8, dtype=np.int32)), pa.py_buffer(inv)],
    )
    pk = _escaped(_one_array(cells.column("pk")))
    sk = _escaped(_one_array(cells.column("sk")))
    term = pa.scalar(b"\x00\x01", pa.binary())
    empty = pa.scalar(b"", pa.binary())
    joined = pc.binary_join_element_wise(pk, term, sk, term, ts_part, empty)
    if isinstance(joined, pa.ChunkedArray):
        return joined.combine_chunks()
    return joined


_CHUNK_ROWS = 262_144
_RUN_BATCH_ROWS = 16_384  # the merge buffers one batch per run: this bounds its memory
_MIN_WINDOW = 1024

# Hand freed Arrow memory back at once, so a load's peak RSS is what it uses (a
# pyarrow built without jemalloc raises NotImplementedError).
with contextlib.suppress(NotImplementedError):
    pa.jemalloc_set_decay_ms(0)


def _in_order(key: pa.Array) -> bool:
    """Whether ``key`` is non-decreasing: one vectorised pass, so already-sorted input
    (a warehouse export ordered by key, the runs of a sorted source) skips the sort."""
    n = len(key)
    return n < 2 or bool(pc.all(pc.less_equal(key.slice(0, n - 1), key.slice(1))).as_py())


def _last_of_each(key: pa.Array) -> pa.Array | None:
    """For a sorted ``key``: a mask keeping the last of each run of equal keys, or None
    when no two neighbours are equal (nothing to drop: the caller copies nothing)."""
    n = len(key)
    if n < 2:
        return None
    differs = pc.not_equal(key.slice(0, n - 1), key.slice(1))
    if pc.all(differs).as_py():
        return None
    return pa.concat_arrays([differs, pa.array([True])])


_MAX_WORDS = 8  # keys compared on their first 64 bytes by the word sort
_NUL = pa.scalar(b"", pa.binary())
_MAX_PADDED = 2**31 - 1


def _word_order(key: pa.Array) -> np.ndarray | None:
    """Stable sort indices of ``key`` computed on big-endian 64-bit words, or None
    when they cannot decide the order.

    Each key, padded with zero bytes to ``8 * words`` bytes, is cut into ``words``
    unsigned integers (``words`` covers the longest key, at most ``_MAX_WORDS``);
    ``numpy.lexsort`` (stable, integer compares, no indirection to the key bytes) over
    the words that are not the same in every row is several times cheaper than a
    sort comparing binary values. Word order is bytewise order except where two
    different keys have the same padded words (one is the other followed by zero
    bytes, or they differ only past the words): the check below finds such neighbours
    and the caller then sorts the binary keys themselves.
    """
    n = len(key)
    lengths = pc.binary_length(key)
    longest = int(pc.max(lengths).as_py() or 0)
    words = max(1, min(_MAX_WORDS, -(-longest // 8)))
    width = 8 * words
    if int(pc.sum(lengths).as_py() or 0) + n * width > _MAX_PADDED:
        return None  # the padded copy would not fit a binary array's 32-bit offsets
    pad = pa.scalar(bytes(width), pa.binary())
    fixed = pc.binary_slice(pc.binary_join_element_wise(key, pad, _NUL), 0, width)
    offsets = np.frombuffer(fixed.buffers()[1], dtype=np.int32, count=fixed.offset + n + 1)
    start = int(offsets[fixed.offset])
    data = np.frombuffer(fixed.buffers()[2], dtype=np.uint8)[start : start + n * width]
    matrix = data.view(">u8").reshape(n, words)
    cols = [matrix[:, i].astype(np.uint64) for i in range(words)]  # native, contiguous
    varying = [c for c in cols if c.min() != c.max()]
    if not varying:
        order = np.arange(n, dtype=np.int64)
    else:
        # the first varying word usually decides (one stable integer sort); else all do
        order = np.argsort(varying[0], kind="stable")
        first = varying[0][order]
        if len(varying) > 1 and bool((first[1:] == first[:-1]).any()):
            order = np.lexsort(varying[::-1])  # stable; the last key is the primary one
    tie: np.ndarray | None = None
    for c in varying:
        ordered = c[order]
        eq = ordered[1:] == ordered[:-1]
        tie = eq if tie is None else tie & eq
    tied = np.arange(n - 1) if tie is None else np.flatnonzero(tie)
    if len(tied):
        # neighbours with equal words must be equal keys (duplicates, kept in order)
        left = key.take(pa.array(order[tied]))
        right = key.take(pa.array(order[tied + 1]))
        if not pc.all(pc.equal(left, right)).as_py():
            return None
    return order


def _stable_order(key: pa.Array) -> pa.Array | None:
    """Indices sorting ``key`` (stable: equal keys keep their order), or None when it is
    in order already."""
    if _in_order(key):
        return None
    order = _word_order(key)
    if order is None:
        return pc.sort_indices(key)  # documented stable
    return pa.array(order)


def _unique_order(t: pa.Table) -> pa.Array | None:
    """Row indices of ``t`` sorted by key, keeping the last row (in ``t``'s order) of
    each key, or None when that is every row in order (sorted input without
    duplicates); ``t`` must be in source order (see ``_dedup``)."""
    key = t.column("key").combine_chunks()
    idx = _stable_order(key)
    if idx is not None:
        key = key.take(idx)
    keep = _last_of_each(key)
    if keep is None:
        return idx
    if idx is None:
        idx = pa.array(np.arange(len(key), dtype=np.int64))
    return idx.filter(keep)


def _dedup(t: pa.Table) -> tuple[pa.Table, int]:
    """Sort by key and keep the last row of each key in source order.

    REQUIRES: ``t``'s rows in source order (seq ascending). Arrow's ``sort_indices``
    is stable (documented), so equal keys stay in source order and the last of each
    run of equal keys is the one to keep. Only the (small) key column is combined into
    one array; the rows are gathered with a take on the chunked table (several times
    cheaper than combining the values first), and not at all when the keys are in
    order already; the duplicate filter copies only when there are duplicates.
    """
    if t.num_rows == 0:
        return t, 0
    key = t.column("key").combine_chunks()
    idx = _stable_order(key)
    if idx is not None:
        t = t.take(idx)
        key = key.take(idx)
    keep = _last_of_each(key)
    if keep is None:
        return t, 0
    kept = t.filter(keep)
    return kept, t.num_rows - kept.num_rows


def _gathered(steps: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """``steps`` (consecutive sorted pieces) joined into tables of at least ``rows`` rows
    (the last may be smaller), without copying: a merge step yields a few thousand
    rows, and a consumer that prefetches a fixed number of chunks (the loader) must be
    able to run a whole SST build ahead of the builders."""
    held: list[pa.Table] = []
    count = 0
    for t in steps:
        if t.num_rows == 0:
            continue
        held.append(t)
        count += t.num_rows
        if count >= rows:
            yield pa.concat_tables(held)
            held, count = [], 0
    if held:
        yield pa.concat_tables(held)


class Sorter:
    """``columns``: the cell columns carried through the sort besides ``key`` (None: all
    of ``CELL_SCHEMA``); carrying fewer makes the runs smaller and the sorts faster."""

    def __init__(
        self, workdir: Path, run_bytes: int = 128 << 20, columns: Sequence[str] | None = None
    ) -> None:
        self._workdir = workdir
        self._run_bytes = run_bytes
        names = list(CELL_SCHEMA.names if columns is None else columns)
        self._columns = [c for c in names if c != "key"]
        self._schema = pa.schema(
            [CELL_SCHEMA.field(c) for c in self._columns] + [KEYED_SCHEMA.field("key")]
        )
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._runs: list[Path] = []
        # One run is sorted and written by a thread while the next is read (Arrow's
        # sort and IPC writes release the GIL, so this uses a second core).
        self._spiller = ThreadPoolExecutor(1, thread_name_prefix="mussel-bulk-spill")
        self._spilling: Future[None] | None = None
        self._lock = threading.Lock()
        self.duplicates = 0
        self.cells = 0  # after dropping duplicates within each run

    def add(self, cells: pa.Table) -> None:
        if cells.num_rows == 0:
            return
        keyed = cells.select(self._columns).append_column("key", sort_keys(cells))
        self._buffer.append(keyed)
        self._buffered += keyed.nbytes
        if self._buffered >= self._run_bytes:
            self._spill()

    def _spill(self) -> None:
        """Hand the buffer to the spill thread (waiting for the previous spill first, so
        at most one run is being sorted while the next one fills)."""
        self._wait_spill()
        parts = self._buffer
        self._buffer, self._buffered = [], 0
        path = self._workdir / f"run-{len(self._runs):05d}.arrow"
        self._runs.append(path)
        self._spilling = self._spiller.submit(self._write_run, parts, path)

    def _wait_spill(self) -> None:
        if self._spilling is not None:
            done, self._spilling = self._spilling, None
            done.result()  # re-raises a failed spill (e.g. a full disk)

    def _write_run(self, parts: list[pa.Table], path: Path) -> None:
        t, dropped = _dedup(pa.concat_tables(parts) if parts else self._schema.empty_table())
        with self._lock:
            self.duplicates += dropped
            self.cells += t.num_rows
        self._workdir.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, self._schema) as w:
            for rb in t.to_batches(max_chunksize=_RUN_BATCH_ROWS):
                w.write_batch(rb)

    def sorted_chunks(self) -> Iterator[pa.Table]:
        """Every cell once, sorted by key, in chunks; call after the last ``add``."""
        if not self._runs:
            # One run in memory: sort and de-duplicate the keys only, then gather each
            # chunk's rows (no second full copy of the values).
            t = pa.concat_tables(self._buffer) if self._buffer else self._schema.empty_table()
            self._buffer, self._buffered = [], 0
            order = _unique_order(t)
            if order is None:  # sorted input, no duplicates: no gather at all
                self.cells += t.num_rows
                for start in range(0, t.num_rows, _CHUNK_ROWS):
                    yield t.slice(start, _CHUNK_ROWS)
                return
            self.duplicates += t.num_rows - len(order)
            self.cells += len(order)
            for start in range(0, len(order), _CHUNK_ROWS):
                yield t.take(order.slice(start, _CHUNK_ROWS))
            return
        if self._buffer:
            self._spill()
        self._wait_spill()
        yield from _gathered(self._merge(), _CHUNK_ROWS)

    def _merge(self) -> Iterator[pa.Table]:
        # plain reads, not mmap: touched mmap pages would count in the RSS until evicted
        readers = [ipc.open_file(pa.OSFile(str(p), "r")) for p in self._runs]
        next_batch = [0] * len(readers)
        buffers: list[pa.Table | None] = [None] * len(readers)

        def refill(i: int) -> None:
            r = readers[i]
            while (buffers[i] is None or buffers[i].num_rows == 0) and next_batch[i] < (  # type: ignore[union-attr]
                r.num_record_batches
            ):
                buffers[i] = pa.Table.from_batches([r.get_batch(next_batch[i])])
                next_batch[i] += 1

        for i in range(len(readers)):
            refill(i)
        # Each step looks at a window of the first `window` rows of every run, so a
        # step holds at most ~_CHUNK_ROWS rows however many runs there are.
        window = max(_MIN_WINDOW, _CHUNK_ROWS // len(readers))
        # Cells once counted per run: recount after dropping duplicates across runs.
        self.cells = 0
        while True:
            live = [i for i, b in enumerate(buffers) if b is not None and b.num_rows]
            if not live:
                return
            # A run with rows beyond its window (buffered or unread) bounds the keys
            # that are final now: the largest key of its window. Keys are unique within
            # a run, so every run gives at most `window` rows up to the bound.
            ends = []
            for i in live:
                b = buffers[i]
                assert b is not None
                if b.num_rows > window or next_batch[i] < readers[i].num_record_batches:
                    ends.append(b.column("key")[min(window, b.num_rows) - 1].as_py())
            bound = min(ends) if ends else None
            parts = []
            for i in live:
                b = buffers[i]
                assert b is not None
                if bound is None:
                    take = b.num_rows
                else:
                    take = int(pc.sum(pc.less_equal(b.column("key"), bound)).as_py() or 0)
                if take:
                    parts.append(b.slice(0, take))
                    buffers[i] = b.slice(take)
                    refill(i)
            t, dropped = _dedup(pa.concat_tables(parts))
            self.duplicates += dropped
            self.cells += t.num_rows
            yield t

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._wait_spill()
        self._spiller.shutdown(wait=True)
        for p in self._runs:
            p.unlink(missing_ok=True)
        self._runs = []
        self._buffer = []
