"""``wcfollowup stats``: what the follow-ups achieved over a period.

Outcomes come from the message log (a step retried after a failure counts once, by its latest
outcome); survey answers and coupons from their own tables when the database has them; repeat
orders and the revenue of coupon orders from one pass over the store's orders in the period.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine, Table, func, inspect, select

from wcfollowup.config import Config
from wcfollowup.core.delivery import delivery_statuses
from wcfollowup.core.orders import parse_wc_gmt
from wcfollowup.db import schema
from wcfollowup.db.schema import enrollments, messages, steps
from wcfollowup.tools.store_scan import Progress, make_gateway, scan_orders
from wcfollowup.woo.gateway import WooGateway

OUTCOMES = ("sent", "failed", "skipped", "cancelled", "uncertain")
# Orders that count as "ordered again": paid, whether or not shipped yet.
PAID_STATUSES = ("completed", "processing", "on-hold")
ORDER_FIELDS = "id,number,status,date_created_gmt,billing.email,total,currency"


@dataclass
class StepOutcomes:
    sequence: str
    step: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))


@dataclass(frozen=True, slots=True)
class SurveyScores:
    sequence: str
    step: str
    answered: int
    average: float | None


@dataclass
class Stats:
    since: datetime
    until: datetime
    enrolled: dict[str, int] = field(default_factory=dict)
    steps: list[StepOutcomes] = field(default_factory=list)
    surveys: list[SurveyScores] | None = None  # None: this database has no survey table yet
    coupons_issued: int | None = None
    coupons_redeemed: int | None = None
    coupon_revenue: dict[str, Decimal] = field(default_factory=dict)
    coupon_revenue_unseen: list[str] = field(default_factory=list)  # amounts as logged
    customers_followed_up: int = 0
    customers_returned: int = 0
    repeat_orders: int = 0
    repeat_revenue: dict[str, Decimal] = field(default_factory=dict)
    orders_scanned: int = 0

    def as_dict(self) -> dict[str, Any]:
        def money(values: dict[str, Decimal]) -> dict[str, str]:
            return {currency: str(amount) for currency, amount in sorted(values.items())}

        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "enrolled": dict(sorted(self.enrolled.items())),
            "steps": [{"sequence": s.sequence, "step": s.step, **s.counts} for s in self.steps],
            "surveys": None
            if self.surveys is None
            else [
                {
                    "sequence": s.sequence,
                    "step": s.step,
                    "answered": s.answered,
                    "average_score": s.average,
                }
                for s in self.surveys
            ],
            "coupons": None
            if self.coupons_issued is None
            else {
                "issued": self.coupons_issued,
                "redeemed": self.coupons_redeemed,
                "revenue": money(self.coupon_revenue),
                "revenue_not_found_in_store": self.coupon_revenue_unseen,
            },
            "repeat": {
                "customers_followed_up": self.customers_followed_up,
                "customers_returned": self.customers_returned,
                "repeat_orders": self.repeat_orders,
                "revenue": money(self.repeat_revenue),
            },
            "orders_scanned": self.orders_scanned,
        }


def collect(
    config: Config,
    engine: Engine,
    since: datetime,
    now: datetime,
    *,
    gateway: WooGateway | None = None,
    progress: Progress | None = None,
) -> Stats:
    stats = Stats(since=since, until=now)
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        stats.enrolled = {
            str(r[0]): int(r[1])
            for r in conn.execute(
                select(enrollments.c.sequence, func.count())
                .where(enrollments.c.enrolled_at >= since, enrollments.c.enrolled_at <= now)
                .group_by(enrollments.c.sequence)
            )
        }
        stats.steps = _outcomes(conn, since, now)
        if "survey_responses" in tables:
            stats.surveys = _surveys(conn, schema.survey_responses, since, now)
        redeemed: list[tuple[int, str]] = []
        if "coupons" in tables:
            coupons = schema.coupons
            stats.coupons_issued = int(
                conn.execute(
                    select(func.count()).where(
                        coupons.c.created_at >= since, coupons.c.created_at <= now
                    )
                ).scalar()
                or 0
            )
            redeemed = [
                (int(r[0]), str(r[1] or ""))
                for r in conn.execute(
                    select(coupons.c.redeemed_order_id, coupons.c.redeemed_amount).where(
                        coupons.c.redeemed_at >= since, coupons.c.redeemed_at <= now
                    )
                )
            ]
            stats.coupons_redeemed = len(redeemed)
        first = {
            str(r[0]): (r[1], int(r[2]))
            for r in conn.execute(
                select(
                    enrollments.c.customer_key,
                    func.min(enrollments.c.anchor_at),
                    func.min(enrollments.c.order_id),
                )
                .where(enrollments.c.customer_key != "", enrollments.c.anchor_at <= now)
                .group_by(enrollments.c.customer_key)
            )
        }
    _from_store(config, stats, first, redeemed, gateway or make_gateway(config), progress)
    return stats


def _outcomes(conn: Any, since: datetime, now: datetime) -> list[StepOutcomes]:
    rows = conn.execute(
        select(messages.c.step_id, messages.c.sequence, messages.c.step, messages.c.status)
        .where(
            messages.c.at >= since,
            messages.c.at <= now,
            messages.c.status.in_(OUTCOMES),
        )
        .order_by(messages.c.id)
    ).all()
    latest: dict[object, tuple[str, str, str]] = {}
    for index, (step_id, sequence, step, status) in enumerate(rows):
        latest[step_id if step_id is not None else ("row", index)] = (sequence, step, status)
    found: dict[tuple[str, str], StepOutcomes] = {}
    for sequence, step, status in latest.values():
        entry = found.setdefault((sequence, step), StepOutcomes(sequence, step))
        entry.counts[status] += 1
    return [found[k] for k in sorted(found)]


def _surveys(conn: Any, table: Table, since: datetime, now: datetime) -> list[SurveyScores]:
    rows = conn.execute(
        select(steps.c.sequence, steps.c.step, func.count(), func.avg(table.c.score))
        .join(steps, steps.c.id == table.c.step_id)
        .where(table.c.answered_at >= since, table.c.answered_at <= now)
        .group_by(steps.c.sequence, steps.c.step)
        .order_by(steps.c.sequence, steps.c.step)
    ).all()
    return [
        SurveyScores(str(r[0]), str(r[1]), int(r[2]), round(float(r[3]), 2) if r[3] else None)
        for r in rows
    ]


def _amount(item: dict[str, Any]) -> tuple[str, Decimal]:
    currency = str(item.get("currency") or "").upper() or "?"
    try:
        return currency, Decimal(str(item.get("total") or "0"))
    except (InvalidOperation, ValueError):
        return currency, Decimal(0)


def _from_store(
    config: Config,
    stats: Stats,
    first: dict[str, tuple[datetime, int]],
    redeemed: list[tuple[int, str]],
    gateway: WooGateway,
    progress: Progress | None,
) -> None:
    """One pass over the orders created in the period: repeat orders and coupon revenue."""
    statuses = ",".join(sorted({*PAID_STATUSES, *delivery_statuses(config.delivery)}))
    wanted = {order_id for order_id, _ in redeemed}
    seen_redeemed: set[int] = set()
    returned: set[str] = set()
    coupon_revenue: dict[str, Decimal] = defaultdict(Decimal)
    repeat_revenue: dict[str, Decimal] = defaultdict(Decimal)
    for item in scan_orders(
        gateway,
        statuses=statuses,
        fields=ORDER_FIELDS,
        created_after=stats.since,
        progress=progress,
    ):
        stats.orders_scanned += 1
        order_id = int(item.get("id") or 0)
        if order_id in wanted:
            seen_redeemed.add(order_id)
            currency, amount = _amount(item)
            coupon_revenue[currency] += amount
        email = str((item.get("billing") or {}).get("email") or "").strip().lower()
        created = parse_wc_gmt(item.get("date_created_gmt"))
        known = first.get(email)
        if known is None or created is None:
            continue
        first_at, first_order = known
        if order_id != first_order and created > first_at:
            returned.add(email)
            stats.repeat_orders += 1
            currency, amount = _amount(item)
            repeat_revenue[currency] += amount
    stats.customers_followed_up = sum(1 for at, _ in first.values() if at >= stats.since)
    stats.customers_returned = len(returned)
    stats.coupon_revenue = dict(coupon_revenue)
    stats.repeat_revenue = dict(repeat_revenue)
    stats.coupon_revenue_unseen = [
        amount for order_id, amount in redeemed if order_id not in seen_redeemed
    ]


def print_stats(stats: Stats, config: Config, console: Any) -> None:
    from rich.table import Table

    from wcfollowup.core.money import format_money
    from wcfollowup.tools.log_view import shown

    tz, language = config.store.tz, config.store.language

    def money(values: dict[str, Decimal]) -> str:
        amounts = [shown(format_money(v, c, language)) for c, v in sorted(values.items())]
        return ", ".join(amounts) or "-"

    console.print(
        f"From {stats.since.astimezone(tz):%Y-%m-%d %H:%M} to "
        f"{stats.until.astimezone(tz):%Y-%m-%d %H:%M} ({tz})"
    )
    outcomes = Table(title="follow-ups", expand=False)
    for column in ("sequence", "step", *OUTCOMES):
        outcomes.add_column(column)
    for entry in stats.steps:
        outcomes.add_row(
            shown(entry.sequence), shown(entry.step), *(str(entry.counts[o]) for o in OUTCOMES)
        )
    console.print(outcomes)
    enrolled = ", ".join(f"{shown(k)}: {v}" for k, v in sorted(stats.enrolled.items())) or "none"
    console.print(f"Orders enrolled in the period: {enrolled}")
    if stats.surveys is None:
        console.print("Surveys: this database has no survey answers yet.")
    else:
        surveys = Table(title="surveys", expand=False)
        for column in ("sequence", "step", "answered", "average score"):
            surveys.add_column(column)
        for survey in stats.surveys:
            average = f"{survey.average:.2f}" if survey.average is not None else "-"
            surveys.add_row(
                shown(survey.sequence), shown(survey.step), str(survey.answered), average
            )
        console.print(surveys)
    if stats.coupons_issued is not None:
        line = (
            f"Coupons: {stats.coupons_issued} issued, {stats.coupons_redeemed} redeemed; "
            f"orders that used them: {money(stats.coupon_revenue)}"
        )
        if stats.coupon_revenue_unseen:
            unseen = ", ".join(shown(amount) for amount in stats.coupon_revenue_unseen)
            line += f" (plus {unseen} from older orders)"
        console.print(line)
    console.print(
        f"Repeat customers: {stats.customers_returned} customer(s) ordered again after a "
        f"follow-up ({stats.repeat_orders} order(s), {money(stats.repeat_revenue)}); "
        f"{stats.customers_followed_up} customer(s) got their first follow-up in the period."
    )
