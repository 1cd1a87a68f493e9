"""Each mode's semantics (SPEC §2), on both backends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mussel.bulkload import JobManager
from mussel.engine import Store
from mussel.model import Put
from tests.unit.bulkload.conftest import T0, content, load, write_cells


def test_merge_upserts_at_the_job_ts_and_keeps_newer_streaming_writes(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    t = store.table("ns", "t")
    t.put("a", "x", "old", ts=T0 - 10, ack="applied")
    t.put("b", "x", "newer", ts=T0 + 10, ack="applied")
    src = write_cells(tmp_path / "in.parquet", [("a", "x", "bulk-a"), ("b", "x", "bulk-b")])
    job = load(jobs, src, mode="merge")
    assert job.state == "committed", job.error
    assert job.progress.rows == 2 and job.progress.fraction == 1.0
    assert [c.value for c in t.get("a", "x")] == [b"bulk-a"]
    assert t.get("a", "x", versions=5)[1].value == b"old"  # merge keeps older versions
    assert [c.value for c in t.get("b", "x")] == [b"newer"]  # a bulk cell never hides newer
    assert store.table_stats("ns", "t").approx_cells >= 4


def test_rows_with_ts_use_it_and_a_null_ts_means_t(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    src = write_cells(tmp_path / "in.parquet", [("a", "", "v1", 5), ("b", "", "v2", None)])
    assert load(jobs, src).state == "committed"
    assert content(store) == [(b"a", b"", 5, b"v1"), (b"b", b"", T0, b"v2")]


def test_explicit_job_ts(store: Store, jobs: JobManager, tmp_path: Path) -> None:
    src = write_cells(tmp_path / "in.parquet", [("a", "", "v")])
    assert load(jobs, src, ts=1234).state == "committed"
    assert content(store) == [(b"a", b"", 1234, b"v")]


def test_replace_keeps_only_loaded_cells_and_versions_newer_than_t(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    t = store.table("ns", "t")
    t.write(
        [
            Put("gone", "", "old", ts=T0 - 100),
            Put("kept", "", "old", ts=T0 - 100),
            Put("kept", "", "streamed-later", ts=T0 + 100),
            Put("only-new", "", "x", ts=T0 + 5),
        ],
        ack="applied",
    )
    src = write_cells(tmp_path / "in.parquet", [("kept", "", "bulk"), ("fresh", "", "bulk")])
    job = load(jobs, src, mode="replace")
    assert job.state == "committed", job.error
    assert content(store, versions=10) == [
        (b"fresh", b"", T0, b"bulk"),
        (b"kept", b"", T0 + 100, b"streamed-later"),
        (b"kept", b"", T0, b"bulk"),
        (b"only-new", b"", T0 + 5, b"x"),
    ]
    # streaming writes after the commit are not floored, even with an old ts
    t.put("late", "", "v", ts=T0 - 1000, ack="applied")
    assert t.get("late") != []
    # point reads take the general path now (the table has a floor)
    assert [c.value for c in t.get("kept")] == [b"streamed-later"]
    assert t.get("gone") == []


def test_a_second_replace_replaces_the_first(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    a = write_cells(tmp_path / "a.parquet", [("k1", "", "a"), ("k2", "", "a")])
    b = write_cells(tmp_path / "b.parquet", [("k2", "", "b"), ("k3", "", "b")])
    assert load(jobs, a, mode="replace", ts=100).state == "committed"
    assert load(jobs, b, mode="replace", ts=200).state == "committed"
    assert content(store) == [(b"k2", b"", 200, b"b"), (b"k3", b"", 200, b"b")]


def test_replace_reloading_the_same_keys_and_ts_collides_and_commits(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    a = write_cells(tmp_path / "a.parquet", [("k1", "", "a", 7), ("k2", "", "a", 7)])
    b = write_cells(tmp_path / "b.parquet", [("k1", "", "b", 7)])
    assert load(jobs, a, mode="replace", ts=7).state == "committed"
    assert load(jobs, b, mode="replace", ts=7).state == "committed"
    assert content(store) == [(b"k1", b"", 7, b"b")]


def test_merge_reloading_the_same_keys_replaces_values_at_equal_ts(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    a = write_cells(tmp_path / "a.parquet", [("k1", "", "a", 7), ("k2", "", "a", 7)])
    b = write_cells(tmp_path / "b.parquet", [("k1", "", "b", 7)])
    assert load(jobs, a).state == "committed"
    assert load(jobs, b).state == "committed"
    assert content(store) == [(b"k1", b"", 7, b"b"), (b"k2", b"", 7, b"a")]


def test_insert_ignore_writes_only_absent_cells(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    t = store.table("ns", "t")
    t.put("a", "x", "existing", ts=1, ack="applied")
    t.put("d", "x", "deleted", ts=1, ack="applied")
    t.delete("d", "x", ts=2, ack="applied")
    src = write_cells(
        tmp_path / "in.parquet",
        [("a", "x", "bulk"), ("a", "y", "bulk"), ("d", "x", "bulk"), ("z", "", "bulk")],
    )
    job = load(jobs, src, mode="insert_ignore")
    assert job.state == "committed", job.error
    assert job.progress.skipped_existing == 1
    assert content(store) == [
        (b"a", b"x", 1, b"existing"),
        (b"a", b"y", T0, b"bulk"),
        (b"d", b"x", T0, b"bulk"),
        (b"z", b"", T0, b"bulk"),
    ]


def test_duplicates_keep_the_last_in_source_order(
    store: Store, jobs: JobManager, tmp_path: Path
) -> None:
    d = tmp_path / "dir"
    write_cells(d / "part-00000.parquet", [("a", "", "1"), ("b", "", "1"), ("a", "", "2")])
    write_cells(d / "part-00001.parquet", [("a", "", "3"), ("c", "", "1")])
    write_cells(
        d / "part-00002.parquet",
        [
            ("b", "", "last"),
            (
                "a",
                "",
                "last",
            ),
        ],
    )
    job = load(jobs, d)
    assert job.state == "committed", job.error
    assert job.progress.duplicates_dropped == 4
    assert job.to_json()["duplicates_dropped"] == 4
    assert content(store) == [
        (b"a", b"", T0, b"last"),
        (b"b", b"", T0, b"last"),
        (b"c", b"", T0, b"1"),
    ]


def test_duplicates_across_spilled_runs(store: Store, tmp_path: Path) -> None:
    rows = [(f"k{i % 500:04d}", "s", f"v{i}") for i in range(3000)]
    src = write_cells(tmp_path / "in.parquet", rows, row_group_size=300)
    with JobManager(store, tmp_path / "bulk", batch_rows=100, run_bytes=4096, sst_cells=128) as m:
        job = m.wait(m.submit("ns", "t", str(src)).id, 60)
    assert job.state == "committed", job.error
    assert job.progress.duplicates_dropped == 2500
    got = content(store)
    assert len(got) == 500
    assert got[0] == (b"k0000", b"s", T0, b"v2500")
    assert got[-1] == (b"k0499", b"s", T0, b"v2999")


def test_replace_is_atomic_under_concurrent_reads_and_streaming_writes(
    store: Store, tmp_path: Path
) -> None:
    """No read sees a mix of old and new content; streaming writes newer than T survive."""
    t = store.table("ns", "t")
    n = 2000
    t.write([Put(f"k{i:05d}", "", "old", ts=T0 - 1) for i in range(n)], ack="applied")
    src = write_cells(
        tmp_path / "in.parquet", [(f"k{i:05d}", "", "new") for i in range(n)], row_group_size=200
    )
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            # one page: a read of the whole content (pages are separate reads)
            page = store.scan("ns", "t", pk_prefix="k", limit=10_000, consistency="eventual")
            values = {c.value for c in page.cells}
            if values not in ({b"old"}, {b"new"}):
                errors.append(f"mixed read: {sorted(values)[:5]}")
                return
            seen.add(next(iter(values)).decode())

    streamed = []

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 3000:
            t.put(f"s{i:05d}", "", "stream", ts=T0 + 1 + i)
            streamed.append(i)
            i += 1
            stop.wait(0.0005)

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for th in threads:
        th.start()
    try:
        with JobManager(store, tmp_path / "bulk", batch_rows=100, sst_cells=300) as m:
            job = m.wait(m.submit("ns", "t", str(src), mode="replace").id, 60)
        # let the reader observe the result: on a loaded machine one scan of
        # 2,000 cells can take longer than any fixed pause, so wait for it
        deadline = time.monotonic() + 30
        while "new" not in seen and not errors and time.monotonic() < deadline:
            stop.wait(0.01)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert job.state == "committed", job.error
    assert not errors, errors
    assert "new" in seen
    final = [(c.pk, c.value) for c in store.scan_all("ns", "t", consistency="strong")]
    assert [v for pk, v in final if pk.startswith(b"k")] == [b"new"] * n
    # every acknowledged streaming write (ts > T) survived the replace
    got = {pk for pk, _ in final if pk.startswith(b"s")}
    assert got == {f"s{i:05d}".encode() for i in streamed}


@pytest.mark.parametrize("mode", ["merge", "replace", "insert_ignore"])
def test_nothing_is_visible_until_the_commit_write(store: Store, tmp_path: Path, mode: str) -> None:
    """At the instant of the commit write every loaded cell is stored, and still no
    read sees any of them (nor misses an old one)."""
    from mussel.bulkload.layouts import parse_layout
    from mussel.bulkload.loader import LoadPlan, LoadStats, run_load
    from mussel.bulkload.source import open_source

    t = store.table("ns", "t")
    t.write([Put("a", "", "old", ts=5), Put("same-ts", "", "old", ts=T0)], ack="applied")
    before = content(store)
    src = write_cells(
        tmp_path / "in.parquet",
        [(f"k{i:04d}", "", "new") for i in range(3000)]
        + [("a", "", "new"), ("same-ts", "", "new")],
    )
    info, epoch = store.catalog.reserve_epoch("ns", "t")
    plan = LoadPlan(
        "ns", "t", info.id, epoch, T0, mode, parse_layout("cells", {}),  # type: ignore[arg-type]
        open_source(str(src)), tmp_path / "w", batch_rows=500, sst_cells=700,
    )  # fmt: skip
    seen: list[list[tuple[bytes, bytes, int, bytes]]] = []

    def at_commit(stats: LoadStats) -> dict[bytes, bytes]:
        assert stats.cells_ingested == (3002 if mode != "insert_ignore" else 3000)
        seen.append(content(store))  # eventual reads: the replayer is not needed
        return {}

    run_load(store, plan, LoadStats(), threading.Event(), at_commit)
    assert seen == [before]
    after = dict(((pk, sk), v) for pk, sk, _, v in content(store))
    assert after[(b"k0000", b"")] == b"new"
    if mode == "insert_ignore":
        assert after[(b"a", b"")] == b"old" and after[(b"same-ts", b"")] == b"old"
    else:
        assert after[(b"same-ts", b"")] == b"new"  # the deferred twin won at the commit
