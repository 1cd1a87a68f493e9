"""One contract, every backend: the same reads for the same history."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mussel.model import OP_DELETE, OP_PUT, Cell, Floor, Mutation, ScanCell
from mussel.storage.base import Backend, RowQuery, ScanQuery, SkRange
from mussel.storage.memory import MemoryBackend
from mussel.storage.rocksdb import RocksBackend
from mussel.storage.sql import SqlBackend
from mussel.storage.versions import ReadFilter, Visibility
from tests.unit.storage.conftest import SMALL
from tests.unit.storage.model_history import ModelTable, W

T = 1
V1 = Visibility()
V5 = Visibility(max_versions=5)
EPOCHS = {T: 0, 2: 0}


def put(pk: bytes, sk: bytes, ts: int, value: bytes, table: int = T) -> Mutation:
    return Mutation(table, OP_PUT, pk, sk, ts, value)


def delete(pk: bytes, sk: bytes, ts: int) -> Mutation:
    return Mutation(T, OP_DELETE, pk, sk, ts)


def row(b: Backend, pk: bytes, vis: Visibility = V1, **kw: object) -> list[Cell]:
    cells, _ = b.read_row(T, vis, pk, RowQuery(**kw))  # type: ignore[arg-type]
    return cells


def test_row_cells_are_sk_ordered_newest_first(backend: Backend) -> None:
    backend.apply(
        [put(b"r", b"b", 1, b"b1"), put(b"r", b"a", 1, b"a1"), put(b"r", b"a", 2, b"a2")],
        EPOCHS,
        {0: 3},
    )
    assert row(backend, b"r") == [Cell(b"a", 2, b"a2"), Cell(b"b", 1, b"b1")]
    assert row(backend, b"r", V5, rf=ReadFilter(versions=5)) == [
        Cell(b"a", 2, b"a2"),
        Cell(b"a", 1, b"a1"),
        Cell(b"b", 1, b"b1"),
    ]
    assert backend.applied_positions() == {0: 3}


def test_equal_timestamp_later_write_wins(backend: Backend) -> None:
    backend.apply([put(b"r", b"", 5, b"first"), put(b"r", b"", 5, b"second")], EPOCHS, {})
    assert row(backend, b"r", V5, rf=ReadFilter(versions=5)) == [Cell(b"", 5, b"second")]
    backend.apply([delete(b"r", b"", 5)], EPOCHS, {})
    assert row(backend, b"r") == []
    backend.apply([put(b"r", b"", 5, b"again")], EPOCHS, {})
    assert row(backend, b"r") == [Cell(b"", 5, b"again")]


def test_sk_prefix_range_and_exact_cell(backend: Backend) -> None:
    sks = [b"", b"a", b"a\x00", b"a\x00b", b"ab", b"b", b"\xff"]
    backend.apply([put(b"r", sk, 1, sk or b"empty") for sk in sks], EPOCHS, {})
    assert [c.sk for c in row(backend, b"r", sks=SkRange(prefix=b"a"))] == [
        b"a",
        b"a\x00",
        b"a\x00b",
        b"ab",
    ]
    assert [c.sk for c in row(backend, b"r", sks=SkRange(prefix=b"a\x00"))] == [
        b"a\x00",
        b"a\x00b",
    ]
    assert [c.sk for c in row(backend, b"r", sks=SkRange(start=b"a\x00", end=b"b"))] == [
        b"a\x00",
        b"a\x00b",
        b"ab",
    ]
    assert [c.sk for c in row(backend, b"r", sks=SkRange(sk=b""))] == [b""]
    assert [c.sk for c in row(backend, b"r", sks=SkRange(sk=b"a"))] == [b"a"]
    assert row(backend, b"r", sks=SkRange(sk=b"zz")) == []
    assert [c.sk for c in row(backend, b"r", sks=SkRange(start=b"b"))] == [b"b", b"\xff"]


def test_time_range_and_versions(backend: Backend) -> None:
    backend.apply([put(b"r", b"s", ts, b"%d" % ts) for ts in range(1, 8)], EPOCHS, {})
    vis = Visibility(max_versions=10)
    cells = row(backend, b"r", vis, rf=ReadFilter(min_ts=3, max_ts=6, versions=10))
    assert [c.ts for c in cells] == [5, 4, 3]
    cells = row(backend, b"r", vis, rf=ReadFilter(min_ts=3, max_ts=6, versions=2))
    assert [c.ts for c in cells] == [5, 4]


def test_pagination_resumes_inside_a_cell(backend: Backend) -> None:
    backend.apply(
        [put(b"r", sk, ts, b"x") for sk in (b"a", b"b", b"c") for ts in (1, 2, 3)], EPOCHS, {}
    )
    vis, rf = Visibility(max_versions=3), ReadFilter(versions=3)
    seen: list[tuple[bytes, int]] = []
    after = None
    while True:
        cells, more = backend.read_row(T, vis, b"r", RowQuery(rf=rf, limit=2, after=after))
        seen += [(c.sk, c.ts) for c in cells]
        if not more:
            break
        after = (cells[-1].sk, cells[-1].ts)
    assert seen == [(sk, ts) for sk in (b"a", b"b", b"c") for ts in (3, 2, 1)]


def test_more_flag_is_false_when_nothing_visible_follows(backend: Backend) -> None:
    backend.apply([put(b"r", b"a", 1, b"x"), delete(b"r", b"b", 1)], EPOCHS, {})
    cells, more = backend.read_row(T, V1, b"r", RowQuery(limit=1))
    assert cells == [Cell(b"a", 1, b"x")]
    assert more is False


def test_multi_get_cells_and_rows(backend: Backend) -> None:
    backend.apply([put(b"p1", b"a", 1, b"1"), put(b"p2", b"b", 1, b"2")], EPOCHS, {})
    got = backend.multi_get(T, V1, [(b"p1", b"a"), (b"p2", None), (b"p3", b"a")], ReadFilter(), 10)
    assert got == [[Cell(b"a", 1, b"1")], [Cell(b"b", 1, b"2")], []]


def test_scan_by_pk_range_prefix_and_pagination(backend: Backend) -> None:
    pks = [b"a", b"a\x00", b"ab", b"b", b"c"]
    backend.apply(
        [put(pk, sk, 1, pk + sk) for pk in pks for sk in (b"x", b"y")]
        + [put(b"zz", b"x", 1, b"other table", table=2)],
        EPOCHS,
        {},
    )
    cells, more = backend.scan(T, V1, ScanQuery())
    assert [(c.pk, c.sk) for c in cells] == [(pk, sk) for pk in pks for sk in (b"x", b"y")]
    assert more is False
    cells, _ = backend.scan(T, V1, ScanQuery(pk_prefix=b"a"))
    assert {c.pk for c in cells} == {b"a", b"a\x00", b"ab"}
    cells, _ = backend.scan(T, V1, ScanQuery(pk_start=b"a\x00", pk_end=b"b"))
    assert {c.pk for c in cells} == {b"a\x00", b"ab"}
    out: list[ScanCell] = []
    after = None
    while True:
        cells, more = backend.scan(T, V1, ScanQuery(limit=3, after=after))
        out += cells
        if not more:
            break
        after = (cells[-1].pk, cells[-1].sk, cells[-1].ts)
    assert [(c.pk, c.sk) for c in out] == [(pk, sk) for pk in pks for sk in (b"x", b"y")]


def test_mutations_of_unknown_tables_are_skipped(backend: Backend) -> None:
    backend.apply([put(b"r", b"", 1, b"x", table=99)], EPOCHS, {0: 1})
    assert backend.read_row(99, V1, b"r", RowQuery())[0] == []
    assert backend.applied_positions() == {0: 1}


def test_drop_table_removes_only_its_data(backend: Backend) -> None:
    backend.apply([put(b"r", b"", 1, b"x"), put(b"r", b"", 1, b"y", table=2)], EPOCHS, {})
    backend.drop_table_data(T)
    assert row(backend, b"r") == []
    assert backend.read_row(2, V1, b"r", RowQuery())[0] == [Cell(b"", 1, b"y")]
    assert backend.table_stats(T).approx_cells == 0
    assert backend.table_stats(2).approx_cells == 1


def test_floors_hide_older_epochs(backend: Backend) -> None:
    backend.apply([put(b"r", b"", 10, b"old"), put(b"r", b"", 30, b"new")], {T: 0}, {})
    backend.apply([put(b"r", b"", 5, b"loaded")], {T: 1}, {})
    vis = Visibility(max_versions=5, floors=(Floor(20, 1),))
    assert row(backend, b"r", vis, rf=ReadFilter(versions=5)) == [
        Cell(b"", 30, b"new"),
        Cell(b"", 5, b"loaded"),
    ]
    assert backend.multi_get(T, vis, [(b"r", b"")], ReadFilter(versions=5), 10) == [
        [Cell(b"", 30, b"new"), Cell(b"", 5, b"loaded")]
    ]


def test_meta_items_are_atomic_and_ordered(backend: Backend) -> None:
    backend.meta_write({b"\x00k\x00b": b"2", b"\x00k\x00a": b"1", b"\x00j\x00": b"x"})
    assert backend.meta_get(b"\x00k\x00a") == b"1"
    assert backend.meta_scan(b"\x00k\x00") == [(b"\x00k\x00a", b"1"), (b"\x00k\x00b", b"2")]
    backend.meta_write({b"\x00k\x00a": None})
    assert backend.meta_get(b"\x00k\x00a") is None


def test_rocks_positions_stats_and_data_survive_reopen(tmp_path: Path) -> None:
    b = RocksBackend(tmp_path / "db", SMALL)
    b.apply([put(b"r", b"s", 1, b"v")], EPOCHS, {3: 7})
    b.close()
    b = RocksBackend(tmp_path / "db", SMALL)
    try:
        assert b.applied_positions() == {3: 7}
        assert b.table_stats(T).approx_cells == 1
        assert row(b, b"r") == [Cell(b"s", 1, b"v")]
    finally:
        b.close()


# -- differential: MemoryBackend, RocksBackend and the naive model agree ---------

op = st.tuples(
    st.sampled_from([b"p", b"q", b"p\x00"]),
    st.sampled_from([b"", b"a", b"a\x00", b"b"]),
    st.integers(0, 6),
    st.booleans(),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(op, max_size=40),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 5)),
    st.integers(0, 10),
)
def test_backends_agree_with_the_model(
    tmp_path_factory: pytest.TempPathFactory,
    pg_url: str,
    ops: list[tuple[bytes, bytes, int, bool]],
    max_versions: int,
    ttl_s: int | None,
    now_s: int,
) -> None:
    rocks = RocksBackend(tmp_path_factory.mktemp("diff") / "db", SMALL)
    memory = MemoryBackend()
    sql = SqlBackend(pg_url, pool_size=1)  # one database for every example: start empty
    sql.drop_table_data(T)
    model = ModelTable()
    try:
        muts = []
        for i, (pk, sk, ts, is_delete) in enumerate(ops):
            value = b"" if is_delete else b"v%d" % i
            ts_us = ts * 1_000_000
            muts.append(Mutation(T, OP_DELETE if is_delete else OP_PUT, pk, sk, ts_us, value))
            model.writes.append(W(pk, sk, ts_us, is_delete, value))
        # apply in a few batches, as a replayer would
        for start in range(0, len(muts), 7):
            rocks.apply(muts[start : start + 7], EPOCHS, {})
            memory.apply(muts[start : start + 7], EPOCHS, {})
            sql.apply(muts[start : start + 7], EPOCHS, {})
        now_us = now_s * 1_000_000
        vis = Visibility(
            max_versions=max_versions,
            expired_before_us=None if ttl_s is None else now_us - ttl_s * 1_000_000,
        )
        rf = ReadFilter(versions=3)
        expected_scan = [
            ScanCell(pk, sk, ts, v)
            for pk, sk in model.cells()
            for ts, v in model.visible(pk, sk, now_us, ttl_s, max_versions)[:3]
        ]
        for b in (rocks, memory, sql):
            assert b.scan(T, vis, ScanQuery(rf=rf, limit=1000))[0] == expected_scan
            for pk in (b"p", b"q", b"p\x00"):
                expected_row = [c for c in expected_scan if c.pk == pk]
                got = b.read_row(T, vis, pk, RowQuery(rf=rf))[0]
                assert [(c.sk, c.ts, c.value) for c in got] == [
                    (c.sk, c.ts, c.value) for c in expected_row
                ]
                for sk in (b"", b"a", b"a\x00", b"b"):
                    cell = b.multi_get(T, vis, [(pk, sk)], rf, 10)[0]
                    assert [(c.ts, c.value) for c in cell] == model.visible(
                        pk, sk, now_us, ttl_s, max_versions
                    )[:3]
    finally:
        rocks.close()
        sql.close()


# -- expiration sweeps ----------------------------------------------------------

ALL_VERSIONS = ScanQuery(rf=ReadFilter(versions=1000), limit=100_000)


def _sweep_all(b: Backend, vis: Visibility, step: int, grace: int | None = None) -> int:
    """Sweep the whole table in steps of about ``step`` versions; return versions removed."""
    start = None
    removed = 0
    while True:
        page = b.sweep_scan(T, vis, start, None, step, tombstones_before_us=grace, min_run=2)
        removed += b.sweep_delete(T, page.candidates, page.runs).versions
        if page.next_cell is None:
            return removed
        start = page.next_cell


def test_a_sweep_removes_exactly_what_no_read_can_see(backend: Backend) -> None:
    muts = [put(b"p", b"s", ts, b"v%d" % ts) for ts in range(1, 11)]  # 10 versions
    muts += [put(b"q", b"s", 5, b"q5"), delete(b"q", b"s", 6), put(b"q", b"s", 7, b"q7")]
    muts += [put(b"r\x00", b"", 1, b"old")]
    backend.apply(muts, EPOCHS, {})
    vis = Visibility(max_versions=3, expired_before_us=2)
    before = backend.scan(T, vis, ALL_VERSIONS)[0]
    # p: 7 beyond max_versions; r: expired; q/5 stays under its tombstone (no grace)
    assert _sweep_all(backend, vis, step=2) == 7 + 1
    assert backend.scan(T, vis, ALL_VERSIONS)[0] == before
    everything = backend.scan(T, Visibility(max_versions=1000), ALL_VERSIONS)[0]
    assert [(c.pk, c.ts) for c in everything] == [(b"p", 10), (b"p", 9), (b"p", 8), (b"q", 7)]
    assert backend.table_stats(T).approx_cells == 6  # and q/6 (a tombstone), q/5
    assert _sweep_all(backend, vis, step=100) == 0  # nothing more
    assert _sweep_all(backend, vis, step=100, grace=7) == 2  # q/6 and q/5, past the grace
    assert backend.table_stats(T).approx_cells == 4
    assert backend.scan(T, vis, ALL_VERSIONS)[0] == before


def test_a_sweep_never_deletes_a_version_replaced_since_the_scan(backend: Backend) -> None:
    backend.apply([put(b"p", b"s", ts, b"v%d" % ts) for ts in (1, 2, 3)], EPOCHS, {})
    vis = Visibility(max_versions=1, floors=(Floor(2, 1),))
    page = backend.sweep_scan(T, vis, None, None, 100)
    assert len(page.candidates) == 2  # ts 1 and 2: beyond max_versions and floored
    # meanwhile a replace committed (epoch 1) and a write at ts=2 arrived in that epoch
    backend.apply([put(b"p", b"s", 2, b"new")], {T: 1}, {})
    assert backend.sweep_delete(T, page.candidates).versions == 1  # only ts 1
    kept = backend.scan(T, Visibility(max_versions=10), ALL_VERSIONS)[0]
    assert [(c.ts, c.value) for c in kept] == [(3, b"v3"), (2, b"new")]


def test_sweep_pages_cover_every_cell_once(backend: Backend) -> None:
    muts = [
        put(b"k%03d" % i, b"s%d" % j, ts, b"x")
        for i in range(40)
        for j in range(3)
        for ts in (1, 2)
    ]
    backend.apply(muts, EPOCHS, {})
    start = None
    examined = 0
    cells = set()
    while True:
        page = backend.sweep_scan(T, V1, start, None, 7)
        examined += page.examined
        cells |= {k for k, _ in page.candidates}
        if page.next_cell is None:
            break
        assert start is None or page.next_cell > start
        start = page.next_cell
    assert examined == 240
    assert len(cells) == 120  # one old version per cell
    # a pk bound stops the scan
    page = backend.sweep_scan(T, V1, None, b"k010", 10_000)
    assert page.examined == 60 and page.next_cell is None


def _stored_keys(b: Backend) -> list[tuple[bytes, bytes, int, bytes]]:
    everything = b.scan(T, Visibility(max_versions=1000), ALL_VERSIONS)[0]
    return [(c.pk, c.sk, c.ts, c.value) for c in everything]


def _dead_runs_history(b: Backend) -> Visibility:
    """p/s: 40 versions, 3 kept; q: three cells, all expired; r/s: 1 live version."""
    muts = [put(b"p", b"s", ts, b"v%d" % ts) for ts in range(100, 140)]
    muts += [put(b"q", sk, ts, b"old") for sk in (b"a", b"c", b"e") for ts in (1, 2, 3)]
    muts += [put(b"r", b"s", 200, b"live")]
    b.apply(muts, EPOCHS, {})
    return Visibility(max_versions=3, expired_before_us=50)


def test_dead_runs_go_as_range_deletes(backend: Backend) -> None:
    vis = _dead_runs_history(backend)
    before = backend.scan(T, vis, ALL_VERSIONS)[0]
    page = backend.sweep_scan(T, vis, None, None, 1000, min_run=4)
    # p/s's 37 surplus versions and q's 9 (a whole dead pk) are one run: consecutive keys
    assert len(page.candidates) == 46 and page.runs == [(0, 46)]
    deleted = backend.sweep_delete(T, page.candidates, page.runs)
    assert (deleted.versions, deleted.ranges) == (46, 1) and deleted.nbytes > 46 * 10
    assert backend.scan(T, vis, ALL_VERSIONS)[0] == before
    assert _stored_keys(backend) == [
        (b"p", b"s", 139, b"v139"),
        (b"p", b"s", 138, b"v138"),
        (b"p", b"s", 137, b"v137"),
        (b"r", b"s", 200, b"live"),
    ]
    assert backend.table_stats(T).approx_cells == 4
    # gone for every read, even one without the TTL (say it was raised since), through
    # RocksDB's point-read path too (a tailing iterator, blind to range deletes in the
    # memtable: get_latest checks)
    for sk in (b"a", b"c", b"e"):
        assert backend.get_cell(T, V1, b"q", sk, ReadFilter()) == []
        assert backend.get_latest(T, b"q", sk, None) is None
    assert backend.get_latest(T, b"p", b"s", None) == Cell(b"s", 139, b"v139")
    many = getattr(backend, "get_latest_many", None)  # RocksBackend's multi-get path
    if many is not None:
        keys = [(b"q", b"a"), (b"p", b"s"), (b"q", b"c"), (b"q", b"e")]
        assert many(T, keys, None) == [None, Cell(b"s", 139, b"v139"), None, None]
    # runs shorter than min_run are single deletes; a kept version ends a run
    backend.apply([put(b"p", b"s", ts, b"x") for ts in (1, 2)], EPOCHS, {})
    page = backend.sweep_scan(T, vis, None, None, 1000, min_run=4)
    assert len(page.candidates) == 2 and page.runs == []


def test_a_range_delete_never_removes_a_version_written_since_the_scan(
    backend: Backend,
) -> None:
    vis = _dead_runs_history(backend)
    page = backend.sweep_scan(T, vis, None, None, 1000, min_run=4)
    assert page.runs == [(0, 46)]
    # meanwhile: a new cell between q/a and q/c, and q/e's ts 2 rewritten (new epoch)
    backend.apply([put(b"q", b"b", 300, b"new")], EPOCHS, {})
    backend.apply([put(b"q", b"e", 2, b"again")], {T: 1}, {})
    deleted = backend.sweep_delete(T, page.candidates, page.runs)
    assert deleted.ranges == 0 and deleted.versions == 45  # all but the rewritten one
    assert _stored_keys(backend) == [
        (b"p", b"s", 139, b"v139"),
        (b"p", b"s", 138, b"v138"),
        (b"p", b"s", 137, b"v137"),
        (b"q", b"b", 300, b"new"),
        (b"q", b"e", 2, b"again"),
        (b"r", b"s", 200, b"live"),
    ]


def test_disk_bytes_measures_the_tables_own_files(backend: Backend) -> None:
    before = backend.disk_bytes(T)
    backend.apply([put(b"k%04d" % i, b"s", 1, b"x" * 200) for i in range(2000)], EPOCHS, {})
    after = backend.disk_bytes(T)
    if isinstance(backend, MemoryBackend):
        assert before is None and after is None  # nothing on disk
        return
    assert after is not None and after > (before or 0)
    other = [put(b"k%04d" % i, b"s", 1, b"y" * 200, table=2) for i in range(2000)]
    backend.apply(other, EPOCHS, {})
    if isinstance(backend, SqlBackend):
        # the table's own partitions: another table's rows are not counted
        assert backend.disk_bytes(T) == after
    else:
        # RocksDB counts every file whose key range covers some of the table's: a file
        # of another table's keys and metadata may (an upper bound); never less
        assert backend.disk_bytes(T) >= after  # type: ignore[operator]


def test_split_points_are_ascending_pks(backend: Backend) -> None:
    backend.apply([put(b"k%05d" % i, b"s", 1, b"v" * 200) for i in range(5000)], EPOCHS, {})
    backend.sync()
    points = backend.split_points(T, 64 << 10)
    assert points == sorted(set(points))
    assert all(p.startswith(b"k") for p in points)
    backend.compact(T, None, None)
    backend.compact(T, b"k00100", b"k00200")


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(op, max_size=40),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 5)),
    st.integers(0, 10),
    st.integers(1, 9),
    st.one_of(st.none(), st.integers(0, 10)),
)
def test_sweeps_change_no_read_on_any_backend(
    tmp_path_factory: pytest.TempPathFactory,
    pg_url: str,
    ops: list[tuple[bytes, bytes, int, bool]],
    max_versions: int,
    ttl_s: int | None,
    now_s: int,
    step: int,
    grace_s: int | None,
) -> None:
    rocks = RocksBackend(tmp_path_factory.mktemp("sweep") / "db", SMALL)
    memory = MemoryBackend()
    sql = SqlBackend(pg_url, pool_size=1)  # one database for every example: start empty
    sql.drop_table_data(T)
    try:
        muts = [
            Mutation(
                T, OP_DELETE if d else OP_PUT, pk, sk, ts * 1_000_000, b"" if d else b"v%d" % i
            )
            for i, (pk, sk, ts, d) in enumerate(ops)
        ]
        now_us = now_s * 1_000_000
        vis = Visibility(
            max_versions=max_versions,
            expired_before_us=None if ttl_s is None else now_us - ttl_s * 1_000_000,
        )
        grace = None if grace_s is None else grace_s * 1_000_000
        rf = ScanQuery(rf=ReadFilter(versions=10), limit=10_000)
        for b in (rocks, memory, sql):
            b.apply(muts, EPOCHS, {})
            before = b.scan(T, vis, rf)[0]
            _sweep_all(b, vis, step, grace)
            assert b.scan(T, vis, rf)[0] == before
        everything = Visibility(max_versions=100)
        assert (
            rocks.scan(T, everything, rf)[0]
            == memory.scan(T, everything, rf)[0]
            == sql.scan(T, everything, rf)[0]
        )  # all removed the same versions
    finally:
        rocks.close()
        sql.close()
