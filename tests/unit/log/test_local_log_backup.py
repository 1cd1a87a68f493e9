"""What a backup asks of ``LocalLog``: hold segments, open them at a durable length."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mussel.errors import CorruptionError
from mussel.log import format as fmt
from mussel.log.local import LocalLog, stored_partitions
from tests.unit.log.test_log_contract import keys

P = 4


def _header_only(path: Path) -> bool:
    """Whether the segment file holds its header frame and nothing else (or nothing
    yet: the flusher creates the file, then writes its header)."""
    data = path.read_bytes()
    if not data:
        return True
    kind, _, end = fmt.decode_frame(data, 0)
    return kind == fmt.FRAME_SEGMENT_HEADER and end == len(data)


def test_open_segments_skips_applied_segments_and_cuts_at_durable_frames(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P, segment_bytes=300) as log:
        for i in range(20):
            log.append(keys(10, prefix=f"b{i}-"))
        names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".log"))
        assert len(names) > 3
        ends = log.end_offsets()
        middle = dict.fromkeys(range(P), 0)
        copies, got_ends = log.open_segments(middle)
        got = [c.name for c in copies]
        # nothing applied: every segment (the flusher rolls to the next segment after
        # acknowledging the batch that filled one, so its file, only a header yet, may
        # be on disk a moment before the log lists it)
        assert got == names or (got == names[:-1] and _header_only(tmp_path / names[-1]))
        names = got
        assert got_ends == [ends[p] for p in range(P)]
        assert [c.size for c in copies] == [os.path.getsize(tmp_path / n) for n in names]
        for c in copies:
            c.file.close()
        copies, _ = log.open_segments(ends)  # everything applied: the active one only
        # (the last one listed above, or the next if the roll happened since)
        assert len(copies) == 1 and copies[0].name >= names[-1]
        active = copies[0].name
        assert active == names[-1] or _header_only(tmp_path / active)
        size = copies[0].size
        log.append(keys(3, prefix="after"))  # later appends do not change a copy
        assert copies[0].size == size
        head = (tmp_path / active).read_bytes()[:size]
        assert copies[0].file.read_at(0, size) == head
        copies[0].file.close()


def test_holding_segments_delays_release_and_open_files_survive_it(tmp_path: Path) -> None:
    with LocalLog(tmp_path, P, segment_bytes=300) as log:
        for i in range(10):
            log.append(keys(10, prefix=f"b{i}-"))
        first = sorted(n for n in os.listdir(tmp_path) if n.endswith(".log"))[0]
        ends = log.end_offsets()
        released = threading.Event()
        with log.holding_segments():
            copies, _ = log.open_segments(dict.fromkeys(range(P), 0))
            t = threading.Thread(target=lambda: (log.release(ends), released.set()))
            t.start()
            assert not released.wait(0.3)
            assert (tmp_path / first).exists()
        t.join(5)
        assert released.is_set() and not (tmp_path / first).exists()
        data = copies[0].file.read_at(0, copies[0].size)  # the deleted file is still readable
        assert len(data) == copies[0].size
        for c in copies:
            c.file.close()
        with pytest.raises(CorruptionError, match="was released"):
            log.open_segments(dict.fromkeys(range(P), 0))


def test_stored_partitions_reads_the_oldest_header(tmp_path: Path) -> None:
    assert stored_partitions(tmp_path / "none") is None
    with LocalLog(tmp_path, 6):
        assert stored_partitions(tmp_path) == 6
