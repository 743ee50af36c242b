"""Turn an order and a sequence into the steps to store, with their due times.

Pure functions: the same order, sequence and clock reading always give the same plan, which is
what makes ``simulate`` and the tests trustworthy. A step anchored on delivery whose delivery is
not known yet (and has no "assume delivered after" fallback) is planned as ``waiting`` with no
due time; ``reanchor`` gives it one when the parcel arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from wcfollowup.config import DeliveryConfig, SendWindow, SequenceConfig, StepConfig
from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.windows import customer_timezone, next_opening


# PlannedStep and Enrollment are built per enrolled order on the backlog path, so they are not
# frozen (a frozen dataclass's __init__ costs five times a plain one). Treat them as read-only.
@dataclass(slots=True)
class PlannedStep:
    step: str
    kind: str
    anchor: str
    delay: timedelta
    due_at: datetime | None
    state: str  # "pending" or "waiting"


@dataclass(slots=True)
class Enrollment:
    order: OrderSnapshot
    sequence: str
    anchor_at: datetime
    delivered_at: datetime | None
    once_per_customer: bool
    steps: tuple[PlannedStep, ...]


@dataclass(frozen=True, slots=True)
class Timing:
    """What timing needs besides the order: the store's zone, its default window, delivery."""

    store_tz: tzinfo
    default_window: SendWindow | None = None
    delivery: DeliveryConfig | None = None


def completion_anchor(order: OrderSnapshot) -> datetime:
    """When the order was completed; older stores may lack ``date_completed_gmt``."""
    return order.completed_gmt or order.modified_gmt


def is_new_completion(
    order: OrderSnapshot,
    baseline: datetime,
    completed_statuses: frozenset[str] = frozenset({"completed"}),
) -> bool:
    """Only orders completed after we first saw the store are enrolled: no mailing history.

    A custom "delivered" status counts as completed: the poll may first see the order there.
    """
    return order.status in completed_statuses and completion_anchor(order) >= baseline


def window_timezone(window: SendWindow | None, order: OrderSnapshot, timing: Timing) -> tzinfo:
    if window is not None and window.timezone == "customer":
        return customer_timezone(order.country, order.state, timing.store_tz)
    return timing.store_tz


def due_time(
    step: StepConfig, anchor_time: datetime, order: OrderSnapshot, timing: Timing
) -> datetime:
    """The step's delay after its anchor, moved to the next opening of its send window."""
    window = step.effective_window(timing.default_window)
    return next_opening(anchor_time + step.after, window, window_timezone(window, order, timing))


def assumed_delivery(order: OrderSnapshot, timing: Timing) -> datetime | None:
    if timing.delivery is None or timing.delivery.assume_after is None:
        return None
    return completion_anchor(order) + timing.delivery.assume_after


def plan_step(
    step: StepConfig, order: OrderSnapshot, timing: Timing, delivered_at: datetime | None
) -> PlannedStep:
    if step.anchor == "delivered":
        anchor_time = delivered_at or assumed_delivery(order, timing)
    else:
        anchor_time = completion_anchor(order)
    if anchor_time is None:
        return PlannedStep(step.name, step.kind, step.anchor, step.after, None, "waiting")
    due = due_time(step, anchor_time, order, timing)
    return PlannedStep(step.name, step.kind, step.anchor, step.after, due, "pending")


def plan(
    order: OrderSnapshot,
    sequence: SequenceConfig,
    timing: Timing,
    delivered_at: datetime | None = None,
) -> Enrollment:
    steps = tuple([plan_step(step, order, timing, delivered_at) for step in sequence.steps])
    return Enrollment(
        order,
        sequence.name,
        completion_anchor(order),
        delivered_at,
        sequence.once_per_customer,
        steps,
    )


def find_step(sequences: Sequence[SequenceConfig], sequence: str, step: str) -> StepConfig | None:
    for candidate in sequences:
        if candidate.name == sequence:
            for step_config in candidate.steps:
                if step_config.name == step:
                    return step_config
    return None
