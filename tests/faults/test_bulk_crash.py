"""kill -9 of a process in the middle of a replace bulk load, many times.

After every restart the table is exactly as before the job or exactly as after its
commit, never a mix, and the job's record agrees (committed exactly when the data
is). ``MUSSEL_BULK_CRASH_CYCLES`` sets the number of cycles (default 10).
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

import pyarrow as pa
import pyarrow.parquet as pq

from mussel.bulkload import JobManager
from mussel.engine import Store
from tests.faults.crash_child import CONFIG

ROOT = Path(__file__).resolve().parents[2]
ROWS = 80_000


def generation(g: int) -> dict[bytes, bytes]:
    """The content a replace of generation ``g`` leaves: overlapping key sets."""
    return {f"k{g * 7000 + i:08d}".encode(): f"gen{g}".encode() for i in range(ROWS)}


def write_source(path: Path, g: int) -> None:
    content = generation(g)
    pq.write_table(
        pa.table(
            {
                "pk": list(content),
                "sk": [b""] * len(content),
                "value": list(content.values()),
            }
        ),
        path,
        row_group_size=2000,
    )


def run_and_kill(data: Path, source: Path, job_id: str, delay_s: float) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.bulk_crash_child", str(data), str(source), job_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode()
            if not line.endswith("\n"):
                break
            lines.append(line[:-1])
            if line == "ready\n":
                ready.set()

    t = threading.Thread(target=reader)
    t.start()
    ready.wait(timeout=60)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t.join()
    assert ready.is_set(), proc.stderr.read().decode() if proc.stderr else "child never ready"
    return lines


def test_a_killed_bulk_load_leaves_the_table_before_or_after_never_mixed(
    tmp_path: Path,
) -> None:
    cycles = int(os.environ.get("MUSSEL_BULK_CRASH_CYCLES", "10"))
    rng = random.Random(20261122)
    data = tmp_path / "store"
    current: dict[bytes, bytes] = {}
    outcomes = {"before": 0, "after": 0}
    for cycle in range(1, cycles + 1):
        source = tmp_path / f"gen{cycle}.parquet"
        write_source(source, cycle)
        job_id = f"gen-{cycle}"
        lines = run_and_kill(data, source, job_id, rng.uniform(0.0, 0.6))
        with Store.open(data, CONFIG) as store:
            jobs = JobManager(store, data / "bulk-work")
            got = {c.pk: c.value for c in store.scan_all("bulk", "t", limit=10_000)}
            after = generation(cycle)
            job_state = None
            try:
                job_state = jobs.get(job_id).state
            except Exception:
                job_state = None  # killed before the job record was written
            jobs.close()
        if got == after:
            outcomes["after"] += 1
            assert job_state == "committed", (cycle, job_state)
            current = after
        else:
            assert got == current, (
                f"cycle {cycle}: a mixed table: {len(got)} cells, "
                f"{sum(1 for v in got.values() if v == f'gen{cycle}'.encode())} of the new job"
            )
            assert "committed" not in lines
            assert job_state in (None, "failed"), (cycle, job_state)
            outcomes["before"] += 1
    print(f"\nbulk crash test: {cycles} kills, outcomes {outcomes}")
    assert outcomes["before"] + outcomes["after"] == cycles
