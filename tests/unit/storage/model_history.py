"""An independent, naive model of SPEC §1 visibility, for property tests.

It keeps every write in acknowledgement order and answers reads by brute force,
written straight from the SPEC's sentences rather than from storage/versions.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class W:
    pk: bytes
    sk: bytes
    ts: int
    delete: bool
    value: bytes
    epoch: int = 0


@dataclass
class ModelTable:
    writes: list[W] = field(default_factory=list)
    floors: list[tuple[int, int]] = field(default_factory=list)  # (ts, epoch)
    hidden_epochs: set[int] = field(default_factory=set)  # pending or aborted bulk loads

    def visible(
        self, pk: bytes, sk: bytes, now_us: int, ttl_s: int | None, max_versions: int
    ) -> list[tuple[int, bytes]]:
        """Visible (ts, value) of one cell, newest first."""
        last_at_ts: dict[int, W] = {}
        for w in self.writes:  # later acknowledged replaces equal ts
            if w.pk == pk and w.sk == sk:
                last_at_ts[w.ts] = w
        alive = [
            w
            for w in last_at_ts.values()
            if not any(w.ts <= f_ts and w.epoch < f_epoch for f_ts, f_epoch in self.floors)
            and w.epoch not in self.hidden_epochs
        ]
        newest_tombstone = max((w.ts for w in alive if w.delete), default=None)
        puts = [
            w
            for w in alive
            if not w.delete
            and (newest_tombstone is None or w.ts > newest_tombstone)
            and (ttl_s is None or w.ts >= now_us - ttl_s * 1_000_000)
        ]
        puts.sort(key=lambda w: -w.ts)
        return [(w.ts, w.value) for w in puts[:max_versions]]

    def cells(self) -> list[tuple[bytes, bytes]]:
        return sorted({(w.pk, w.sk) for w in self.writes})
