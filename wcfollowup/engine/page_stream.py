"""Fetch a keyset scan's pages on a thread of their own, a few pages ahead of the writer.

Each request's parameters depend only on the previous page, so the fetching chain never needs
to wait for the database: it runs exactly like a bare fetch loop while the poller parses,
plans and writes the pages it has already received. The queue is bounded, so a slow database
holds the fetcher back instead of filling memory.

The fetch chain is what a backlog poll waits for, and it needs the interpreter lock for about
half of every request (signing and building it, then reading and decoding the answer). A page
handed over wakes the reader just as the fetcher starts building the next request; left alone,
the reader takes the lock at the fetcher's first system call and keeps it for its whole page,
so every page's parsing lands on the fetch chain. The reader therefore lets the fetcher go
first: it starts on a page once the fetcher's CPU clock stands still (it is waiting for the
store), which is the time the store spends answering and nobody else needs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from wcfollowup.woo.gateway import Page

PAGES_AHEAD = 8
# How the reader waits for the fetcher to block: it looks at the fetcher's CPU clock every
# SAMPLE_SECONDS and starts once the clock moved by less than a fifth of that (the thread is in
# a system call), or after at most MAX_WAIT_SECONDS whatever it sees.
SAMPLE_SECONDS = 0.0001
MAX_WAIT_SECONDS = 0.005
_END = object()

Fetch = Callable[[], Page]
# Called after each page: moves the scan on, returns (more pages?, resume point or None).
Advance = Callable[[list[dict[str, Any]]], tuple[bool, datetime | None]]


def wait_while_busy(
    cpu_seconds: Callable[[], float],
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    sample: float = SAMPLE_SECONDS,
    max_wait: float = MAX_WAIT_SECONDS,
) -> None:
    """Return once ``cpu_seconds`` (a thread's CPU clock) stands still for a sample.

    Never waits longer than ``max_wait``; an unreadable clock (the thread ended, or the
    platform has no per-thread clocks) ends the wait at once.
    """
    deadline = monotonic() + max_wait
    try:
        before = cpu_seconds()
        while True:
            sleep(sample)
            now = cpu_seconds()
            if now - before < sample / 5 or monotonic() >= deadline:
                return
            before = now
    except OSError:
        return


def thread_cpu_clock(thread: threading.Thread) -> Callable[[], float] | None:
    """The CPU clock of a running thread, where the platform has one (Linux, BSDs)."""
    getcpuclockid = getattr(time, "pthread_getcpuclockid", None)
    if thread.ident is None or getcpuclockid is None:
        return None
    try:
        clock_id = getcpuclockid(thread.ident)
    except OSError:
        return None
    return lambda: time.clock_gettime(clock_id)


class PageStream:
    def __init__(self, fetch: Fetch, advance: Advance) -> None:
        self._fetch = fetch
        self._advance = advance
        self._pages: queue.Queue[Any] = queue.Queue(maxsize=PAGES_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poll-fetch", daemon=True)

    def __iter__(self) -> Iterator[tuple[list[dict[str, Any]], datetime | None]]:
        self._thread.start()
        fetcher_cpu = thread_cpu_clock(self._thread)
        try:
            while True:
                item = self._pages.get()
                if fetcher_cpu is not None and self._thread.is_alive():
                    wait_while_busy(fetcher_cpu)
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop fetching (the thread finishes the request it is in, then exits)."""
        self._stop.set()
        try:
            while True:
                self._pages.get_nowait()
        except queue.Empty:
            pass

    def _run(self) -> None:
        try:
            more = True
            while more and not self._stop.is_set():
                items = self._fetch().items
                more, resume_at = self._advance(items)
                self._put((items, resume_at))
            self._put(_END)
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
