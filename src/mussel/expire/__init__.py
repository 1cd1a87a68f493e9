"""The expiration service: invisible versions (TTL, max_versions, replace floors,
dropped tables) physically removed in parallel range subtasks, at batch priority."""

from mussel.expire.budget import DeleteBudget, LatencyGuard
from mussel.expire.remote import RemoteScanner, ScanServer
from mussel.expire.service import ExpirationService, ExpireConfig, RunStats

__all__ = [
    "DeleteBudget",
    "ExpirationService",
    "ExpireConfig",
    "LatencyGuard",
    "RemoteScanner",
    "RunStats",
    "ScanServer",
]
