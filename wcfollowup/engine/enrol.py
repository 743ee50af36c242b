"""What a poll does with each order it reads: enrol, re-anchor, cancel, or skip it.

A newly completed order is planned into the sequences whose trigger and conditions it meets;
a delivery that became known re-anchors the steps counting from it; an order that left (refunded,
cancelled, failed) has its pending steps cancelled; a completed order that used one of our
coupons has the redemption noted. An order that cannot be read, planned or stored is skipped,
logged and counted (``engine.poison`` says which errors are its fault), and the others go on.

Kept apart from the poller, which pages through the store, batches the enrolments built here
onto the writer thread and moves the cursor: this module decides per order, and knows nothing
of paging or cursors. Everything done for an order is idempotent, since the poll's overlap
reads orders again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog

from wcfollowup.config import Config, SequenceConfig
from wcfollowup.core.clock import Clock
from wcfollowup.core.conditions import evaluate, required_fields
from wcfollowup.core.context import safe_money
from wcfollowup.core.delivery import delivered_at, delivery_fields, delivery_statuses
from wcfollowup.core.orders import EXIT_STATUSES, OrderSnapshot
from wcfollowup.core.planning import (
    Enrollment,
    Timing,
    due_time,
    find_step,
    is_new_completion,
    plan,
)
from wcfollowup.db.coupons import CouponBook, Redemption
from wcfollowup.db.state import BacklogWriter, PreparedEnrolments, StateStore, StoreState
from wcfollowup.engine.cursor import StoreClock
from wcfollowup.engine.facts import FactsSource
from wcfollowup.engine.poison import check_order_id, describe, order_at_fault
from wcfollowup.web.metrics import Metrics

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
COUPON_FIELDS = frozenset({"coupon_lines", "total", "currency"})
LOG_EACH_UP_TO = 10
MAX_UNREADABLE_MEMO = 1000
SKIP_WORDS = {"unreadable": "read", "planning": "planned", "storing": "stored"}

# The poll's logger: these lines are the poll's, wherever the code that writes them lives.
log = structlog.get_logger("wcfollowup.poll")


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


def by_order(plans: Sequence[Enrollment]) -> list[list[Enrollment]]:
    """``plans`` grouped by order, in order: what is stored or skipped together."""
    groups: dict[int, list[Enrollment]] = {}
    for enrollment in plans:
        groups.setdefault(enrollment.order.id, []).append(enrollment)
    return list(groups.values())


class OrderHandler:
    """Enrols, re-anchors and cancels the orders of a poll's pages, one order at a time."""

    def __init__(
        self,
        facts: FactsSource,
        state: StateStore,
        config: Config,
        clock: Clock,
        store_clock: StoreClock,
        metrics: Metrics | None = None,
    ) -> None:
        self.state = state
        self.config = config
        self.clock = clock
        self.store_clock = store_clock
        self.metrics = metrics
        self.sequences: list[SequenceConfig] = list(config.sequences)
        self.completed_statuses = frozenset({"completed", *delivery_statuses(config.delivery)})
        self.timing = Timing(
            store_tz=config.store.tz,
            default_window=config.send_window,
            delivery=config.delivery,
        )
        self.facts = facts
        self.coupons = CouponBook(state) if issues_coupons(config) else None
        # Orders skipped as unreadable (no usable id or date), not to log them at every poll.
        self._unreadable: set[tuple[str, str]] = set()

    def handle_page(
        self,
        store: StoreState,
        items: Sequence[dict[str, Any]],
        totals: dict[str, int],
        planned: set[int],
        store_planned: Callable[[], None],
        recent: dict[tuple[int, datetime], datetime],
    ) -> list[Enrollment]:
        """Cancel and re-anchor right away; return the enrolments to write (in a batch).

        ``planned`` holds the orders planned and maybe not stored yet. One that comes back (it
        changed while the poll paged: a refund, a delivery) is cancelled or re-anchored only
        after ``store_planned`` has written its enrolment. ``recent`` holds the (order id,
        ``date_modified_gmt``) the poll handled lately; orders in it are passed over, and every
        order handled or skipped here is added. This loop runs for every order of a backlog, so
        what it reads per order is hoisted.
        """
        now = self.clock.now()
        plans: list[Enrollment] = []
        completed = self.completed_statuses
        from_wc = OrderSnapshot.from_wc
        watch_coupons = self.coupons is not None
        delivery = self.config.delivery
        store_tz = self.config.store.tz
        future = self.store_clock.future()
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
                self.skip(item, "unreadable", exc)
                recent[key] = order.modified_gmt
                continue
            if order.modified_gmt > future:
                log.warning(
                    "order modified in the future by the store's clock; handled, but the poll "
                    "cursor does not follow it",
                    order_id=order.id,
                    date_modified_gmt=order.modified_gmt.isoformat(),
                    store_now=self.store_clock.now().isoformat(),
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
                self.skip(item, "planning", exc)
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
        self.skip(item, "unreadable", exc)

    def skip(self, item: object, stage: str, exc: BaseException) -> None:
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

    def prepare(self, store_id: int, plans: list[Enrollment]) -> PreparedEnrolments:
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
                self.skip({"id": order_plans[0].order.id}, "storing", exc)
        return rows

    def enroll(
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
                    self.skip({"id": order_plans[0].order.id}, "storing", one_exc)
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
