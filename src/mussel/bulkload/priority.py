"""Batch priority for a bulk load's helper threads.

A bulk load is batch work: the threads that only crunch its data (sorting and spilling
runs, merging them) run at a lower CPU priority than the threads that serve reads, so
that on a busy machine the kernel gives the cores to the reads first. On Linux a thread
is a task with a nice value of its own (``setpriority`` on its native id); elsewhere,
or when not allowed, nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["BATCH_NICE", "lower_thread_priority"]

BATCH_NICE = 5
"""How much nicer than the process a bulk load's helper threads are."""


def lower_thread_priority(nice: int = BATCH_NICE) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux; a no-op elsewhere).

    Call it at the start of a thread that does batch work only: a thread cannot raise
    its priority back without privileges, and threads it starts inherit it. The main
    thread is never lowered (it is the process's, e.g. a test runner's or a CLI's).
    """
    if not hasattr(os, "setpriority") or os.uname().sysname != "Linux":
        return
    if threading.current_thread() is threading.main_thread():
        return
    with contextlib.suppress(OSError):
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
