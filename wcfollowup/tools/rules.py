"""Run the config's rules over past orders exactly as the poller would, with no side effects.

Shared by ``simulate`` (count only) and ``backfill`` (count, then enrol what was counted). The
decisions are the daemon's own functions: ``evaluate`` for conditions, ``plan`` for due times,
``FactsSource`` for first/repeat customer and categories. Step guards (``only_if``/``skip_if``)
are judged on the order as it is now; the daemon judges them again when the step is due.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wcfollowup.common.emails import normalize_email
from wcfollowup.config import Config, SequenceConfig, StepConfig
from wcfollowup.core.conditions import evaluate, needs_survey, required_fields
from wcfollowup.core.delivery import delivered_at, delivery_statuses
from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.planning import Enrollment, PlannedStep, Timing, completion_anchor, plan
from wcfollowup.engine.facts import FactsSource
from wcfollowup.engine.poller import poll_fields
from wcfollowup.woo.gateway import WooGateway


@dataclass
class StepTally:
    sequence: str
    step: str
    kind: str
    would_send: int = 0
    guarded: int = 0  # only_if / skip_if would skip it today
    depends_on_survey: int = 0
    waits_for_delivery: int = 0
    no_email: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "would_send": self.would_send,
            "guarded": self.guarded,
            "depends_on_survey": self.depends_on_survey,
            "waits_for_delivery": self.waits_for_delivery,
            "no_email": self.no_email,
        }


@dataclass
class SequenceTally:
    name: str
    enrolled: int = 0
    rejected: int = 0  # the sequence's conditions said no
    already_enrolled: int = 0  # backfill: enrolled before (or once per customer, taken)
    steps: list[StepTally] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.name,
            "enrolled": self.enrolled,
            "rejected": self.rejected,
            "already_enrolled": self.already_enrolled,
            "steps": [s.as_dict() for s in self.steps],
        }


@dataclass
class Tally:
    since: datetime
    orders_seen: int = 0
    orders_in_period: int = 0  # completed at or after ``since``
    unreadable: int = 0
    sequences: list[SequenceTally] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(s.would_send for seq in self.sequences for s in seq.steps)

    @property
    def enrolled(self) -> int:
        return sum(seq.enrolled for seq in self.sequences)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "orders_seen": self.orders_seen,
            "orders_in_period": self.orders_in_period,
            "unreadable_orders": self.unreadable,
            "enrolments": self.enrolled,
            "messages": self.messages,
            "sequences": [s.as_dict() for s in self.sequences],
        }


@dataclass(frozen=True, slots=True)
class Known:
    """What the state database already holds, so a backfill counts only what is new."""

    enrolled: frozenset[tuple[int, str]] = frozenset()  # (order id, sequence)
    customers: frozenset[tuple[str, str]] = frozenset()  # (sequence, customer key)


class RuleRunner:
    def __init__(self, config: Config, gateway: WooGateway) -> None:
        self.config = config
        self.facts = FactsSource(gateway)
        self.timing = Timing(
            store_tz=config.store.tz,
            default_window=config.send_window,
            delivery=config.delivery,
        )
        self.completed = frozenset({"completed", *delivery_statuses(config.delivery)})
        self.sequences: list[SequenceConfig] = [
            s for s in config.sequences if s.trigger == "order_completed"
        ]

    @property
    def statuses(self) -> str:
        return ",".join(sorted(self.completed))

    @property
    def fields(self) -> str:
        """The poll's own ``_fields`` plus what step guards read."""
        extra: set[str] = set()
        for sequence in self.sequences:
            for step in sequence.steps:
                extra |= required_fields(step.only_if) | required_fields(step.skip_if)
        base = poll_fields(self.config).split(",")
        whole = {f for f in [*base, *extra] if "." not in f}
        wanted = {f for f in [*base, *extra] if "." not in f or f.split(".")[0] not in whole}
        return ",".join(sorted(wanted))

    def run(
        self,
        items: Iterable[dict[str, Any]],
        since: datetime,
        *,
        known: Known | None = None,
        keep: bool = False,
    ) -> tuple[Tally, list[Enrollment]]:
        """Count what each sequence and step would do for orders completed since ``since``;
        with ``keep``, also return the enrolments (to store them)."""
        known = known or Known()
        tally = Tally(since=since)
        by_name: dict[str, SequenceTally] = {}
        for sequence in self.sequences:
            entry = SequenceTally(
                sequence.name,
                steps=[StepTally(sequence.name, s.name, s.kind) for s in sequence.steps],
            )
            by_name[sequence.name] = entry
            tally.sequences.append(entry)
        customers = set(known.customers)
        kept: list[Enrollment] = []
        for item in items:
            tally.orders_seen += 1
            try:
                order = OrderSnapshot.from_wc(item)
            except (KeyError, TypeError, ValueError):
                tally.unreadable += 1
                continue
            if order.status not in self.completed or completion_anchor(order) < since:
                continue
            tally.orders_in_period += 1
            delivered = self._delivered(item)
            for sequence in self.sequences:
                entry = by_name[sequence.name]
                if sequence.conditions is not None:
                    facts = self.facts.facts(item, [sequence.conditions])
                    if not evaluate(sequence.conditions, facts):
                        entry.rejected += 1
                        continue
                customer = (sequence.name, order.customer_key)
                taken = bool(
                    sequence.once_per_customer and order.customer_key and customer in customers
                )
                if (order.id, sequence.name) in known.enrolled or taken:
                    entry.already_enrolled += 1
                    continue
                if sequence.once_per_customer and order.customer_key:
                    customers.add(customer)
                enrollment = plan(order, sequence, self.timing, delivered)
                entry.enrolled += 1
                for tally_step, step, planned in zip(
                    entry.steps, sequence.steps, enrollment.steps, strict=True
                ):
                    self._count_step(tally_step, step, planned, item)
                if keep:
                    kept.append(enrollment)
        return tally, kept

    def _delivered(self, item: dict[str, Any]) -> datetime | None:
        if self.config.delivery is None:
            return None
        return delivered_at(item, self.config.delivery, self.config.store.tz)

    def _count_step(
        self, tally: StepTally, step: StepConfig, planned: PlannedStep, item: dict[str, Any]
    ) -> None:
        billing = item.get("billing") or {}
        if step.to == "customer" and normalize_email(str(billing.get("email") or "")) is None:
            tally.no_email += 1
        elif needs_survey(step.only_if) or needs_survey(step.skip_if):
            tally.depends_on_survey += 1
        elif self._guarded(step, item):
            tally.guarded += 1
        elif planned.state == "waiting":
            tally.waits_for_delivery += 1
        else:
            tally.would_send += 1

    def _guarded(self, step: StepConfig, item: dict[str, Any]) -> bool:
        if step.only_if is None and step.skip_if is None:
            return False
        facts = self.facts.facts(item, [step.only_if, step.skip_if])
        if step.only_if is not None and not evaluate(step.only_if, facts):
            return True
        return step.skip_if is not None and evaluate(step.skip_if, facts)
