"""Fetch a keyset scan's pages on a thread of their own, a few pages ahead of the writer.

Each request's parameters depend only on the previous page, so the fetching chain never needs
to wait for the database: it runs exactly like a bare fetch loop while the poller parses,
plans and writes the pages it has already received. The queue is bounded, so a slow database
holds the fetcher back instead of filling memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from wcfollowup.woo.gateway import Page

PAGES_AHEAD = 8
_END = object()

Fetch = Callable[[], Page]
# Called after each page: moves the scan on, returns (more pages?, resume point or None).
Advance = Callable[[list[dict[str, Any]]], tuple[bool, datetime | None]]


class PageStream:
    def __init__(self, fetch: Fetch, advance: Advance) -> None:
        self._fetch = fetch
        self._advance = advance
        self._pages: queue.Queue[Any] = queue.Queue(maxsize=PAGES_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poll-fetch", daemon=True)

    def __iter__(self) -> Iterator[tuple[list[dict[str, Any]], datetime | None]]:
        self._thread.start()
        try:
            while True:
                item = self._pages.get()
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
