"""Child process of the bulk-load crash test: runs one replace job, streaming meanwhile.

Usage: python -m tests.faults.bulk_crash_child DATA_DIR SOURCE JOB_ID
Prints ``ready`` once the job is submitted and ``committed`` once it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mussel.bulkload import JobManager
from mussel.engine import Store
from tests.faults.crash_child import CONFIG


def main() -> None:
    data, source, job_id = sys.argv[1], sys.argv[2], sys.argv[3]
    store = Store.open(data, CONFIG)
    store.put_namespace("bulk")
    store.put_table("bulk", "t")
    jobs = JobManager(store, Path(data) / "bulk-work", batch_rows=2000, sst_cells=4000)
    jobs.submit("bulk", "t", source, mode="replace", job_id=job_id)
    print("ready", flush=True)
    job = jobs.wait(job_id)
    print(job.state, flush=True)
    jobs.close()
    store.close()


if __name__ == "__main__":
    main()
