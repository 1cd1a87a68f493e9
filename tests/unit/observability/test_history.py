"""observability/history.py: the dashboard's ring buffer, counter rates and quantiles."""

from __future__ import annotations

import pytest

from mussel.observability.history import CounterRates, HistogramWindow, History, quantile
from mussel.observability.metrics import Histogram

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 100 observations, all in (0.01, 0.1]: the median is half-way through that bucket
    assert quantile(BOUNDS, [0, 0, 100, 0, 0], 0.5) == pytest.approx(0.055)
    # 90 fast, 10 slow: p50 in the first bucket, p99 in the (0.1, 1] bucket
    counts = [90, 0, 0, 10, 0]
    assert quantile(BOUNDS, counts, 0.5) == pytest.approx(0.001 * 50 / 90)
    assert quantile(BOUNDS, counts, 0.99) == pytest.approx(0.1 + 0.9 * 9 / 10)


def test_quantile_of_nothing_and_of_the_inf_bucket() -> None:
    assert quantile(BOUNDS, [0, 0, 0, 0, 0], 0.5) is None
    assert quantile(BOUNDS, [0, 0, 0, 0, 7], 0.99) == 1.0  # past the last bound: that bound
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile(BOUNDS, [1, 0, 0, 0, 0], 1.0)
    with pytest.raises(ValueError, match="counts"):
        quantile(BOUNDS, [1, 0], 0.5)


def test_quantile_agrees_with_the_histogram_it_reads() -> None:
    h = Histogram("x_seconds", "x", ("op", "ns"), BOUNDS)
    for i, v in enumerate([0.0005] * 50 + [0.05] * 49 + [0.5]):
        h.observe(v, ("read", f"ns{i % 3}"))  # summed over the other labels
    h.observe(5.0, ("write", "ns0"))
    by_op = h.buckets_by("op", [[["read", "ns9"], [0, 0, 0, 0, 1, 2.0]]])  # and a peer's
    assert by_op["write"] == [0, 0, 0, 0, 1]
    counts = by_op["read"]
    assert counts == [50, 0, 49, 1, 1]
    assert quantile(BOUNDS, counts, 0.4) <= 0.001  # type: ignore[operator]
    assert 0.01 < quantile(BOUNDS, counts, 0.9) <= 0.1  # type: ignore[operator]
    assert quantile(BOUNDS, counts, 0.999) == 1.0


def test_history_keeps_the_last_samples_aligned() -> None:
    h = History(capacity=3)
    h.add(10.0, {"a": 1.0})
    h.add(15.0, {"a": 2.0, "b": 5.0})  # b appears: None before
    h.add(20.0, {"b": 6.0})  # a is missing: None now
    assert h.to_json() == {
        "t": [10.0, 15.0, 20.0],
        "series": {"a": [1.0, 2.0, None], "b": [None, 5.0, 6.0]},
    }
    h.add(25.0, {"b": 7.0})  # the oldest sample falls out
    assert h.to_json() == {
        "t": [15.0, 20.0, 25.0],
        "series": {"a": [2.0, None, None], "b": [5.0, 6.0, 7.0]},
    }
    h.add(30.0, {"b": 8.0})  # a has no value left in the window: dropped
    assert h.to_json()["series"] == {"b": [6.0, 7.0, 8.0]}
    assert h.to_json(since=25.0) == {"t": [25.0, 30.0], "series": {"b": [7.0, 8.0]}}
    assert len(h) == 3


def test_history_refuses_time_going_backwards_and_keeps_nan_out() -> None:
    h = History(capacity=10)
    h.add(10.0, {"a": float("nan"), "b": 1.0})
    assert h.to_json()["series"]["a"] == [None]
    with pytest.raises(ValueError, match="before the previous"):
        h.add(9.0, {"a": 1.0})
    with pytest.raises(ValueError):
        History(capacity=0)


def test_counter_rates() -> None:
    r = CounterRates()
    assert r.update(100.0, {"x": 10.0}) == {}  # nothing to compare with yet
    assert r.update(105.0, {"x": 20.0, "y": 5.0}) == {"x": 2.0, "y": 1.0}
    assert r.update(110.0, {"x": 3.0, "y": 5.0}) == {"x": 0.6, "y": 0.0}  # x was reset
    assert r.update(110.0, {"x": 4.0}) == {}  # no time passed


def test_histogram_window_quantiles_over_the_window_only() -> None:
    w = HistogramWindow(BOUNDS, keep=3)
    assert w.quantiles([0.5]) == {}
    w.add({"read": [100, 0, 0, 0, 0]})  # before the window: slow or fast, it must not count
    assert w.quantiles([0.5]) == {}
    w.add({"read": [100, 0, 10, 0, 0]})
    last = w.quantiles([0.5], last_only=True)
    assert last["read"]["count"] == 10
    assert 0.01 < last["read"]["q0.5"] <= 0.1
    w.add({"read": [100, 0, 10, 10, 0], "write": [0, 1, 0, 0, 0]})
    window = w.quantiles([0.5, 0.99])
    assert window["read"]["count"] == 20  # the first sample is the window's start
    assert 0.1 < window["read"]["q0.99"] <= 1.0
    assert window["write"]["count"] == 1  # a new series counts whole
    w.add({"read": [1, 0, 0, 0, 0]})  # a reset (another process restarted): counted whole
    assert w.quantiles([0.5], last_only=True)["read"]["count"] == 1
    with pytest.raises(ValueError, match="bucket counts"):
        w.add({"read": [1, 2]})
    with pytest.raises(ValueError):
        HistogramWindow(BOUNDS, keep=1)
