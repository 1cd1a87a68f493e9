"""dispatch/dashboard.py's Sampler over a real (in-memory) Store and real metrics:
what one sample records, and the per-operation latency it reports."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mussel.dispatch.dashboard import Sampler, check_refresh, cookie_token, login_cookie
from mussel.dispatch.http import Request
from mussel.dispatch.metrics import ServerMetrics
from mussel.engine import Store, StoreConfig
from mussel.errors import InvalidRequestError


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory(StoreConfig(partitions=2))
    s.put_namespace("shop")
    s.put_table("shop", "t", {})
    yield s
    s.close()


def _requests(metrics: ServerMetrics, op: str, n: int, latency_s: float) -> None:
    for _ in range(n):
        metrics.observe(op, "shop", "t", 200, time.perf_counter() - latency_s)


def test_a_sample_records_rates_latency_and_lag(store: Store) -> None:
    metrics = ServerMetrics(store)
    sampler = Sampler(metrics, store, interval_s=5.0, capacity=10)
    sampler.sample(1000.0)  # the baseline: no rates of counters yet
    _requests(metrics, "read_row", 40, 0.002)
    _requests(metrics, "write", 10, 0.2)
    _requests(metrics, "dashboard_data", 5, 0.0)  # the dashboard's own: left out
    metrics.throttled("shop", "read")
    sampler.sample(1005.0)
    hist = sampler.history.to_json()
    assert hist["t"] == [1000.0, 1005.0]
    s = hist["series"]
    assert s["reads_per_s"][-1] == pytest.approx(40 / 10)  # over the 10 s rate window
    assert s["writes_per_s"][-1] == pytest.approx(10 / 10)
    assert s["throttled_per_s"] == [None, pytest.approx(1 / 5)]
    assert s["shed_per_s"] == [None, 0.0]
    assert 0.001 < s["p50_s:read_row"][-1] <= 0.0025
    assert 0.1 < s["p99_s:write"][-1] <= 0.25
    assert not any(name.endswith(":dashboard_data") for name in s)
    assert s["replay_lag_records"][-1] == 0
    latency = {entry["operation"]: entry for entry in sampler.latency()}
    assert set(latency) == {"read_row", "write"}
    assert latency["read_row"]["count"] == 40
    assert 0.1 < latency["write"]["p99_s"] <= 0.25


def test_quiet_intervals_leave_latency_gaps(store: Store) -> None:
    metrics = ServerMetrics(store)
    sampler = Sampler(metrics, store, capacity=10)
    _requests(metrics, "scan", 3, 0.01)
    sampler.sample(10.0)
    sampler.sample(15.0)  # nothing happened in between
    series = sampler.history.to_json()["series"]
    assert "p99_s:scan" not in series  # no value in any kept sample
    assert sampler.latency() == []  # the window's only counts are its first sample's


def test_refresh_bounds() -> None:
    check_refresh(None)
    check_refresh("0.5")
    check_refresh("60")
    for bad in ("0.1", "nan", "inf", "x", "4000", "1_0", " 5", "5.", "-1", "1e2"):
        with pytest.raises(InvalidRequestError, match="refresh"):
            check_refresh(bad)


def test_the_sign_in_cookie_carries_any_token() -> None:
    secret = "a;b c=d%e,f"
    set_cookie = login_cookie(secret, secure=True)
    assert "HttpOnly" in set_cookie and "Secure" in set_cookie
    pair = set_cookie.split(";", 1)[0]
    request = Request("GET", "/dashboard", b"", {"cookie": f"theme=dark; {pair}"})
    assert cookie_token(request) == secret
    assert cookie_token(Request("GET", "/dashboard", b"", {"cookie": "theme=dark"})) is None
    assert "Secure" not in login_cookie(secret, secure=False)
