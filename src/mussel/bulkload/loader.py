"""One bulk load, start to end: read → cells → external sort → ingest → commit.

``run_load`` REQUIRES an epoch already reserved for the table (``Catalog.reserve_epoch``)
and the job's timestamp T. It:

1. reads the source in record batches, turns each into cells (``layouts``), checks
   their sizes against ``Limits`` (an error names the file and row) and feeds the
   ``Sorter`` (which drops duplicate (pk, sk, ts), keeping the last in source order);
2. streams the sorted cells into ``backend.bulk_ingest`` in chunks of ``sst_cells``
   (one SST file each on RocksDB), filtering them first for ``insert_ignore``; every
   ingested version carries the job's epoch, which is pending, so nothing is visible;
3. commits with ``Catalog.commit_epoch``: one atomic catalog write (plus the job
   record and any deferred cells) that makes the epoch visible, with the replace
   floor for ``replace``.

A failure or a cancel at any point before 3 leaves the table as it was (the caller
aborts the epoch); ingested files stay until the expiration service removes them.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from mussel.bulkload.layouts import Layout
from mussel.bulkload.modes import Mode, keep_absent
from mussel.bulkload.sorter import Sorter
from mussel.bulkload.source import Batch, ParquetSource
from mussel.engine import Store
from mussel.errors import InvalidRequestError, MusselError, TooLargeError
from mussel.observability.pacing import LatencyGuard
from mussel.storage import ArrowBulkIngest

__all__ = ["Cancelled", "LoadPlan", "LoadStats", "batch_cells", "check_sizes", "run_load"]


class Cancelled(Exception):
    """Raised inside a load when its job is cancelled."""


@dataclass(frozen=True, slots=True)
class LoadPlan:
    namespace: str
    table: str
    table_id: int
    epoch: int
    ts_us: int
    mode: Mode
    layout: Layout
    source: ParquetSource
    workdir: Path
    batch_rows: int = 65_536
    run_bytes: int = 128 << 20
    sst_cells: int = 500_000


@dataclass
class LoadStats:
    """Live counters of a load, read by the job manager for progress."""

    phase: str = "reading"
    rows: int = 0
    bytes: int = 0
    cells_read: int = 0
    cells_sorted: int = 0
    cells_ingested: int = 0
    duplicates_dropped: int = 0
    skipped_existing: int = 0
    deferred: int = 0
    throttled_steps: int = 0  # steps that paused for online reads (batch priority)
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_sizes(store: Store, cells: pa.Table, path: str) -> None:
    """``TooLargeError``/``InvalidRequestError`` naming the file and row of the first
    cell whose pk, sk or value is outside the store's limits."""
    limits = store.limits
    checks = (
        ("pk", limits.max_pk_bytes, 1),
        ("sk", limits.max_sk_bytes, 0),
        ("value", limits.max_value_bytes, 0),
    )
    for col, most, least in checks:
        lengths = pc.binary_length(cells.column(col))
        bad = pc.or_(pc.greater(lengths, most), pc.less(lengths, least))
        if pc.any(bad).as_py():
            i = pc.index(bad, True).as_py()
            n = lengths[i].as_py()
            row = cells.column("row")[i].as_py()
            if n < least:
                raise InvalidRequestError(f"{path}, row {row}: the {col} is empty")
            raise TooLargeError(
                f"{path}, row {row}: the {col} is {n} bytes; the limit is {most} bytes"
            )


def batch_cells(layout: Layout, batch: Batch, seq0: int, ts_us: int) -> pa.Table:
    """The cells of a batch (``Layout.cells``); bad data is ``InvalidRequestError``
    naming the file and rows."""
    try:
        return layout.cells(batch, seq0, ts_us)
    except MusselError:
        raise
    except (pa.ArrowException, ValueError, TypeError) as exc:
        last = batch.first_row + batch.data.num_rows - 1
        raise InvalidRequestError(
            f"{batch.file.path}, rows {batch.first_row}..{last}: {exc}"
        ) from exc


_DONE = object()


def _prefetch(chunks: Iterator[pa.Table], depth: int = 2) -> Generator[pa.Table, None, None]:
    """``chunks``, computed ``depth`` ahead by a thread: the merge (Arrow, which releases
    the GIL) runs on one core while the caller writes SST files on another.
    Close the generator (``contextlib.closing``) to stop the thread early."""
    q: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    thread = threading.Thread(target=produce, name="mussel-bulk-merge", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, pa.Table)
            yield item
    finally:
        stop.set()
        thread.join()


def run_load(
    store: Store,
    plan: LoadPlan,
    stats: LoadStats,
    cancelled: threading.Event,
    job_items: Callable[[LoadStats], Mapping[bytes, bytes]],
    guard: LatencyGuard | None = None,
) -> None:
    """Run the load and commit it; raises ``Cancelled`` or a ``MusselError``.

    ``job_items`` gives the catalog items (the job's record, committed) written in
    the same atomic step as the commit. ``guard`` is batch priority (SPEC §7): before
    each step (a batch of source rows, a sorted chunk) the load pauses as long as it
    says, so that it slows down while online reads are slow.
    """

    def step() -> None:
        if cancelled.is_set():
            raise Cancelled
        pause = guard.pause() if guard is not None else 0.0
        if pause:
            with stats.lock:
                stats.throttled_steps += 1
            if cancelled.wait(pause):
                raise Cancelled

    src = plan.source
    # insert_ignore looks up each chunk's (pk, sk); the other modes need key and value only
    kept = ("pk", "sk", "value") if plan.mode == "insert_ignore" else ("value",)
    sorter = Sorter(plan.workdir / "runs", plan.run_bytes, kept)
    ingest = store.backend.bulk_ingest(
        plan.table_id, plan.epoch, plan.workdir / "sst", store.catalog.apply_lock
    )
    try:
        if isinstance(ingest, ArrowBulkIngest):
            ingest.expect(src.total_rows)
        seq = 0
        done_bytes = prev_size = 0
        current: str | None = None
        for batch in src.batches(plan.batch_rows):
            step()
            f = batch.file
            if f.path != current:
                if current is not None:
                    done_bytes += prev_size
                current, prev_size = f.path, f.size_bytes
            cells = batch_cells(plan.layout, batch, seq, plan.ts_us)
            check_sizes(store, cells, f.path)
            seq += batch.data.num_rows
            sorter.add(cells)
            with stats.lock:
                stats.rows += batch.data.num_rows
                stats.cells_read += cells.num_rows
                end_row = batch.first_row + batch.data.num_rows
                stats.bytes = done_bytes + (f.size_bytes * end_row // max(f.rows, 1))
        with stats.lock:
            stats.phase = "ingesting"
            stats.bytes = src.total_bytes
        pending: list[pa.Table] = []
        pending_rows = 0

        def flush() -> None:
            nonlocal pending, pending_rows
            if not pending:
                return
            t = pa.concat_tables(pending)
            pending, pending_rows = [], 0
            keys, values = t.column("key"), t.column("value")  # chunked: no copy
            if isinstance(ingest, ArrowBulkIngest):
                counts = ingest.add_arrow(keys, values)
            else:
                counts = ingest.add(keys.to_pylist(), values.to_pylist())
            with stats.lock:
                stats.cells_ingested += counts.written + counts.deferred
                stats.deferred += counts.deferred

        chunks = contextlib.closing(_prefetch(sorter.sorted_chunks()))
        with chunks as sorted_chunks:
            for sorted_chunk in sorted_chunks:
                step()
                chunk = sorted_chunk
                with stats.lock:
                    stats.cells_sorted += chunk.num_rows
                    stats.duplicates_dropped = sorter.duplicates
                if plan.mode == "insert_ignore":
                    flush()  # the check must see the table as it is, chunk by chunk
                    chunk = keep_absent(store, plan.namespace, plan.table, chunk)
                    with stats.lock:
                        stats.skipped_existing += sorted_chunk.num_rows - chunk.num_rows
                if chunk.num_rows:
                    pending.append(chunk.select(["key", "value"]))
                    pending_rows += chunk.num_rows
                if pending_rows >= plan.sst_cells:
                    flush()
        flush()
        with stats.lock:
            stats.duplicates_dropped = sorter.duplicates
            stats.phase = "committing"
        if cancelled.is_set():
            raise Cancelled
        store.catalog.commit_epoch(
            plan.namespace,
            plan.table,
            plan.table_id,
            plan.epoch,
            floor_ts_us=plan.ts_us if plan.mode == "replace" else None,
            write=lambda catalog_items, _expect: ingest.commit_write(
                {**catalog_items, **job_items(stats)}
            ),
        )
    finally:
        sorter.discard()
        ingest.discard()
        shutil.rmtree(plan.workdir, ignore_errors=True)
