"""Find orders that changed since the durable cursor and enrol, re-anchor or cancel accordingly.

One poll pages through the orders modified since the cursor (the keyset scan and the bound
that keeps the cursor behind the store's clock live in ``engine.cursor``), hands each page to
``engine.enrol`` (which decides per order: enrol, re-anchor, cancel, skip), writes the
enrolments in batches on a writer thread, and moves the durable cursor only past what is
stored. Each poll starts ``overlap`` before the cursor so that orders committed late by the
store are still seen; everything done for an order is idempotent.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from wcfollowup.config import Config
from wcfollowup.core.clock import Clock
from wcfollowup.core.planning import Enrollment
from wcfollowup.db.state import (
    DatabaseUnavailable,
    PreparedEnrolments,
    StateStore,
    StoreState,
    database_problem,
)
from wcfollowup.engine.cursor import ONE_SECOND, Scan, StoreClock
from wcfollowup.engine.enrol import OrderHandler, poll_fields, poll_statuses
from wcfollowup.engine.facts import FactsSource
from wcfollowup.engine.page_stream import PageStream
from wcfollowup.engine.write_behind import WriteBehind
from wcfollowup.web.metrics import Metrics
from wcfollowup.woo.gateway import Page, WooGateway

# Kept importable from here, where the daemon, the owner tools and the tests look for them.
__all__ = ["FLUSH_AT", "PollResult", "Poller", "Unstored", "poll_fields", "poll_statuses"]

# Enrolments written per transaction while paging through a backlog. Since every index a
# backlog fills grows at its end (migration 0004), batches of 500 to 5,000 cost the same CPU per
# enrolment (100 cost a third more); 1,000 keeps the last batch, which nothing overlaps, short.
FLUSH_AT = 1000

log = structlog.get_logger("wcfollowup.poll")


@dataclass(frozen=True, slots=True)
class PollResult:
    requests: int
    orders_seen: int
    enrolled: int
    cancelled: int
    cursor: datetime
    delivered: int = 0


@contextmanager
def fewer_gc_pauses() -> Iterator[None]:
    """Keep the garbage collector from rescanning the daemon while a backlog streams through.

    A poll over a backlog allocates millions of short-lived objects (JSON, snapshots, plans).
    With the default threshold of 700 a collection runs every few orders, and the older
    generations it reaches walk every long-lived object of the daemon. ``gc.freeze`` parks those
    for the poll, and a higher young-generation threshold collects in larger, rarer batches.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class Unstored(set[int]):
    """Orders a poll planned whose enrolments may not be in the database yet.

    Kept per batch and forgotten once the writer has stored the batch, so that it stays as
    small as the batches in flight, however long the backlog. A set, so that the check made for
    every order of a backlog costs what a set's does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._batches: deque[tuple[Future[None], frozenset[int]]] = deque()

    def submitted(self, write: Future[None], batch: PreparedEnrolments) -> None:
        """``batch`` went to the writer; its orders are forgotten once ``write`` is done."""
        self._batches.append((write, frozenset(p.order.id for p in batch.plans)))

    def forget_stored(self) -> None:
        # An order planned again after a stored batch may be dropped too: it is stored.
        while self._batches and self._batches[0][0].done():
            self.difference_update(self._batches.popleft()[1])

    def clear(self) -> None:
        """Everything planned is stored."""
        super().clear()
        self._batches.clear()


class Poller:
    def __init__(
        self,
        gateway: WooGateway,
        state: StateStore,
        config: Config,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.gateway = gateway
        self.metrics = metrics
        self.state = state
        self.config = config
        self.clock = clock
        self.overlap = config.poll.overlap
        self.page_size = config.poll.page_size
        self.fields = poll_fields(config)
        self.statuses = poll_statuses(config)
        # The store's clock at its latest answer: the cursor never passes it (engine.cursor).
        self.store_clock = StoreClock(clock)
        self.orders = OrderHandler(
            FactsSource(gateway), state, config, clock, self.store_clock, metrics
        )
        self._probed = False
        # (order id, date_modified_gmt) handled recently: spares the database the overlap.
        self._recent: dict[tuple[int, datetime], datetime] = {}

    def ensure_store(self) -> StoreState:
        return self._store()[0]

    def poll(self) -> PollResult:
        """One poll; raises ``DatabaseUnavailable`` (with what to do) when the database refuses.

        The cursor only moves past what is stored, so the next poll sees those orders again.
        """
        try:
            with fewer_gc_pauses():
                return self._poll()
        except SQLAlchemyError as exc:
            self._recent.clear()
            raise DatabaseUnavailable(
                f"poll not stored: {database_problem(exc)}; the same orders are read again "
                "next time, nothing is lost"
            ) from None
        except BaseException:
            # What was noted as handled may not have reached the database: forget it all.
            self._recent.clear()
            raise

    def _poll(self) -> PollResult:
        store, requests = self._store()
        cursor = self.store_clock.bounded(store.cursor_gmt, self.overlap)
        if cursor < store.cursor_gmt:
            log.warning(
                "poll cursor was ahead of the store's clock; polling resumes from the store's now",
                cursor=store.cursor_gmt.isoformat(),
                store_now=self.store_clock.now().isoformat(),
            )
        scan = Scan(after=cursor - self.overlap)
        totals = {"seen": 0, "enrolled": 0, "cancelled": 0, "delivered": 0}
        buffer: PreparedEnrolments | None = None
        resume_at: datetime | None = None
        # Pages are fetched on their own thread (see page_stream) while this one parses and
        # plans them and builds their database rows, and enrolments are written in batches of
        # several pages on a third (see write_behind): a backlog then costs little more than
        # fetching it.
        stream = PageStream(
            fetch=lambda: self._fetch(scan),
            advance=lambda items: self._advance(scan, items),
        )
        pages = iter(stream)
        planned = Unstored()
        with self.state.backlog_writer() as writer, WriteBehind() as writes:

            def send_buffer() -> None:
                nonlocal buffer
                if buffer is not None:
                    write = writes.submit(self.orders.enroll, writer, buffer, totals)
                    planned.submitted(write, buffer)
                    buffer = None

            def store_planned() -> None:
                """Write what is planned so far and wait for it: an order planned a few pages
                ago came back changed, and what follows must find its enrolment."""
                send_buffer()
                writes.drain()
                planned.clear()

            while True:
                page = next(pages, None)
                last = page is None
                planned.forget_stored()
                if page is not None:
                    items, moved_to = page
                    requests += 1
                    plans = self._handle_page(store, items, totals, planned, store_planned)
                    if plans:
                        rows = self.orders.prepare(store.id, plans)
                        if buffer is None:
                            buffer = rows
                        else:
                            buffer.extend(rows)
                    resume_at = moved_to or resume_at
                if buffer is not None and (len(buffer.plans) >= FLUSH_AT or last):
                    send_buffer()
                if resume_at is not None and buffer is None:
                    # Everything before resume_at is queued to be stored first: a crash
                    # resumes here.
                    cursor = self.store_clock.bounded(max(cursor, resume_at), self.overlap)
                    writes.submit(self._advance_cursor, store.id, cursor)
                    self._forget_before(resume_at - self.overlap - ONE_SECOND)
                    resume_at = None
                if last:
                    break
        newest = max(self._recent.values(), default=cursor)
        cursor = self.store_clock.bounded(max(cursor, newest), self.overlap)
        self._advance_cursor(store.id, cursor)
        self._forget_before(cursor - self.overlap - ONE_SECOND)
        return PollResult(
            requests,
            totals["seen"],
            totals["enrolled"],
            totals["cancelled"],
            cursor,
            totals["delivered"],
        )

    def _fetch(self, scan: Scan) -> Page:
        """One page (on the fetch thread); notes the store's clock from its ``Date`` header."""
        page = self.gateway.list_orders(scan.params(self.statuses, self.fields, self.page_size))
        self.store_clock.saw(page.server_time)
        return page

    def _advance_cursor(self, store_id: int, cursor: datetime) -> None:
        self.state.advance_cursor(store_id, cursor, self.clock.now())

    def _advance(self, scan: Scan, items: list[dict[str, Any]]) -> tuple[bool, datetime | None]:
        resume_at = scan.advance(items, self.page_size)
        return not scan.done, resume_at

    # -- one page -------------------------------------------------------------------------

    def _handle_page(
        self,
        store: StoreState,
        items: Sequence[dict[str, Any]],
        totals: dict[str, int],
        planned: Unstored,
        store_planned: Callable[[], None],
    ) -> list[Enrollment]:
        """Cancel and re-anchor right away; return the enrolments to write (``engine.enrol``).

        A method of its own so that a benchmark can stand in for the handling of a page.
        """
        return self.orders.handle_page(store, items, totals, planned, store_planned, self._recent)

    # -- the store ------------------------------------------------------------------------

    def _store(self) -> tuple[StoreState, int]:
        """The store's durable state; on first sight, history before now is left alone."""
        state = self.state.store_state(self.gateway.url)
        requests = 0
        if state is None or not self._probed:
            server_now = self.gateway.probe(self.clock.now(), self.statuses)
            self.store_clock.saw(server_now)
            requests += 1
            self._probed = True
            if state is None:
                baseline = (server_now or self.clock.now()).replace(microsecond=0)
                state = self.state.create_store(self.gateway.url, baseline, self.clock.now())
                log.info(
                    "store first seen; earlier orders are history and will not be mailed",
                    store=self.gateway.url,
                    baseline=baseline.isoformat(),
                )
        return state, requests

    def _forget_before(self, limit: datetime) -> None:
        self._recent = {k: ts for k, ts in self._recent.items() if ts >= limit}
