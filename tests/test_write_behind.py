"""The poll's write-behind thread: in order, stops after a failure, and yields the CPU first."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from wcfollowup.engine import write_behind
from wcfollowup.engine.write_behind import WRITER_NICENESS, WriteBehind

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="per-thread nice values are a Linux feature"
)


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_writes_run_in_order_and_none_after_a_failure() -> None:
    done: list[str] = []

    def fail() -> None:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"), WriteBehind() as writes:
        writes.submit(done.append, "batch 1")
        writes.submit(fail)
        writes.submit(done.append, "cursor move")  # must not happen: batch 2 was not stored
    assert done == ["batch 1"]


@linux_only
def test_the_writer_runs_at_a_lower_priority_than_the_poll() -> None:
    before = nice_of_this_thread()
    seen: list[int] = []
    with WriteBehind() as writes:
        writes.submit(lambda: seen.append(nice_of_this_thread()))
    assert seen == [min(before + WRITER_NICENESS, 19)]
    assert nice_of_this_thread() == before  # the poll thread keeps its priority


@linux_only
def test_a_refused_priority_change_leaves_the_writer_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(_which: int, _who: int, _prio: int) -> None:
        raise PermissionError(1, "Operation not permitted")  # what a seccomp filter answers

    monkeypatch.setattr(write_behind.os, "setpriority", refused)
    seen: list[int] = []
    with WriteBehind() as writes:
        writes.submit(lambda: seen.append(nice_of_this_thread()))
    assert seen == [nice_of_this_thread()]
