"""kill -9 of every server process under durable write load from several HTTP clients,
many times (the server runs its default number of processes: the owner and followers,
which hand writes to the owner).

Every write the server acknowledged (200 with ``ack=durable``) must be readable after
the restart. ``MUSSEL_HTTP_CRASH_CYCLES`` sets the cycles (default 3 in ``make test``;
``make faults`` runs 100).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

from mussel import Client, MusselError, Put
from tests.conftest import start_server


def _writer(url: str, cycle: int, w: int, stop: threading.Event, acked: list[str]) -> None:
    with Client(url, retries=0, timeout=5.0) as client:
        seq = 0
        while not stop.is_set():
            pks = [f"c{cycle}-w{w}-{seq + i}" for i in range(20)]
            try:
                client.write("crash", "t", [Put(pk, "s", pk * 2) for pk in pks])
            except MusselError:
                return  # the server died under us: this batch is not acknowledged
            acked.extend(pks)
            seq += 20


def test_acknowledged_http_writes_survive_kill_9(tmp_path: Path) -> None:
    cycles = int(os.environ.get("MUSSEL_HTTP_CRASH_CYCLES", "3"))
    rng = random.Random(7)
    data = tmp_path / "data"
    all_acked: list[str] = []
    for cycle in range(cycles):
        srv = start_server(data)
        try:
            with Client(srv.url) as c:
                c.put_namespace("crash")
                c.put_table("crash", "t")
            stop = threading.Event()
            acked: list[str] = []
            writers = [
                threading.Thread(target=_writer, args=(srv.url, cycle, w, stop, acked))
                for w in range(4)
            ]
            for t in writers:
                t.start()
            time.sleep(rng.uniform(0.1, 0.6))
            srv.kill_all()
            stop.set()
            for t in writers:
                t.join()
            all_acked += acked
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
            if srv.proc.stderr:
                srv.proc.stderr.close()
    srv = start_server(data)
    try:
        with Client(srv.url) as c:
            present = {cell.pk.decode() for cell in c.iter_scan("crash", "t", limit=5000)}
        srv.stop()
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
        if srv.proc.stderr:
            srv.proc.stderr.close()
    lost = set(all_acked) - present
    print(
        f"\nHTTP crash test: {cycles} kill cycles, {len(all_acked)} acknowledged, {len(lost)} lost"
    )
    assert all_acked
    assert not lost
