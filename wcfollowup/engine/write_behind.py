"""Run a poll's database writes on one thread of their own, in order, behind the parsing.

SQLite and PostgreSQL do their work without Python's interpreter lock, so while a batch of
enrolments is being written the poll thread can already parse and plan the next pages. Order is
what keeps the cursor honest: writes run one after another, and once one fails nothing queued
after it runs, so the cursor can never move past enrolments that were not stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any


class WriteBehind:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poll-writer")
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
