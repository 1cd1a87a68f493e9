"""Child of test_expire_crash: sweeps a table, checkpointing every step, until killed.

``python -m tests.faults.expire_crash_child DATA`` opens the store at DATA (created by
the test), prints ``ready`` and runs the expiration service on ``ns/t`` in small steps.
"""

from __future__ import annotations

import sys

from mussel.engine import Store
from mussel.expire import ExpirationService, ExpireConfig
from tests.faults.expire_model import CLOCK_US, StoreClock

CONFIG = ExpireConfig(
    interval_s=None, workers=2, subtask_bytes=64 << 10, step_versions=50, checkpoint_s=0.0
)


def main() -> None:
    store = Store.open(sys.argv[1], clock=StoreClock(CLOCK_US))
    svc = ExpirationService(store, CONFIG)
    print("ready", flush=True)
    while True:
        svc.run("ns", "t")


if __name__ == "__main__":
    main()
