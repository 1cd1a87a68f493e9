"""Rate buckets (``dispatch/quotas.py``) at the edges of their quota."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mussel.dispatch.quotas import RateBuckets
from mussel.errors import RateLimitedError


def test_a_quota_of_zero_refuses_every_request_with_a_retry_after(tmp_path: Path) -> None:
    buckets = RateBuckets.create(tmp_path / "buckets")
    try:
        with pytest.raises(RateLimitedError, match="quota of 0 requests per second") as info:
            buckets.take("shop", "read", 0.0)
        assert info.value.retry_after_s is not None and info.value.retry_after_s >= 1
        buckets.take("shop", "write", 1.0)  # another bucket is untouched
    finally:
        buckets.close()


def _admitted(buckets: RateBuckets, kind: str, per_second: float, n: int) -> int:
    ok = 0
    for _ in range(n):
        try:
            buckets.take("shop", kind, per_second)
            ok += 1
        except RateLimitedError:
            pass
    return ok


def test_after_a_refusal_a_process_refuses_until_the_next_token_then_admits(
    tmp_path: Path,
) -> None:
    """The local memo of a refusal admits exactly what the shared bucket would: nothing
    before the next token is due (in this process or another), one token once it is."""
    owner = RateBuckets.create(tmp_path / "buckets")
    other = RateBuckets.attach(tmp_path / "buckets")
    try:
        assert _admitted(owner, "read", 10.0, 10) == 10  # the full bucket: 1 s of quota
        with pytest.raises(RateLimitedError) as info:
            owner.take("shop", "read", 10.0)  # remembered: next token in about 0.1 s
        assert "retry in 0.1" in str(info.value) or "retry in 0.0" in str(info.value)
        assert _admitted(other, "read", 10.0, 5) == 0  # the other process agrees
        time.sleep(0.12)
        assert _admitted(owner, "read", 10.0, 3) == 1  # one token refilled, not more
        # a raised quota is not held back by a refusal under the old one (remembered
        # as due in about 0.1 s; at 1000/s the bucket has tokens again in 0.01 s)
        time.sleep(0.01)
        assert _admitted(owner, "read", 1000.0, 1) == 1
    finally:
        other.close()
        owner.close()
