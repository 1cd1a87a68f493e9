"""Child process of the crash test: writes durably from several threads, forever.

Prints ``ack <pk>`` on stdout after each acknowledged batch's records, one line per
record, so the parent knows exactly what was acknowledged before it sent SIGKILL.
Usage: python -m tests.faults.crash_child DATA_DIR CYCLE
"""

from __future__ import annotations

import sys
import threading

from mussel import Put, Store
from mussel.engine import StoreConfig
from mussel.storage.rocksdb import RocksConfig

CONFIG = StoreConfig(
    partitions=4,
    segment_bytes=256 << 10,  # small segments: rolling and release happen under the kill
    rocks=RocksConfig(block_cache_bytes=8 << 20, write_buffer_bytes=1 << 20),
)
WRITERS = 4
BATCH = 20


def value_for(pk: str) -> bytes:
    return (pk * 3).encode()


def main() -> None:
    data, cycle = sys.argv[1], int(sys.argv[2])
    store = Store.open(data, CONFIG)
    store.put_namespace("crash")
    table = store.put_table("crash", "t", {"max_versions": 1})
    out_lock = threading.Lock()
    print("ready", flush=True)

    def writer(w: int) -> None:
        seq = 0
        while True:
            pks = [f"c{cycle}-w{w}-{seq + i}" for i in range(BATCH)]
            table.write([Put(pk, "s", value_for(pk)) for pk in pks])
            seq += BATCH
            with out_lock:
                sys.stdout.write("".join(f"ack {pk}\n" for pk in pks))
                sys.stdout.flush()

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
