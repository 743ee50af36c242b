"""What goes out next, and the owner's hand on it: cancel, skip or retry steps.

Every change is one conditional UPDATE per step (``WHERE state IN (...)``) plus its log line,
in one transaction: a step the daemon claims meanwhile simply does not match, so the tool never
fights the dispatcher, and a step being ``sending`` is never touched.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update

from wcfollowup.db.schema import enrollments, messages, steps

LISTED_STATES = ("pending", "claimed", "waiting")
# Which states each action may move a step out of.
CANCELLABLE = ("pending", "waiting")
SKIPPABLE = ("pending", "waiting")
RETRYABLE = ("failed", "uncertain", "skipped")
BUSY = ("claimed", "sending")

REASONS = {
    "cancelled": "cancelled from the command line",
    "skipped": "skipped from the command line",
    "retried": "retry requested from the command line; due now",
}


@dataclass(frozen=True, slots=True)
class QueuedStep:
    id: int
    order_id: int
    order_number: str
    recipient: str
    sequence: str
    step: str
    kind: str
    state: str
    due_at: datetime | None  # None: waits for delivery
    attempts: int


@dataclass
class Change:
    """What an action did: how many steps changed, and why the others were left alone."""

    changed: int = 0
    left: Counter[str] = field(default_factory=Counter)  # state -> steps not touched
    found: int = 0

    @property
    def busy(self) -> int:
        return sum(self.left[s] for s in BUSY)


def _joined() -> Any:
    return select(
        steps.c.id,
        steps.c.store_id,
        steps.c.order_id,
        steps.c.sequence,
        steps.c.step,
        steps.c.kind,
        steps.c.state,
        steps.c.due_at,
        steps.c.attempts,
        enrollments.c.order_number,
        enrollments.c.email,
    ).join(enrollments, enrollments.c.id == steps.c.enrollment_id)


def list_queue(
    engine: Engine, *, order: int | None = None, limit: int | None = None
) -> list[QueuedStep]:
    """Open steps by due time; steps waiting for delivery (no due time yet) come last."""
    query = _joined().where(steps.c.state.in_(LISTED_STATES))
    if order is not None:
        query = query.where(steps.c.order_id == order)
    query = query.order_by(steps.c.due_at.is_(None), steps.c.due_at, steps.c.id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        QueuedStep(
            r.id,
            r.order_id,
            r.order_number,
            r.email,
            r.sequence,
            r.step,
            r.kind,
            r.state,
            r.due_at,
            r.attempts,
        )
        for r in rows
    ]


def cancel(
    engine: Engine, now: datetime, *, step: int | None = None, order: int | None = None
) -> Change:
    return _move(engine, now, CANCELLABLE, "cancelled", "cancelled", step=step, order=order)


def skip(
    engine: Engine, now: datetime, *, step: int | None = None, order: int | None = None
) -> Change:
    return _move(engine, now, SKIPPABLE, "skipped", "skipped", step=step, order=order)


def retry(
    engine: Engine, now: datetime, *, step: int | None = None, order: int | None = None
) -> Change:
    """Back to ``pending``, due now, with a fresh attempt budget; the daemon re-checks the
    order (and its send window) before sending, as for any step."""
    return _move(engine, now, RETRYABLE, "pending", "retried", step=step, order=order)


def step_state(engine: Engine, step: int) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(select(steps.c.state).where(steps.c.id == step)).scalar()
    return str(value) if value is not None else None


def uncertain_steps(engine: Engine, *, step: int | None, order: int | None) -> int:
    """How many of the chosen steps may already have reached the customer."""
    where = steps.c.id == step if step is not None else steps.c.order_id == order
    with engine.connect() as conn:
        rows = conn.execute(select(steps.c.id).where(where, steps.c.state == "uncertain")).all()
    return len(rows)


def _move(
    engine: Engine,
    now: datetime,
    allowed: tuple[str, ...],
    new_state: str,
    logged_as: str,
    *,
    step: int | None,
    order: int | None,
) -> Change:
    if (step is None) == (order is None):
        raise ValueError("give exactly one of a step id or an order id")
    where = steps.c.id == step if step is not None else steps.c.order_id == order
    result = Change()
    with engine.begin() as conn:
        rows = conn.execute(_joined().where(where).order_by(steps.c.id)).all()
        result.found = len(rows)
        for row in rows:
            if row.state in allowed and _update(conn, row, allowed, new_state, now):
                _log(conn, row, logged_as, now)
                result.changed += 1
            else:
                result.left[row.state] += 1
    return result


def _update(
    conn: Connection, row: Any, allowed: tuple[str, ...], state: str, now: datetime
) -> bool:
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state == "pending":
        values.update(due_at=now, attempts=0)
    changed = conn.execute(
        update(steps).where(and_(steps.c.id == row.id, steps.c.state.in_(allowed))).values(**values)
    ).rowcount
    return bool(changed)


def _log(conn: Connection, row: Any, status: str, now: datetime) -> None:
    conn.execute(
        insert(messages).values(
            at=now,
            step_id=row.id,
            store_id=row.store_id,
            order_id=row.order_id,
            order_number=row.order_number,
            recipient=row.email,
            sequence=row.sequence,
            step=row.step,
            status=status,
            reason=REASONS[status],
        )
    )


def queued_record(item: QueuedStep, tz: Any) -> dict[str, Any]:
    return {
        "step_id": item.id,
        "order_id": item.order_id,
        "order_number": item.order_number,
        "recipient": item.recipient,
        "sequence": item.sequence,
        "step": item.step,
        "kind": item.kind,
        "state": item.state,
        "due_at": item.due_at.astimezone(tz).isoformat() if item.due_at else None,
        "attempts": item.attempts,
    }


def print_queue(items: list[QueuedStep], tz: Any, console: Any) -> None:
    from rich.table import Table

    from wcfollowup.tools.log_view import shown

    table = Table(title=f"what goes out next ({len(items)} steps, times in {tz})", expand=False)
    for column in ("step id", "due", "order", "recipient", "sequence", "step", "kind", "state"):
        table.add_column(column, overflow="fold")
    for item in items:
        due = (
            item.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            if item.due_at is not None
            else "waits for delivery"
        )
        state = "being sent" if item.state == "claimed" else item.state
        table.add_row(
            str(item.id),
            due,
            f"#{shown(item.order_number)}",
            shown(item.recipient),
            shown(item.sequence),
            shown(item.step),
            shown(item.kind),
            shown(state),
        )
    console.print(table)


def describe_change(change: Change, done: str) -> str:
    """ "2 step(s) cancelled; 1 left alone (1 being sent right now)" for the owner."""
    if change.found == 0:
        return "no such step or order in the queue; nothing changed"
    text = f"{change.changed} step(s) {done}"
    if change.left:
        states = ", ".join(
            f"{count} {'being sent right now' if state in BUSY else state}"
            for state, count in sorted(change.left.items())
        )
        text += f"; {sum(change.left.values())} left alone ({states})"
    return text
