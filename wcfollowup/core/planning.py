"""Turn an order and a sequence into the steps to store, with their due times.

Pure functions: the same order and sequence always give the same plan, which is what makes
``simulate`` and the tests trustworthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from wcfollowup.config import SequenceConfig
from wcfollowup.core.orders import OrderSnapshot


@dataclass(frozen=True, slots=True)
class PlannedStep:
    step: str
    kind: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Enrollment:
    order: OrderSnapshot
    sequence: str
    anchor_at: datetime
    steps: tuple[PlannedStep, ...]


def completion_anchor(order: OrderSnapshot) -> datetime:
    """When the order was completed; older stores may lack ``date_completed_gmt``."""
    return order.completed_gmt or order.modified_gmt


def is_new_completion(order: OrderSnapshot, baseline: datetime) -> bool:
    """Only orders completed after we first saw the store are enrolled: no mailing history."""
    return order.status == "completed" and completion_anchor(order) >= baseline


def plan(order: OrderSnapshot, sequence: SequenceConfig) -> Enrollment:
    anchor = completion_anchor(order)
    planned = tuple(
        PlannedStep(step=step.name, kind=step.kind, due_at=anchor + step.after)
        for step in sequence.steps
    )
    return Enrollment(order=order, sequence=sequence.name, anchor_at=anchor, steps=planned)


def plans_for(
    order: OrderSnapshot, sequences: Sequence[SequenceConfig], baseline: datetime
) -> Iterable[Enrollment]:
    if not is_new_completion(order, baseline):
        return ()
    return [plan(order, seq) for seq in sequences if seq.trigger == "order_completed"]
