"""Backup and restore with real processes (issue 8): a backup taken over HTTP while
writer threads keep writing holds every write acknowledged before it began and is a
consistent prefix per row; restored into a new directory, a second ``mussel serve``
serves it. An offline backup of the stopped server holds every acknowledged write.

Each writer owns one pk and writes batches of ``BATCH`` cells with consecutive
sequence numbers as sks (``00000000``, ``00000001``, ...), one durable write at a time.
A row is then consistent iff its sks are exactly ``0..n-1`` with ``n`` a multiple of
``BATCH`` (a batch is atomic), and complete iff ``n`` covers what was acknowledged.
Across rows, a batch acknowledged before a restored batch was sent must be restored
(the backup is a prefix of the one physical log).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mussel import Client
from mussel.model import Put
from tests.conftest import ServerProcess, start_server

WRITERS = 4
BATCH = 5
NS, TABLE = "bk", "t"


def mussel(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mussel.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Writers:
    """``WRITERS`` threads, each writing batches to its own pk until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked = [0] * WRITERS  # writer i's seqs 0..acked[i]-1 are acknowledged
        self.sent = [0] * WRITERS  # ... and those below sent[i] may have been written
        self.times: list[list[tuple[float, float]]] = [[] for _ in range(WRITERS)]
        """Per writer, per batch: (monotonic time sent, monotonic time acknowledged)."""
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(WRITERS)]

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, i: int) -> None:
        try:
            with Client(self.url, retries=0) as c:
                n = 0
                while not self._stop.is_set():
                    records = [
                        Put(f"w{i}", f"{n + j:08d}", f"v{n + j}".encode()) for j in range(BATCH)
                    ]
                    self.sent[i] = n + BATCH
                    sent_at = time.monotonic()
                    c.write(NS, TABLE, records)
                    self.times[i].append((sent_at, time.monotonic()))
                    n += BATCH
                    self.acked[i] = n
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def wait_past(self, floor: list[int], more: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while any(a < f + more for a, f in zip(self.acked, floor, strict=True)):
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"writers stalled at {self.acked}"
            time.sleep(0.02)


def rows(url: str) -> list[list[str]]:
    with Client(url) as c:
        return [
            [cell.sk.decode() for cell in c.iter_row(NS, TABLE, f"w{i}")] for i in range(WRITERS)
        ]


def check_prefix(sks: list[str], at_least: int, at_most: int) -> int:
    n = len(sks)
    assert sks == [f"{k:08d}" for k in range(n)], "a gap: a write is missing before a later one"
    assert n % BATCH == 0, "a batch was restored in part"
    assert at_least <= n <= at_most, (at_least, n, at_most)
    return n


def serve_and_read(data: Path) -> list[list[str]]:
    srv = start_server(data)
    try:
        return rows(srv.url)
    finally:
        stop(srv)


def stop(srv: ServerProcess) -> None:
    if srv.proc.poll() is None:
        assert srv.stop() == 0
    if srv.proc.stderr:
        srv.proc.stderr.close()


def test_backup_while_writing_restores_a_consistent_prefix_with_every_acked_write(
    tmp_path: Path,
) -> None:
    srv = start_server(tmp_path / "data", "--backup-dir", str(tmp_path / "backups"))
    try:
        with Client(srv.url) as c:
            c.put_namespace(NS)
            c.put_table(NS, TABLE)
        with Writers(srv.url) as writers:
            writers.wait_past([0] * WRITERS, 50)
            before = list(writers.acked)  # acknowledged before the backup began
            done = mussel("backup", "--url", srv.url, "--json", "mid-stream")
            assert done.returncode == 0, done.stderr
            after = list(writers.sent)  # nothing sent after this is in the backup
            writers.wait_past(after, 2 * BATCH)  # and these surely are not
        assert not writers.errors, writers.errors
        final = list(writers.acked)
        made: dict[str, Any] = json.loads(done.stdout)["backup"]
        assert made["path"] == str((tmp_path / "backups" / "mid-stream").resolve())
        assert made["files"] > 2 and made["bytes"] > 0
        assert all(a <= e for a, e in zip(made["applied"], made["log_end"], strict=True))

        # the first server still has everything
        for i, sks in enumerate(rows(srv.url)):
            assert check_prefix(sks, final[i], final[i]) == final[i]

        # offline backup of a running server's data directory: refused, clearly
        busy = mussel("backup", "--data", str(tmp_path / "data"), str(tmp_path / "offline"))
        assert busy.returncode == 1
        assert "is in use" in busy.stderr and "Traceback" not in busy.stderr
    finally:
        stop(srv)

    restored = mussel(
        "restore", made["path"], "--data", str(tmp_path / "restored"), "--json", timeout=300
    )
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restored"]["files"] == made["files"]
    counts = []
    for i, sks in enumerate(serve_and_read(tmp_path / "restored")):
        counts.append(check_prefix(sks, before[i], after[i]))
        assert counts[-1] < final[i]  # a point in time, not the final state
    # Across rows too: the backup is a prefix of the log, so a batch acknowledged before
    # any restored batch was sent is restored, whichever writer wrote it.
    latest_send = max(writers.times[i][n // BATCH - 1][0] for i, n in enumerate(counts))
    for i, n in enumerate(counts):
        acked_earlier = sum(1 for _, acked_at in writers.times[i] if acked_at < latest_send)
        assert acked_earlier * BATCH <= n, (i, acked_earlier, n)
    behind = sum(made["log_end"]) - sum(made["applied"])
    print(f"acked before {before}, restored {counts}, sent by the end {after}, final {final}")
    print(f"backup: {made['files']} files, {made['bytes']} bytes, {behind} log records replayed")

    # offline: the stopped server's data holds every acknowledged write
    offline = mussel("backup", "--data", str(tmp_path / "data"), str(tmp_path / "offline"))
    assert offline.returncode == 0, offline.stderr
    again = mussel("restore", str(tmp_path / "offline"), "--data", str(tmp_path / "restored2"))
    assert again.returncode == 0, again.stderr
    assert "mussel serve --data" in again.stdout
    for i, sks in enumerate(serve_and_read(tmp_path / "restored2")):
        assert check_prefix(sks, final[i], final[i]) == final[i]
