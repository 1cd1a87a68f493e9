"""kill -9 of a process writing with ack=durable, many times: nothing acknowledged is lost.

``MUSSEL_CRASH_CYCLES`` sets the number of kill cycles (default 8 in ``make test``;
``make faults`` runs 200).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mussel import Store
from tests.faults.crash_child import CONFIG, value_for

ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(data: Path, cycle: int, delay_s: float) -> list[str]:
    """Start the child, SIGKILL it ``delay_s`` after it is ready; the pks it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.crash_child", str(data), str(cycle)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    acked: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode()
            if not line.endswith("\n"):
                break  # cut by the kill: not known to be printed whole
            if line == "ready\n":
                ready.set()
            elif line.startswith("ack "):
                acked.append(line[4:-1])

    t = threading.Thread(target=reader)
    t.start()
    ready.wait(timeout=60)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t.join()
    assert ready.is_set(), proc.stderr.read().decode() if proc.stderr else "child never ready"
    return acked


def test_no_acknowledged_write_is_lost_across_kill_9(tmp_path: Path) -> None:
    cycles = int(os.environ.get("MUSSEL_CRASH_CYCLES", "8"))
    rng = random.Random(20261122)
    data = tmp_path / "store"
    all_acked: list[str] = []
    for cycle in range(cycles):
        acked = run_and_kill(data, cycle, rng.uniform(0.0, 0.4))
        all_acked += acked
        # check this cycle's writes and a sample of all earlier ones after each restart
        with Store.open(data, CONFIG) as store:
            sample = acked + rng.sample(all_acked, min(200, len(all_acked)))
            missing = [
                pk
                for pk in sample
                if [c.value for c in store.get("crash", "t", pk, "s")] != [value_for(pk)]
            ]
            assert not missing, f"cycle {cycle}: {len(missing)} acknowledged writes lost"
    with Store.open(data, CONFIG) as store:
        present = {c.pk.decode() for c in store.scan_all("crash", "t", limit=5000)}
    lost = set(all_acked) - present
    print(
        f"\ncrash test: {cycles} kill cycles, {len(all_acked)} acknowledged writes, "
        f"{len(lost)} lost"
    )
    assert not lost
    assert len(all_acked) > 0
