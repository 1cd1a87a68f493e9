"""Rate buckets (``dispatch/quotas.py``) at the edges of their quota."""

from __future__ import annotations

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
