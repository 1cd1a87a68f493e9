"""Rate quotas across dispatchers: the token bucket in the database
(``SqlBackend.take_tokens``) and the per-process leases over it
(``LeasedRateBuckets``)."""

from __future__ import annotations

import time

import pytest

from mussel.dispatch.quotas import LeasedRateBuckets
from mussel.errors import RateLimitedError
from mussel.storage.sql import SqlBackend


@pytest.fixture
def backend(pg_url: str):  # type: ignore[no-untyped-def]
    b = SqlBackend(pg_url)
    yield b
    b.close()


def test_a_bucket_starts_full_grants_whole_tokens_and_refills(backend: SqlBackend) -> None:
    assert backend.take_tokens("k", 10.0, 10.0, 4) == (4, 6.0)
    granted, left = backend.take_tokens("k", 10.0, 10.0, 100)
    assert granted == 6 and 0.0 <= left < 1.0
    assert backend.take_tokens("k", 10.0, 10.0, 1)[0] == 0  # empty
    time.sleep(0.25)  # 2.5 tokens refilled
    granted, _ = backend.take_tokens("k", 10.0, 10.0, 100)
    assert granted in (2, 3)
    assert backend.take_tokens("other", 1.0, 1.0, 5) == (1, 0.0)  # buckets are separate


def test_two_processes_share_one_budget(backend: SqlBackend, pg_url: str) -> None:
    """Two dispatchers (two backends, two lease holders) admit the quota together,
    not each: a full bucket (one second) plus the refill while they ran."""
    other = SqlBackend(pg_url)
    try:
        a = LeasedRateBuckets(backend.take_tokens)
        b = LeasedRateBuckets(other.take_tokens)
        quota = 50.0
        admitted = refused = 0
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            for buckets in (a, b):
                try:
                    buckets.take("ns", "read", quota)
                    admitted += 1
                except RateLimitedError as exc:
                    refused += 1
                    assert exc.retry_after_s >= 1.0
        elapsed = time.monotonic() - started
        assert refused > 0
        expected = quota + quota * elapsed
        assert 0.8 * expected <= admitted <= expected + 2 * max(1, int(quota * 0.05)) + 1
    finally:
        other.close()


def test_refusals_are_answered_locally_until_the_next_token_is_due() -> None:
    calls: list[int] = []

    def take_tokens(key: str, rate: float, burst: float, want: int) -> tuple[int, float]:
        calls.append(want)
        return (0, 0.0) if len(calls) > 1 else (want, 0.0)

    buckets = LeasedRateBuckets(take_tokens, lease_s=0.1, lease_ttl_s=10.0)
    for _ in range(10):  # one lease of 10 tokens
        buckets.take("ns", "write", 100.0)
    assert calls == [10]
    for _ in range(50):  # refused: asked once, then refused locally
        with pytest.raises(RateLimitedError, match="over its write quota of 100"):
            buckets.take("ns", "write", 100.0)
    assert calls == [10, 10]
