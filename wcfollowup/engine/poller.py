"""Find orders that changed since the durable cursor and enrol, re-anchor or cancel accordingly.

Paging is by keyset on ``date_modified_gmt`` (``orderby=modified&order=asc``): each request
asks for orders modified after the last page's final second minus one, excluding the orders
already seen in that second. Unlike page numbers this cannot skip an order when another order
is modified mid-scan (the modified one moves to the end and shows up later), and it repeats
nothing, so N changed orders cost ceil(N/100) requests plus the last short page. When more
orders share one second than an ``exclude`` list should carry, it falls back to page numbers
inside that second. Each poll starts ``overlap`` before the cursor so that orders committed late
by the store are still seen; everything done for an order is idempotent.

The cursor never passes the store's own clock (the ``Date`` header of its answers; ours when it
sends none) plus ``FUTURE_TOLERANCE``. An order whose ``date_modified_gmt`` lies in the future
(an importer, a plugin, a mistyped server clock) is enrolled like any other and logged, but it
cannot carry the cursor along: a cursor in 2099 would ask only for orders modified after 2099,
and every order after it would be lost without a sound.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from wcfollowup.config import Config, SequenceConfig
from wcfollowup.core.clock import Clock
from wcfollowup.core.conditions import evaluate, required_fields
from wcfollowup.core.context import safe_money
from wcfollowup.core.delivery import delivered_at, delivery_fields, delivery_statuses
from wcfollowup.core.orders import EXIT_STATUSES, OrderSnapshot, format_wc_gmt, parse_wc_gmt
from wcfollowup.core.planning import (
    Enrollment,
    Timing,
    due_time,
    find_step,
    is_new_completion,
    plan,
)
from wcfollowup.db.coupons import CouponBook, Redemption
from wcfollowup.db.state import (
    BacklogWriter,
    DatabaseUnavailable,
    PreparedEnrolments,
    StateStore,
    StoreState,
    database_problem,
)
from wcfollowup.engine.facts import FactsSource
from wcfollowup.engine.page_stream import PageStream
from wcfollowup.engine.poison import check_order_id, describe, order_at_fault
from wcfollowup.engine.write_behind import WriteBehind
from wcfollowup.web.metrics import Metrics
from wcfollowup.woo.gateway import Page, WooGateway

# Just what enrolment needs; dispatch re-reads the full order before acting.
BASE_FIELDS = frozenset(
    {
        "id",
        "number",
        "status",
        "date_modified_gmt",
        "date_completed_gmt",
        "date_created_gmt",
        "customer_id",
        "billing.email",
        "billing.country",
        "billing.state",
    }
)
ONE_SECOND = timedelta(seconds=1)
MAX_EXCLUDE = 300
LOG_EACH_UP_TO = 10
# Enrolments written per transaction while paging through a backlog. Since every index a
# backlog fills grows at its end (migration 0004), batches of 500 to 5,000 cost the same CPU per
# enrolment (100 cost a third more); 1,000 keeps the last batch, which nothing overlaps, short.
FLUSH_AT = 1000
# How far past the store's clock the cursor may go. At most the default overlap, so that the
# next poll (which starts ``overlap`` before the cursor) still starts before the store's "now".
FUTURE_TOLERANCE = timedelta(minutes=1)

MAX_UNREADABLE_MEMO = 1000
SKIP_WORDS = {"unreadable": "read", "planning": "planned", "storing": "stored"}

log = structlog.get_logger("wcfollowup.poll")


@dataclass(frozen=True, slots=True)
class PollResult:
    requests: int
    orders_seen: int
    enrolled: int
    cancelled: int
    cursor: datetime
    delivered: int = 0


COUPON_FIELDS = frozenset({"coupon_lines", "total", "currency"})


def issues_coupons(config: Config) -> bool:
    return any(step.kind == "coupon" for seq in config.sequences for step in seq.steps)


def poll_fields(config: Config) -> str:
    fields = set(BASE_FIELDS) | delivery_fields(config.delivery)
    if issues_coupons(config):  # to see our coupons being used
        fields |= COUPON_FIELDS
    for sequence in config.sequences:
        if sequence.conditions is not None:
            fields |= required_fields(sequence.conditions)
    # A nested name is redundant next to its parent, which brings the whole object anyway.
    whole = {f for f in fields if "." not in f}
    return ",".join(sorted(f for f in fields if "." not in f or f.split(".")[0] not in whole))


def poll_statuses(config: Config) -> str:
    wanted = {"completed", *EXIT_STATUSES, *delivery_statuses(config.delivery)} - {"trash"}
    return ",".join(sorted(wanted))


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


def modified_text(item: object) -> object:
    return item.get("date_modified_gmt") if isinstance(item, dict) else None


def excludable_id(item: object) -> int | None:
    """An order's id as the ``exclude`` parameter takes it; None when it is not a number."""
    value = item.get("id") if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        order_id = int(value)
    except ValueError:
        return None
    return order_id if 0 < order_id < 2**64 else None


@dataclass
class Scan:
    """Where a keyset scan stands: the next request's ``modified_after``, exclusions, page."""

    after: datetime
    exclude: list[int] = field(default_factory=list)
    page: int = 1
    done: bool = False

    def advance(self, items: Sequence[dict[str, Any]], page_size: int) -> datetime | None:
        """Move past a page; return the new resume point when the keyset moved forward."""
        if len(items) < page_size:
            self.done = True
            return None
        # A page may hold an unreadable order (not an object, no date, an id that is not a
        # number): it is skipped when handled, and must not stop the scan here either.
        last_raw = modified_text(items[-1])
        last = parse_wc_gmt(last_raw)
        if last is None:
            self.page += 1
            return None
        # The store writes every timestamp the same way: comparing the text is enough.
        same_second = [
            order_id
            for item in items
            if modified_text(item) == last_raw and (order_id := excludable_id(item)) is not None
        ]
        if last - ONE_SECOND > self.after:
            self.after, self.exclude, self.page = last - ONE_SECOND, same_second, 1
            return self.after
        if self.page == 1 and len(self.exclude) + len(same_second) <= MAX_EXCLUDE:
            self.exclude = sorted({*self.exclude, *same_second})
        else:
            self.page += 1
        return None


def by_order(plans: Sequence[Enrollment]) -> list[list[Enrollment]]:
    """``plans`` grouped by order, in order: what is stored or skipped together."""
    groups: dict[int, list[Enrollment]] = {}
    for enrollment in plans:
        groups.setdefault(enrollment.order.id, []).append(enrollment)
    return list(groups.values())


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
        self.sequences: list[SequenceConfig] = list(config.sequences)
        self.clock = clock
        self.overlap = config.poll.overlap
        self.page_size = config.poll.page_size
        self.fields = poll_fields(config)
        self.statuses = poll_statuses(config)
        self.completed_statuses = frozenset({"completed", *delivery_statuses(config.delivery)})
        self.timing = Timing(
            store_tz=config.store.tz,
            default_window=config.send_window,
            delivery=config.delivery,
        )
        self.facts = FactsSource(gateway)
        self.coupons = CouponBook(state) if issues_coupons(config) else None
        self._probed = False
        # Orders skipped as unreadable (no usable id or date), not to log them at every poll.
        self._unreadable: set[tuple[str, str]] = set()
        # The store's clock at its latest answer (its Date header; ours when it sends none).
        self._store_now: datetime | None = None
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
        cursor = self._bounded(store.cursor_gmt)
        if cursor < store.cursor_gmt:
            log.warning(
                "poll cursor was ahead of the store's clock; polling resumes from the store's now",
                cursor=store.cursor_gmt.isoformat(),
                store_now=self._now_at_store().isoformat(),
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
                    planned.submitted(writes.submit(self._enroll, writer, buffer, totals), buffer)
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
                        rows = self._prepare(store.id, plans)
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
                    cursor = self._bounded(max(cursor, resume_at))
                    writes.submit(self._advance_cursor, store.id, cursor)
                    self._forget_before(resume_at - self.overlap - ONE_SECOND)
                    resume_at = None
                if last:
                    break
        newest = max(self._recent.values(), default=cursor)
        cursor = self._bounded(max(cursor, newest))
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
        page = self.gateway.list_orders(self._params(scan))
        self._saw_store_time(page.server_time)
        return page

    def _saw_store_time(self, server_time: datetime | None) -> None:
        self._store_now = server_time or self.clock.now()

    def _now_at_store(self) -> datetime:
        """The store's clock at its latest answer; our own clock before any answer.

        Kept from one poll to the next: a cursor stored by the previous poll is bounded by the
        clock of that poll's answers, so checking it against that clock at the start of a poll
        flags only a cursor that was wrong (one stored before this bound existed).
        """
        return self._store_now or self.clock.now()

    def _bounded(self, cursor: datetime) -> datetime:
        """``cursor``, but never past the store's clock plus ``FUTURE_TOLERANCE``."""
        return min(cursor, self._now_at_store() + min(FUTURE_TOLERANCE, self.overlap))

    def _advance_cursor(self, store_id: int, cursor: datetime) -> None:
        self.state.advance_cursor(store_id, cursor, self.clock.now())

    def _advance(self, scan: Scan, items: list[dict[str, Any]]) -> tuple[bool, datetime | None]:
        resume_at = scan.advance(items, self.page_size)
        return not scan.done, resume_at

    def _params(self, scan: Scan) -> dict[str, Any]:
        params: dict[str, Any] = {
            "status": self.statuses,
            "modified_after": format_wc_gmt(scan.after),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "per_page": self.page_size,
            "page": scan.page,
            "_fields": self.fields,
        }
        if scan.exclude:
            params["exclude"] = ",".join(str(i) for i in scan.exclude)
        return params

    # -- one page -------------------------------------------------------------------------

    def _handle_page(
        self,
        store: StoreState,
        items: Sequence[dict[str, Any]],
        totals: dict[str, int],
        planned: Unstored,
        store_planned: Callable[[], None],
    ) -> list[Enrollment]:
        """Cancel and re-anchor right away; return the enrolments to write (in a batch).

        ``planned`` holds the orders planned and maybe not stored yet. One that comes back (it
        changed while the poll paged: a refund, a delivery) is cancelled or re-anchored only
        after ``store_planned`` has written its enrolment. This loop runs for every order of a
        backlog, so what it reads per order is hoisted.
        """
        now = self.clock.now()
        plans: list[Enrollment] = []
        recent = self._recent
        completed = self.completed_statuses
        from_wc = OrderSnapshot.from_wc
        watch_coupons = self.coupons is not None
        delivery = self.config.delivery
        store_tz = self.config.store.tz
        future = self._now_at_store() + FUTURE_TOLERANCE
        seen = 0
        for item in items:
            try:
                order = from_wc(item)
            except Exception as exc:
                self._skip_unreadable(item, exc)
                continue
            key = (order.id, order.modified_gmt)
            if key in recent:
                continue
            try:
                check_order_id(order.id)
            except ValueError as exc:
                self._skip(item, "unreadable", exc)
                recent[key] = order.modified_gmt
                continue
            if order.modified_gmt > future:
                log.warning(
                    "order modified in the future by the store's clock; handled, but the poll "
                    "cursor does not follow it",
                    order_id=order.id,
                    date_modified_gmt=order.modified_gmt.isoformat(),
                    store_now=self._now_at_store().isoformat(),
                )
            seen += 1
            try:
                came_back = order.id in planned
                if order.status in completed:
                    if watch_coupons and item.get("coupon_lines"):
                        self._note_redemptions(order, item)
                    delivered = None if delivery is None else delivered_at(item, delivery, store_tz)
                    if is_new_completion(order, store.baseline_gmt, completed):
                        # Planned in full before any of it is kept: a failure leaves nothing.
                        plans.extend(self._plans(order, item, delivered))
                        planned.add(order.id)
                    if delivered is not None:
                        if came_back:
                            store_planned()
                        totals["delivered"] += self._reanchor(store, order, delivered, now)
                elif order.status in EXIT_STATUSES:
                    if came_back:
                        store_planned()
                    cancelled = self.state.cancel_open_steps(
                        store.id, order.id, f"order is {order.status}", now
                    )
                    totals["cancelled"] += cancelled
                    if cancelled:
                        log.info(
                            "pending follow-ups cancelled",
                            order_id=order.id,
                            status=order.status,
                            steps=cancelled,
                        )
            except Exception as exc:
                if not order_at_fault(exc):
                    raise  # the store or the database: the whole poll is tried again
                self._skip(item, "planning", exc)
            # Noted even when skipped, so that the cursor moves past it and the overlap of
            # the next polls does not log it again; a later change to it is read afresh.
            recent[key] = order.modified_gmt
        totals["seen"] += seen
        return plans

    def _skip_unreadable(self, item: object, exc: BaseException) -> None:
        """Skip an order with no usable id or date, once: the overlap brings it back."""
        fields = item if isinstance(item, dict) else {}
        memo = (repr(fields.get("id", item)), repr(fields.get("date_modified_gmt")))
        if memo in self._unreadable:
            return
        if len(self._unreadable) >= MAX_UNREADABLE_MEMO:
            self._unreadable.clear()
        self._unreadable.add(memo)
        self._skip(item, "unreadable", exc)

    def _skip(self, item: object, stage: str, exc: BaseException) -> None:
        """One order could not be read, planned or stored: log it, count it, go on."""
        order_id = item.get("id") if isinstance(item, dict) else None
        log.warning(
            "order skipped: it could not be " + SKIP_WORDS[stage],
            order_id=order_id if isinstance(order_id, int | str | None) else repr(order_id),
            stage=stage,
            reason=describe(exc),
        )
        if self.metrics is not None:
            self.metrics.order_skipped(stage)

    def _note_redemptions(self, order: OrderSnapshot, item: dict[str, Any]) -> None:
        """A completed order used one of our coupons: log it (first use only)."""
        assert self.coupons is not None
        codes = [
            str(line.get("code") or "")
            for line in item.get("coupon_lines") or []
            if isinstance(line, dict)
        ]
        ours = self.coupons.known_codes(codes)
        if not ours:
            return
        amount = safe_money(
            item.get("total", "0"),
            str(item.get("currency") or "USD"),
            self.config.store.language,
        )
        used = [Redemption(code, order.id, order.number, amount) for code in sorted(ours)]
        if self.coupons.redeem(used, self.clock.now()):
            log.info("coupon redeemed", order_id=order.id, codes=sorted(ours), total=amount)

    def _prepare(self, store_id: int, plans: list[Enrollment]) -> PreparedEnrolments:
        """A page's rows; when one order's cannot be built, the others' still are."""
        now = self.clock.now()
        try:
            return self.state.prepare_enrolments(store_id, plans, now)
        except Exception as exc:
            if not order_at_fault(exc):
                raise
        rows = self.state.prepare_enrolments(store_id, [], now)
        for order_plans in by_order(plans):
            try:
                rows.extend(self.state.prepare_enrolments(store_id, order_plans, now))
            except Exception as exc:
                if not order_at_fault(exc):
                    raise
                self._skip({"id": order_plans[0].order.id}, "storing", exc)
        return rows

    def _enroll(
        self, writer: BacklogWriter, prepared: PreparedEnrolments, totals: dict[str, int]
    ) -> None:
        try:
            stored = writer.enroll(prepared)
        except Exception as exc:
            if not order_at_fault(exc):
                raise
            # The batch's transaction was rolled back: store its orders one by one, so that
            # only the order the database refuses is skipped.
            stored = []
            for order_plans in by_order(prepared.plans):
                one = self.state.prepare_enrolments(prepared.store_id, order_plans, prepared.now)
                try:
                    stored.extend(writer.enroll(one))
                except Exception as one_exc:
                    if not order_at_fault(one_exc):
                        raise
                    self._skip({"id": order_plans[0].order.id}, "storing", one_exc)
        totals["enrolled"] += len(stored)
        if len(stored) <= LOG_EACH_UP_TO:
            for enrollment in stored:
                log.info(
                    "order enrolled",
                    order_id=enrollment.order.id,
                    sequence=enrollment.sequence,
                    steps=[s.step for s in enrollment.steps],
                )
        elif stored:  # a backlog batch: one line, not a thousand
            log.info(
                "orders enrolled",
                count=len(stored),
                first_order_id=stored[0].order.id,
                last_order_id=stored[-1].order.id,
            )

    def _plans(
        self, order: OrderSnapshot, item: dict[str, Any], delivered: datetime | None
    ) -> list[Enrollment]:
        """The sequences a newly completed order enrols in, planned."""
        chosen = []
        for sequence in self.sequences:
            if sequence.trigger != "order_completed":
                continue
            if sequence.conditions is not None:
                facts = self.facts.facts(item, [sequence.conditions])
                if not evaluate(sequence.conditions, facts):
                    continue
            chosen.append(plan(order, sequence, self.timing, delivered))
        return chosen

    def _reanchor(
        self, store: StoreState, order: OrderSnapshot, delivered: datetime, now: datetime
    ) -> int:
        """Delivery became known: steps counting from it get their real due times."""
        pending = self.state.delivery_steps(store.id, order.id)
        if not pending:
            return 0
        due: dict[int, datetime] = {}
        for step in pending:
            step_config = find_step(self.sequences, step.sequence, step.step)
            if step_config is not None:
                due[step.id] = due_time(step_config, delivered, order, self.timing)
        moved = self.state.record_delivery(store.id, order.id, delivered, due, now)
        if moved:
            log.info(
                "delivery detected; steps re-anchored",
                order_id=order.id,
                delivered_at=delivered.isoformat(),
                steps=moved,
            )
        return 1 if moved else 0

    # -- the store ------------------------------------------------------------------------

    def _store(self) -> tuple[StoreState, int]:
        """The store's durable state; on first sight, history before now is left alone."""
        state = self.state.store_state(self.gateway.url)
        requests = 0
        if state is None or not self._probed:
            server_now = self.gateway.probe(self.clock.now(), self.statuses)
            self._saw_store_time(server_now)
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
