"""Enrolment: an order's planned follow-ups become rows (``enrollments``, ``steps``).

Each order is enrolled in a sequence once, ever; a sequence marked once per customer is skipped
for a customer it already had (``once_customers``, kept in step with the configuration here).
Rows are built off the database (``prepare_enrolments``, on the poll's parsing thread) and
written in multi-row INSERTs, since a backlog of 100,000 orders is written through this path.
Delivery-anchored steps wait (``due_at`` NULL) until ``record_delivery`` gives them a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from wcfollowup.core.planning import Enrollment
from wcfollowup.db.connection import StateBase
from wcfollowup.db.once import refill_once_customers
from wcfollowup.db.schema import enrollments, once_customers, once_sequences, steps, stores

# Rows per multi-row INSERT: well under SQLite's 32,766 (since 3.32) and PostgreSQL's 65,535
# parameters. 2,500 rows read 0.08 better than 500 in alternating runs of a 50,000-order backlog
# but no better at 100,000: not worth statements five times the size.
BULK_ROWS = 500
SQLITE_MAX_PARAMETERS = 32_766

ENROLLMENT_COLUMNS = (
    "store_id",
    "order_id",
    "order_number",
    "sequence",
    "email",
    "customer_key",
    "anchor_at",
    "delivered_at",
    "enrolled_at",
)
STEP_COLUMNS = (
    "enrollment_id",
    "store_id",
    "order_id",
    "sequence",
    "step",
    "kind",
    "anchor",
    "delay_seconds",
    "due_at",
    "state",
    "attempts",
    "updated_at",
)

# WooCommerce ids are unsigned 64-bit; the database columns are signed 64-bit.
LARGEST_STORED_ID = 2**63 - 1


class UnstorableOrder(ValueError):
    """An order id no 64-bit column can hold (2^63 and up): skip that order, not its batch."""

    def __init__(self, order_id: int) -> None:
        super().__init__(
            f"order {order_id} has an id too large to store (over 2^63 - 1); it is skipped"
        )
        self.order_id = order_id


def check_storable(order_id: int) -> None:
    """Raise ``UnstorableOrder`` for an id the database cannot hold."""
    if not 0 <= order_id <= LARGEST_STORED_ID:
        raise UnstorableOrder(order_id)


@dataclass(frozen=True, slots=True)
class DeliveryStep:
    """A step that counts from delivery and has not acted yet."""

    id: int
    sequence: str
    step: str
    delay_seconds: int


@dataclass(slots=True)
class PreparedEnrolments:
    """Enrolments with their rows built (``StateStore.prepare_enrolments``), not yet stored.

    ``step_values`` leave each row's ``enrollment_id`` empty; ``step_owners`` says which plan
    each step row belongs to, so the ids can be filled in once the enrollments exist.
    """

    store_id: int
    plans: list[Enrollment]
    now: datetime
    enrollment_values: list[Any]
    step_values: list[Any]
    step_owners: list[int]

    def extend(self, other: PreparedEnrolments) -> None:
        """Append another page's enrolments (same store): one batch, one transaction."""
        offset = len(self.plans)
        self.plans.extend(other.plans)
        self.now = other.now
        self.enrollment_values.extend(other.enrollment_values)
        self.step_values.extend(other.step_values)
        self.step_owners.extend(owner + offset for owner in other.step_owners)


class Enrolments(StateBase):
    """``StateStore``'s part that stores enrolments and re-anchors them on delivery."""

    def enroll_many(
        self, store_id: int, plans: Sequence[Enrollment], now: datetime
    ) -> list[Enrollment]:
        """Store new enrolments and their steps in one transaction; return those stored.

        An order already enrolled in a sequence is left alone (once, ever); a sequence marked
        ``once_per_customer`` is skipped for a customer it already has.
        """
        if not plans:
            return []
        with self._tx() as conn:
            return self._enroll_in(conn, self.prepare_enrolments(store_id, plans, now))

    def _enroll_in(self, conn: Connection, prepared: PreparedEnrolments) -> list[Enrollment]:
        store_id, plans = prepared.store_id, prepared.plans
        if self.dialect == "postgresql":
            # Enrolments of one store take turns (the daemon and a `backfill` may both enrol):
            # the checks below and the rows they lead to must not interleave with another
            # transaction's. SQLite lets one writer in at a time anyway.
            conn.execute(select(stores.c.id).where(stores.c.id == store_id).with_for_update())
        order_ids = sorted({p.order.id for p in plans})
        marker = "?" if self.dialect == "sqlite" else "%s"
        # Plain SQL: SQLAlchemy's expanding IN cost more per page than the fetch itself.
        existing = {
            (r[0], r[1])
            for r in conn.exec_driver_sql(
                "SELECT order_id, sequence FROM enrollments WHERE store_id = "
                f"{marker} AND order_id IN ({', '.join([marker] * len(order_ids))})",
                (store_id, *order_ids),
            )
        }
        customers_done = self._customers_done(conn, store_id, plans)
        fresh: list[Enrollment] = []
        for plan in plans:
            key = (plan.order.id, plan.sequence)
            if key in existing:
                continue
            if plan.once_per_customer and plan.order.customer_key:
                customer = (plan.sequence, plan.order.customer_key)
                if customer in customers_done:
                    continue
                customers_done.add(customer)
            existing.add(key)
            fresh.append(plan)
        if not fresh:
            return []
        if len(fresh) < len(plans):  # some were stored before: rows for the rest only
            prepared = self.prepare_enrolments(store_id, fresh, prepared.now)
        self._insert_prepared(conn, prepared)
        once = [
            {"store_id": store_id, "sequence": p.sequence, "customer_key": p.order.customer_key}
            for p in fresh
            if p.once_per_customer and p.order.customer_key
        ]
        if once:
            conn.execute(insert(once_customers), once)
        return fresh

    def _customers_done(
        self, conn: Connection, store_id: int, plans: Sequence[Enrollment]
    ) -> set[tuple[str, str]]:
        """(sequence, customer) pairs of ``plans``' once-per-customer sequences already had.

        First brings ``once_customers`` up to date with the configuration: a sequence made
        "once per customer" since it was last seen is filled in from its enrolments, and one
        that no longer is stops being kept (and is filled in afresh if the rule comes back).
        """
        once = {p.sequence for p in plans if p.once_per_customer}
        not_once = {p.sequence for p in plans if not p.once_per_customer} - once
        kept = {
            r[0]
            for r in conn.execute(
                select(once_sequences.c.sequence).where(once_sequences.c.store_id == store_id)
            )
        }
        for name in sorted(once - kept):
            refill_once_customers(conn, store_id, name)
            conn.execute(insert(once_sequences).values(store_id=store_id, sequence=name))
        dropped = sorted(not_once & kept)
        if dropped:
            for table in (once_customers, once_sequences):
                conn.execute(
                    delete(table).where(table.c.store_id == store_id, table.c.sequence.in_(dropped))
                )
        wanted = {p.order.customer_key for p in plans if p.once_per_customer}
        wanted.discard("")
        if not wanted:
            return set()
        return {
            (r[0], r[1])
            for r in conn.execute(
                select(once_customers.c.sequence, once_customers.c.customer_key).where(
                    once_customers.c.store_id == store_id,
                    once_customers.c.sequence.in_(once),
                    once_customers.c.customer_key.in_(wanted),
                )
            )
        }

    def delivery_steps(self, store_id: int, order_id: int) -> list[DeliveryStep]:
        """Delivery-anchored steps of an order that may still be re-anchored."""
        with self._tx() as conn:
            rows = conn.execute(
                select(steps.c.id, steps.c.sequence, steps.c.step, steps.c.delay_seconds).where(
                    steps.c.store_id == store_id,
                    steps.c.order_id == order_id,
                    steps.c.anchor == "delivered",
                    steps.c.state.in_(("waiting", "pending")),
                )
            ).all()
        return [DeliveryStep(r[0], r[1], r[2], r[3]) for r in rows]

    def record_delivery(
        self,
        store_id: int,
        order_id: int,
        delivered_at: datetime,
        due: dict[int, datetime],
        now: datetime,
    ) -> int:
        """Note the delivery once and move the given delivery-anchored steps to their new times."""
        with self._tx() as conn:
            changed = conn.execute(
                update(enrollments)
                .where(
                    enrollments.c.store_id == store_id,
                    enrollments.c.order_id == order_id,
                    enrollments.c.delivered_at.is_(None),
                )
                .values(delivered_at=delivered_at)
            ).rowcount
            if not changed:
                return 0
            for step_id, due_at in due.items():
                conn.execute(
                    update(steps)
                    .where(steps.c.id == step_id, steps.c.state.in_(("waiting", "pending")))
                    .values(due_at=due_at, state="pending", updated_at=now)
                )
        return len(due)

    # -- the rows: built off the database, written in bulk -------------------------------

    def prepare_enrolments(
        self, store_id: int, plans: Sequence[Enrollment], now: datetime
    ) -> PreparedEnrolments:
        """The rows ``plans`` would add, laid end to end as the driver takes them.

        Pure (no I/O), so the poll builds them on its parsing thread, page by page, while the
        fetch thread waits for the store; the writer thread then only checks and executes.
        SQLAlchemy's per-row parameter processing cost more than fetching the same page from
        the store, so the values go straight to the driver, times converted once.
        """
        to_db = self._db_time
        now_db = to_db(now)
        enrollment_values: list[Any] = []
        step_values: list[Any] = []
        step_owners: list[int] = []
        add_enrollment, add_step = enrollment_values.extend, step_values.extend
        for index, plan in enumerate(plans):
            order = plan.order
            if order.id > LARGEST_STORED_ID or order.id < 0:
                raise UnstorableOrder(order.id)
            delivered = plan.delivered_at
            add_enrollment(
                (
                    store_id,
                    order.id,
                    order.number,
                    plan.sequence,
                    order.email,
                    order.customer_key,
                    to_db(plan.anchor_at),
                    None if delivered is None else to_db(delivered),
                    now_db,
                )
            )
            for planned in plan.steps:
                due = planned.due_at
                add_step(
                    (
                        None,  # the enrollment's id, known once it is inserted
                        store_id,
                        order.id,
                        plan.sequence,
                        planned.step,
                        planned.kind,
                        planned.anchor,
                        int(planned.delay.total_seconds()),
                        None if due is None else to_db(due),
                        planned.state,
                        0,
                        now_db,
                    )
                )
                step_owners.append(index)
        return PreparedEnrolments(
            store_id, list(plans), now, enrollment_values, step_values, step_owners
        )

    def _insert_prepared(self, conn: Connection, prepared: PreparedEnrolments) -> None:
        ids = self._insert_chunks(
            conn, "enrollments", ENROLLMENT_COLUMNS, prepared.enrollment_values
        )
        width = len(STEP_COLUMNS)
        values = prepared.step_values
        for row, owner in enumerate(prepared.step_owners):
            values[row * width] = ids[owner]
        self._insert_chunks(conn, "steps", STEP_COLUMNS, values)

    def _insert_chunks(
        self, conn: Connection, table: str, columns: Sequence[str], values: list[Any]
    ) -> list[int]:
        """``values`` (rows laid end to end) in INSERTs of ``BULK_ROWS`` rows; the new ids."""
        chunk = BULK_ROWS * len(columns)
        ids: list[int] = []
        for start in range(0, len(values), chunk):
            ids.extend(self._insert_rows(conn, table, columns, values[start : start + chunk]))
        return ids

    def _insert_rows(
        self, conn: Connection, table: str, columns: Sequence[str], flat: list[Any]
    ) -> list[int]:
        """One multi-row INSERT of ``flat`` (rows laid end to end); the new ids in row order.

        One statement per chunk also matters for the poll's fetch thread: sqlite3 releases the
        interpreter lock once per statement step, and every re-acquisition can cost it a
        switch interval.
        """
        count = len(flat) // len(columns)
        marker = "?" if self.dialect == "sqlite" else "%s"
        row_marks = f"({', '.join([marker] * len(columns))})"
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row_marks] * count)
        if self.dialect == "sqlite":
            # Rows of one statement get consecutive rowids, in order, inside our write
            # transaction (the daemon lock keeps other writers out).
            last = conn.exec_driver_sql(sql, tuple(flat)).lastrowid
            return list(range(last - count + 1, last + 1))
        result = conn.exec_driver_sql(sql + " RETURNING id", tuple(flat))
        return [int(r[0]) for r in result]
