"""``wcfollowup backfill``: deliberately enrol orders completed before the daemon first looked.

The daemon treats orders completed before it first saw the store as history and never mails
them. Backfill is the owner saying "these too": it counts first (the same rules as
``simulate``), then stores the enrolments through ``StateStore.enroll_many``, so the daemon
sends them like any other, and an order already enrolled is left alone (once, ever).

Timing: a plan for an old order has due times in the past. The whole plan of an order is moved
forward so its first step is due now and the later ones keep their spacing (a thank-you now and
the review request a few days later, not all of it in one burst). Each moved time is put back
into its step's send window, and the daemon checks the window again before sending.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select

from wcfollowup.config import Config
from wcfollowup.core.planning import Enrollment, Timing, find_step, window_timezone
from wcfollowup.core.windows import next_opening
from wcfollowup.db.schema import enrollments
from wcfollowup.db.state import StateStore
from wcfollowup.tools.rules import Known, RuleRunner, Tally
from wcfollowup.tools.store_scan import Progress, make_gateway, scan_orders
from wcfollowup.woo.gateway import WooGateway

MAX_LOOKBACK = timedelta(days=365)
BATCH = 500


class BackfillRefused(ValueError):
    """The request is outside what backfill does; the message says why."""


@dataclass
class BackfillPlan:
    tally: Tally
    plans: list[Enrollment]
    store_id: int | None


def check_since(since: datetime, now: datetime) -> None:
    if now - since > MAX_LOOKBACK:
        raise BackfillRefused(
            f"backfill looks back at most {MAX_LOOKBACK.days} days; customers do not expect a "
            "thank-you for an order from over a year ago. Choose a later --since."
        )
    if since > now:
        raise BackfillRefused("--since is in the future; nothing to backfill")


def known_enrolments(state: StateStore, store_id: int | None, config: Config) -> Known:
    if store_id is None:
        return Known()
    once = [s.name for s in config.sequences if s.once_per_customer]
    with state.engine.connect() as conn:
        pairs = conn.execute(
            select(enrollments.c.order_id, enrollments.c.sequence).where(
                enrollments.c.store_id == store_id
            )
        ).all()
        customers = (
            conn.execute(
                select(enrollments.c.sequence, enrollments.c.customer_key).where(
                    enrollments.c.store_id == store_id, enrollments.c.sequence.in_(once)
                )
            ).all()
            if once
            else []
        )
    return Known(
        enrolled=frozenset((int(r[0]), str(r[1])) for r in pairs),
        customers=frozenset((str(r[0]), str(r[1])) for r in customers if r[1]),
    )


def prepare(
    config: Config,
    state: StateStore,
    since: datetime,
    now: datetime,
    *,
    gateway: WooGateway | None = None,
    progress: Progress | None = None,
) -> BackfillPlan:
    """Count what would be enrolled and sent; nothing is written."""
    check_since(since, now)
    gateway = gateway or make_gateway(config)
    found = state.store_state(gateway.url)
    store_id = found.id if found is not None else None
    runner = RuleRunner(config, gateway)
    items = scan_orders(
        gateway,
        statuses=runner.statuses,
        fields=runner.fields,
        modified_after=since,
        progress=progress,
    )
    tally, plans = runner.run(
        items, since, known=known_enrolments(state, store_id, config), keep=True
    )
    return BackfillPlan(tally, [due_from(p, config, now) for p in plans], store_id)


def enroll(
    state: StateStore,
    prepared: BackfillPlan,
    url: str,
    now: datetime,
    *,
    progress: Progress | None = None,
) -> int:
    """Store the plans; returns how many enrolments were new (a daemon may have got some)."""
    store_id = prepared.store_id
    if store_id is None:
        # The daemon never looked yet: the store starts now, as its first poll would start it.
        existing = state.store_state(url)
        store_id = existing.id if existing else state.create_store(url, now, now).id
    stored = 0
    total = len(prepared.plans)
    for start in range(0, total, BATCH):
        stored += len(state.enroll_many(store_id, prepared.plans[start : start + BATCH], now))
        if progress is not None:
            progress(min(start + BATCH, total), total)
    return stored


def due_from(enrollment: Enrollment, config: Config, now: datetime) -> Enrollment:
    """Move a plan whose first due time has passed so that it starts now (see module doc)."""
    dues = [s.due_at for s in enrollment.steps if s.due_at is not None]
    if not dues or min(dues) >= now:
        return enrollment
    shift = now - min(dues)
    timing = Timing(
        store_tz=config.store.tz, default_window=config.send_window, delivery=config.delivery
    )
    moved = []
    for planned in enrollment.steps:
        if planned.due_at is None:
            moved.append(planned)
            continue
        due = planned.due_at + shift
        step = find_step(config.sequences, enrollment.sequence, planned.step)
        window = step.effective_window(config.send_window) if step is not None else None
        if window is not None:
            due = next_opening(due, window, window_timezone(window, enrollment.order, timing))
        moved.append(replace(planned, due_at=max(due, now)))
    return replace(enrollment, steps=tuple(moved))
