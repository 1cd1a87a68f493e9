"""SPEC §1 as properties: random histories through the whole engine vs a naive model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mussel import Delete, ManualClock, Put, Store
from tests.unit.engine.conftest import CONFIG
from tests.unit.storage.model_history import ModelTable, W

PKS = [b"p", b"q"]
SKS = [b"", b"a", b"b"]

step = st.one_of(
    st.tuples(
        st.just("write"),
        st.sampled_from(PKS),
        st.sampled_from(SKS),
        st.one_of(st.none(), st.integers(0, 30)),  # ts in seconds, None = server time
        st.booleans(),  # delete
    ),
    st.tuples(st.just("ttl"), st.one_of(st.none(), st.integers(1, 20))),
    st.tuples(st.just("max_versions"), st.integers(1, 4)),
    st.tuples(st.just("advance"), st.integers(1, 10)),
    st.tuples(st.just("floor"), st.integers(0, 30)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@pytest.mark.parametrize("kind", ["memory", "rocks"])
@given(steps=st.lists(step, max_size=30))
def test_engine_reads_match_the_model(
    kind: str, tmp_path_factory: pytest.TempPathFactory, steps: list[tuple]
) -> None:
    clock = ManualClock(now_us=20 * 1_000_000)
    if kind == "memory":
        store = Store.memory(CONFIG, clock=clock)
    else:
        store = Store.open(tmp_path_factory.mktemp("prop") / "s", CONFIG, clock=clock)
    try:
        store.put_namespace("ns")
        table = store.put_table("ns", "t", {"max_versions": 2})
        model = ModelTable()
        ttl: int | None = None
        max_versions = 2
        epoch = 0
        for i, s in enumerate(steps):
            if s[0] == "write":
                _, pk, sk, ts_s, is_delete = s
                ts_us = clock.now_us() if ts_s is None else ts_s * 1_000_000
                value = b"" if is_delete else b"v%d" % i
                op = Delete(pk, sk, ts_us) if is_delete else Put(pk, sk, value, ts_us)
                table.write([op], ack="applied")
                model.writes.append(W(pk, sk, ts_us, is_delete, value, epoch))
            elif s[0] == "ttl":
                ttl = s[1]
                store.put_table("ns", "t", {"ttl_seconds": ttl})
            elif s[0] == "max_versions":
                max_versions = s[1]
                store.put_table("ns", "t", {"max_versions": max_versions})
            elif s[0] == "advance":
                clock.advance(s[1])
            else:
                epoch += 1
                floor_us = s[1] * 1_000_000
                store.catalog.add_floor("ns", "t", floor_us)
                model.floors.append((floor_us, epoch))
            now = clock.now_us()
            for pk in PKS:
                expected = [
                    (sk, ts, v)
                    for sk in SKS
                    for ts, v in model.visible(pk, sk, now, ttl, max_versions)
                ]
                got = table.row(pk, versions=10).cells
                assert [(c.sk, c.ts, c.value) for c in got] == expected
                for sk in SKS:
                    cell = table.get(pk, sk, versions=10)
                    assert [(c.ts, c.value) for c in cell] == model.visible(
                        pk, sk, now, ttl, max_versions
                    )
    finally:
        store.close()
