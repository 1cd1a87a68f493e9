"""Batch priority of a bulk load's helper threads (Linux: a thread's own nice value)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from mussel.bulkload.priority import BATCH_NICE, lower_thread_priority

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


def test_a_helper_thread_is_lowered_and_the_others_are_not() -> None:
    me = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int] = {}

    def helper() -> None:
        lower_thread_priority()
        seen["helper"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=helper)
    t.start()
    t.join()
    assert seen["helper"] == min(19, me + BATCH_NICE)
    lower_thread_priority()  # the main thread: unchanged
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == me
