"""``SweepCollector``: builds one ``SweepPage`` from a sweep's walk, with its runs.

Every backend's ``sweep_scan`` walks the stored versions of a key range in key
order (pk, sk, newest first) and feeds each one here with whether
``removable_versions`` lets it go. The collector keeps the removable ones as
candidates and notes *runs*: at least ``min_run`` candidates that were consecutive
stored keys (no kept version between them, across cell and pk boundaries: a whole
dead pk, everything under an expired version, a long tail beyond ``max_versions``).
``sweep_delete`` may remove a run with one range delete, after checking that the
run's keys are still exactly what was scanned.
"""

from __future__ import annotations

from mussel.storage.base import RANGE_DELETE_MIN, SweepPage

__all__ = ["SweepCollector"]


class SweepCollector:
    """Collects one page's candidates and runs (not thread-safe: one walk)."""

    __slots__ = ("_min_run", "_run_start", "candidate_bytes", "candidates", "examined", "runs")

    def __init__(self, min_run: int = RANGE_DELETE_MIN) -> None:
        self._min_run = max(1, min_run)
        self.candidates: list[tuple[bytes, bytes]] = []
        self.candidate_bytes = 0
        self.examined = 0
        self.runs: list[tuple[int, int]] = []
        self._run_start = 0  # index of the first candidate of the current run

    def add(self, key: bytes, token: bytes, nbytes: int, removable: bool) -> None:
        """One stored version, in key order: ``key`` and ``token`` as ``sweep_delete``
        takes them, ``nbytes`` its stored size."""
        self.examined += 1
        if removable:
            self.candidates.append((key, token))
            self.candidate_bytes += nbytes
        else:
            self._close_run()

    def _close_run(self) -> None:
        end = len(self.candidates)
        if end - self._run_start >= self._min_run:
            self.runs.append((self._run_start, end))
        self._run_start = end

    def page(self, next_cell: tuple[bytes, bytes] | None) -> SweepPage:
        """The page (closes the last run: runs never cross pages)."""
        self._close_run()
        return SweepPage(
            self.examined, self.candidates, self.candidate_bytes, next_cell, list(self.runs)
        )
