"""Run a poll's database writes on one thread of their own, in order, behind the parsing.

SQLite and PostgreSQL do their work without Python's interpreter lock, so while a batch of
enrolments is being written the poll thread can already parse and plan the next pages. Order is
what keeps the cursor honest: writes run one after another, and once one fails nothing queued
after it runs, so the cursor can never move past enrolments that were not stored.

The writer thread runs at a lower CPU priority (a higher nice value) than the rest of the
daemon. What a backlog poll waits for is the fetch chain; when the writer and the fetch thread
are ready to run on the same CPU, the fetcher should go first, and the writer catch up while
the fetcher waits for the store. On a VPS that also serves the shop, the shop's own processes
go first too. The poll gets no slower on an idle CPU, and the thread ends with the poll.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

import structlog

# Added to the daemon's nice value for the writer thread. Measured (bench/README.md): +10
# and +19 took the backlog ratio from 1.16 to 1.00 with the store on its own CPU; +5 did
# nothing measurable.
WRITER_NICENESS = 10

log = structlog.get_logger("wcfollowup.poll")


def lower_this_threads_priority(niceness: int = WRITER_NICENESS) -> None:
    """Raise the calling thread's nice value by ``niceness``, where the platform allows it.

    Linux keeps a nice value per thread (setpriority on a thread id). Elsewhere the id is not
    a process id, so nothing is tried. Lowering one's own priority needs no privilege, but a
    seccomp filter may refuse the call (the shipped unit allows it): the writer then runs at
    the daemon's priority, as it did before.
    """
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(current + niceness, 19))
    except OSError as exc:
        log.debug("writer priority unchanged", error=str(exc))


class WriteBehind:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="poll-writer",
            initializer=lower_this_threads_priority,
        )
        self._futures: list[Future[None]] = []
        self._failed = threading.Event()

    def submit(self, write: Callable[..., Any], *args: Any) -> Future[None]:
        """Queue ``write``; the future is done once it ran (or was skipped after a failure)."""
        future = self._pool.submit(self._run, write, *args)
        self._futures.append(future)
        return future

    def _run(self, write: Callable[..., Any], *args: Any) -> None:
        if self._failed.is_set():
            return  # an earlier write failed: later ones (a cursor move) must not happen
        try:
            write(*args)
        except BaseException:
            self._failed.set()
            raise

    def drain(self) -> None:
        """Wait for every queued write; raise the first failure."""
        futures, self._futures = self._futures, []
        first: BaseException | None = None
        for future in futures:
            error = future.exception()
            if error is not None and first is None:
                first = error
        if first is not None:
            raise first

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.drain()
            else:  # the poll failed: let what is queued finish, keep the poll's own error
                for future in self._futures:
                    future.exception()
        finally:
            self._pool.shutdown(wait=True)
