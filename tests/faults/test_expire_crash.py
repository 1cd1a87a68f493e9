"""kill -9 of a process in the middle of expiration sweeps, many times.

After every kill the store reopens with exactly the visible content it had (no
visible version lost), and a new service resumes the interrupted run from its
checkpoint and finishes it. ``MUSSEL_EXPIRE_CRASH_CYCLES`` sets the cycles (default 4
in ``make test``; ``make faults`` runs 50).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mussel.engine import Store
from mussel.expire import ExpirationService
from tests.faults.expire_crash_child import CONFIG
from tests.faults.expire_model import CLOCK_US, TTL_S, StoreClock, expected, history

ROOT = Path(__file__).resolve().parents[2]


def visible(store: Store) -> list[tuple[bytes, bytes, int, bytes]]:
    cells = store.scan_all("ns", "t", versions=100, limit=5000)
    return [(c.pk, c.sk, c.ts, c.value) for c in cells]


def test_killed_sweeps_lose_nothing_visible_and_resume(tmp_path: Path) -> None:
    cycles = int(os.environ.get("MUSSEL_EXPIRE_CRASH_CYCLES", "4"))
    rng = random.Random(5)
    data = tmp_path / "store"
    want = expected()
    resumed = 0
    for cycle in range(cycles):
        with Store.open(data, clock=StoreClock(CLOCK_US)) as store:
            store.put_namespace("ns")
            store.put_table("ns", "t", {"max_versions": 2, "ttl_seconds": TTL_S})
            if cycle % 2 == 0:  # fresh garbage for the next sweeps
                store.drop_table("ns", "t")
                store.put_table("ns", "t", {"max_versions": 2, "ttl_seconds": TTL_S})
                for batch in history():
                    store.write("ns", "t", batch, ack="applied")
            assert visible(store) == want
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.expire_crash_child", str(data)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Store.open(data, clock=StoreClock(CLOCK_US)) as store:
            assert visible(store) == want  # nothing visible lost, whatever was swept
            svc = ExpirationService(store, CONFIG)
            try:
                stats = svc.run("ns", "t")
                resumed += stats.reason == "resumed"
                assert stats.state == "done"
                # every removable version is gone: per pk, s keeps 2 versions, k 1, and
                # d its tombstone and the put under it (the tombstone's grace is a day)
                again = svc.run("ns", "t")
                assert again.removed == 0 and again.examined == 1500 * 5
            finally:
                svc.stop()
            assert visible(store) == want
    print(f"\nexpiration crash test: {cycles} kill cycles, {resumed} runs resumed")
