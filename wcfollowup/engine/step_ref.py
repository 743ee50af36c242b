"""The name of one planned step, as the composer, the coupon issuer and the log know it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepRef:
    """Which step an email belongs to; a preview uses id 0."""

    id: int
    store_id: int
    order_id: int
    sequence: str
    step: str
