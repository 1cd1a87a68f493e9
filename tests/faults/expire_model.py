"""The table the expiration crash test sweeps, and what every read must show."""

from __future__ import annotations

from mussel.clock import ManualClock
from mussel.model import Delete, Put

CLOCK_US = 1_800_000_000_000_000
TTL_S = 100
PKS = 1500


class StoreClock(ManualClock):
    """A fixed clock: the sweeps in every process judge TTL at the same moment."""


def history() -> list[list[Put | Delete]]:
    """Batches: per pk 4 versions of ``s`` (max_versions 2) with one past the TTL, a
    deleted cell ``d``, and a live cell ``k``."""
    batches: list[list[Put | Delete]] = []
    for start in range(0, PKS, 100):
        batch: list[Put | Delete] = []
        for i in range(start, start + 100):
            pk = f"p{i:05d}"
            for age in (1, 2, 3, TTL_S + 50):
                batch.append(Put(pk, "s", f"{pk}-{age}", ts=CLOCK_US - age * 1_000_000))
            batch.append(Put(pk, "d", "gone", ts=CLOCK_US - 5_000_000))
            batch.append(Delete(pk, "d", ts=CLOCK_US - 4_000_000))
            batch.append(Put(pk, "k", "keep", ts=CLOCK_US - 1_000_000))
        batches.append(batch)
    return batches


def expected() -> list[tuple[bytes, bytes, int, bytes]]:
    """Every visible version (pk, sk, ts, value), in scan order."""
    out = []
    for i in range(PKS):
        pk = f"p{i:05d}".encode()
        out.append((pk, b"k", CLOCK_US - 1_000_000, b"keep"))
        for age in (1, 2):
            out.append((pk, b"s", CLOCK_US - age * 1_000_000, pk + f"-{age}".encode()))
    return out
