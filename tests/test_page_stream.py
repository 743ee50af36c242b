"""The poll's page stream lets the fetch thread go first (see wcfollowup/engine/page_stream.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from wcfollowup.engine.page_stream import PageStream, thread_cpu_clock, wait_while_busy
from wcfollowup.woo.gateway import Page


class FakeThreadClock:
    """A thread's CPU clock that advances by scripted amounts each time the waiter sleeps."""

    def __init__(self, busy_per_sample: list[float]) -> None:
        self.cpu = 0.0
        self.wall = 0.0
        self.sleeps = 0
        self._busy = list(busy_per_sample)

    def read(self) -> float:
        return self.cpu

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.wall += seconds
        self.cpu += self._busy.pop(0) if self._busy else seconds

    def monotonic(self) -> float:
        return self.wall


def wait(clock: FakeThreadClock, cpu: Callable[[], float] | None = None) -> None:
    wait_while_busy(
        cpu or clock.read,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        sample=0.0001,
        max_wait=0.005,
    )


def test_the_reader_waits_while_the_fetcher_uses_the_cpu_and_starts_when_it_blocks() -> None:
    # Busy for three samples (building the request), then in a system call (waiting).
    clock = FakeThreadClock([0.0001, 0.0001, 0.00009, 0.0])
    wait(clock)
    assert clock.sleeps == 4


def test_the_reader_never_waits_longer_than_the_cap_for_a_fetcher_that_never_blocks() -> None:
    clock = FakeThreadClock([])  # always busy
    wait(clock)
    assert clock.sleeps == 50  # 5 ms in samples of 0.1 ms
    assert clock.wall == pytest.approx(0.005)


def test_an_unreadable_clock_ends_the_wait_at_once() -> None:
    clock = FakeThreadClock([])

    def gone() -> float:
        raise OSError(22, "Invalid argument")  # the thread has ended

    wait(clock, gone)
    assert clock.sleeps == 0


@pytest.mark.skipif(not hasattr(time, "pthread_getcpuclockid"), reason="no per-thread clocks")
def test_a_thread_cpu_clock_moves_while_it_computes_and_stands_still_while_it_waits() -> None:
    computing, release = threading.Event(), threading.Event()

    def work() -> None:
        computing.set()
        deadline = time.monotonic() + 5
        while not release.is_set() and time.monotonic() < deadline:
            sum(range(1000))

    worker = threading.Thread(target=work)
    worker.start()
    computing.wait()
    cpu = thread_cpu_clock(worker)
    assert cpu is not None
    first = cpu()
    time.sleep(0.05)
    assert cpu() > first
    release.set()
    worker.join()

    waiting = threading.Thread(target=threading.Event().wait, args=(0.5,))
    waiting.start()
    cpu = thread_cpu_clock(waiting)
    assert cpu is not None
    samples = []

    def counted_sleep(seconds: float) -> None:
        samples.append(seconds)
        time.sleep(seconds)

    # A thread in a system call: the wait ends within a sample or two of it settling, long
    # before its (here generous) cap of 400 samples.
    wait_while_busy(cpu, sleep=counted_sleep, max_wait=0.04)
    assert len(samples) <= 3
    waiting.join()


def test_pages_arrive_in_order_and_a_fetch_error_reaches_the_reader() -> None:
    pages = [[{"id": 1}], [{"id": 2}], RuntimeError("store went away")]

    def fetch() -> Page:
        item = pages.pop(0)
        if isinstance(item, BaseException):
            raise item
        return Page(items=item, total=3, total_pages=3, server_time=None)

    stream = PageStream(fetch=fetch, advance=lambda items: (True, None))
    seen = []
    with pytest.raises(RuntimeError, match="store went away"):
        for items, _resume in stream:
            seen.append(items[0]["id"])
    assert seen == [1, 2]
