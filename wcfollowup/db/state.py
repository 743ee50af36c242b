"""The SQL adapter: every read and write of durable state goes through ``StateStore``.

Each method is one transaction, so the engine never holds a transaction open across a network
call. On SQLite a single daemon is the only writer; WAL lets ``wcfollowup log`` read meanwhile.

Claims are fenced. Each ``StateStore`` (one per daemon run) has a random owner token; a claim
writes it into ``steps.claimed_by``, and every later write of the step by the dispatcher
(``mark_sending``, ``release``, ``finish``) names it in its ``WHERE`` and says whether it
matched. A daemon whose lock was lost while it worked can therefore not send, hand back or
finish a step that a new daemon's recovery has taken away from it: it learns so and lets go.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from wcfollowup.common.redact import redact
from wcfollowup.core.planning import Enrollment
from wcfollowup.db.lock import KEEPALIVES, DaemonLock
from wcfollowup.db.migrate import upgrade
from wcfollowup.db.once import refill_once_customers
from wcfollowup.db.privacy import suppression_keys
from wcfollowup.db.schema import (
    coupons,
    enrollments,
    messages,
    once_customers,
    once_sequences,
    steps,
    stores,
    unsubscribes,
)

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

# Step states in which the step will still act on its own.
OPEN_STATES = ("waiting", "pending", "claimed")
FINAL_STATES = ("sent", "failed", "skipped", "cancelled", "uncertain")
# The states in which a step belongs to the daemon run that claimed it.
HELD_STATES = ("claimed", "sending")

# WooCommerce ids are unsigned 64-bit; the database columns are signed 64-bit.
LARGEST_STORED_ID = 2**63 - 1
# The advisory lock class that serialises frequency-cap decisions on PostgreSQL.
CAP_LOCK_CLASS = 0x77636663  # "wcfc"


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
class CapHold:
    """A message's recipient and cap key, with its step's frequency cap (``max`` sent since
    ``since``) if it has one, to decide at the moment the step turns ``sending``.

    Every customer message counts against the caps of others sharing its key, capped or not,
    so every one is marked in flight with its key (``max`` None: nothing to decide).
    """

    recipient: str
    key: str
    max: int | None = None
    since: datetime | None = None

    def holder(self) -> str:
        """What an in-flight step keeps in ``steps.sending_cap``: a hash, not the address."""
        raw = f"{self.recipient.strip().lower()}\n{self.key}".encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Clearance:
    """``mark_sending``'s answer: ``ours`` is False when the step is no longer this daemon's
    (taken over, or cancelled); ``capped`` counts the messages sent or in flight when the cap
    is already full (then the step stays claimed, for the caller to skip)."""

    ours: bool
    capped: int | None = None

    @property
    def go(self) -> bool:
        return self.ours and self.capped is None


class DatabaseUnavailable(Exception):
    """The database refused a write or a read (locked, full, gone); nothing was half-done."""


def database_problem(exc: BaseException) -> str:
    """What an owner can do about a database error, without SQL or parameters (they can hold
    email addresses)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "locked" in text or "busy" in text:
        return (
            "the database is locked by another program (a backup, an editor, a second "
            "wcfollowup?); retrying until it is released"
        )
    if "full" in text or "no space" in text:
        return (
            "the disk holding the database is full; free some space, wcfollowup retries on its own"
        )
    if "readonly" in text or "read-only" in text:
        return "the database is read-only; check its file permissions and the disk's mount"
    return f"the database could not be used ({type(exc).__name__}); retrying"


@dataclass(frozen=True, slots=True)
class StoreState:
    id: int
    url: str
    baseline_gmt: datetime
    cursor_gmt: datetime


@dataclass(frozen=True, slots=True)
class ClaimedStep:
    id: int
    store_id: int
    order_id: int
    order_number: str
    sequence: str
    step: str
    kind: str
    due_at: datetime
    attempts: int
    email: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryStep:
    """A step that counts from delivery and has not acted yet."""

    id: int
    sequence: str
    step: str
    delay_seconds: int


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    at: datetime
    order_id: int
    order_number: str
    recipient: str
    sequence: str
    step: str
    status: str
    provider_message_id: str | None
    reason: str

    @classmethod
    def from_row(cls, r: Any) -> MessageRow:
        """From a ``messages`` row read with ``.mappings()``."""
        return cls(
            r["id"],
            r["at"],
            r["order_id"],
            r["order_number"],
            r["recipient"],
            r["sequence"],
            r["step"],
            r["status"],
            r["provider_message_id"],
            r["reason"],
        )


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


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


# Pieces of SQLite time text, for _sqlite_value: "HH:MM:" for each minute of a day, "SS.000000"
# for each second, and "YYYY-MM-DD " for each day met so far (a backlog spans a few hundred).
_MINUTE_TEXT = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_SECOND_TEXT = [f"{s:02d}.000000" for s in range(60)]
_DAY_TEXT: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_FAST_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)  # a float timestamp still counts whole seconds


def _sqlite_value(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage format, so its reads parse what we wrote.

    This runs twice for every order a backlog enrols, on the poll thread, so it is built from
    cached pieces: half the cost of ``isoformat`` on an aware datetime.
    """
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if not _EPOCH <= value < _FAST_UNTIL:
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    day, second_of_day = divmod(int(value.timestamp()), 86_400)
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        prefix = _DAY_TEXT[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + " "
    minute, second = divmod(second_of_day, 60)
    if value.microsecond:
        return f"{prefix}{_MINUTE_TEXT[minute]}{second:02d}.{value.microsecond:06d}"
    return prefix + _MINUTE_TEXT[minute] + _SECOND_TEXT[second]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")  # erased personal data is overwritten on disk
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Keepalives: a connection to a server that vanished fails in about a minute, not hours.
    return create_engine(url, pool_pre_ping=True, connect_args=dict(KEEPALIVES))


class StateStore:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._lock = DaemonLock(self.engine)
        # This run's owner token for its claims: random, so no other run can ever match it.
        self.owner = secrets.token_hex(16)
        # Frequency-cap decisions take turns (see ``mark_sending``).
        self._cap_turn = threading.Lock()
        if migrate:
            upgrade(self.engine)

    def lock(self) -> None:
        """Take the one-daemon-per-database lock; raises ``AlreadyRunning``."""
        self._lock.acquire()

    def verify_lock(self) -> None:
        """Raise ``LockLost`` when this daemon no longer holds its lock."""
        self._lock.verify()

    def close(self) -> None:
        self._lock.release()
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction; for the small books (coupons, surveys) that share this database."""
        with self.engine.begin() as conn:
            yield conn

    def step_row(self, conn: Connection, step_id: int) -> Any | None:
        """A step with its order number and email, as log lines need it."""
        rows = self._step_rows(conn, steps.c.id == step_id)
        return rows[0] if rows else None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- stores and the poll cursor -------------------------------------------------------

    def store_state(self, url: str) -> StoreState | None:
        with self._tx() as conn:
            row = conn.execute(select(stores).where(stores.c.url == url)).mappings().first()
        if row is None:
            return None
        return StoreState(row["id"], row["url"], row["baseline_gmt"], row["cursor_gmt"])

    def create_store(self, url: str, baseline: datetime, now: datetime) -> StoreState:
        with self._tx() as conn:
            store_id = conn.execute(
                insert(stores).values(
                    url=url, baseline_gmt=baseline, cursor_gmt=baseline, created_at=now
                )
            ).inserted_primary_key
        assert store_id is not None
        return StoreState(int(store_id[0]), url, baseline, baseline)

    def advance_cursor(self, store_id: int, cursor: datetime, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                update(stores)
                .where(stores.c.id == store_id)
                .values(cursor_gmt=cursor, last_poll_at=now)
            )

    # -- enrolment ------------------------------------------------------------------------

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

    @contextmanager
    def backlog_writer(self) -> Iterator[BacklogWriter]:
        """A poll's enrolment writes, on one connection that skips key checks (see below)."""
        writer = BacklogWriter(self)
        try:
            yield writer
        finally:
            writer.close()

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

    def cancel_open_steps(self, store_id: int, order_id: int, reason: str, now: datetime) -> int:
        """Cancel what is still waiting for an order, logging each cancellation."""
        with self._tx() as conn:
            rows = self._step_rows(
                conn,
                and_(
                    steps.c.store_id == store_id,
                    steps.c.order_id == order_id,
                    steps.c.state.in_(OPEN_STATES),
                ),
            )
            cancelled = 0
            for row in rows:
                cancelled += self._finish(
                    conn,
                    row,
                    "cancelled",
                    now,
                    recipient=None,
                    message_id=None,
                    reason=reason,
                    fence=steps.c.state.in_(OPEN_STATES),
                )
            return cancelled

    # -- unsubscribes ---------------------------------------------------------------------

    def unsubscribe(self, email: str, source: str, now: datetime) -> int:
        """Record an unsubscribe and cancel everything still waiting for that address."""
        address = email.strip().lower()
        with self._tx() as conn:
            known = conn.execute(
                select(unsubscribes.c.email).where(
                    unsubscribes.c.email.in_(suppression_keys(address))
                )
            ).first()
            if known is None:
                conn.execute(insert(unsubscribes).values(email=address, at=now, source=source))
            rows = self._step_rows(
                conn,
                and_(enrollments.c.customer_key == address, steps.c.state.in_(OPEN_STATES)),
            )
            cancelled = 0
            for row in rows:
                cancelled += self._finish(
                    conn,
                    row,
                    "cancelled",
                    now,
                    recipient=None,
                    message_id=None,
                    reason="the recipient unsubscribed",
                    fence=steps.c.state.in_(OPEN_STATES),
                )
            return cancelled

    def is_unsubscribed(self, email: str) -> bool:
        with self._tx() as conn:
            # A forgotten customer is kept only as a hash of the address: match either.
            row = conn.execute(
                select(unsubscribes.c.email).where(
                    unsubscribes.c.email.in_(suppression_keys(email))
                )
            ).first()
        return row is not None

    def sent_count(self, recipient: str, cap_key: str, since: datetime | None) -> int:
        """Messages sent to this address under this cap key (since a time, or ever)."""
        with self._tx() as conn:
            return self._sent_count(conn, recipient, cap_key, since)

    @staticmethod
    def _sent_count(conn: Connection, recipient: str, cap_key: str, since: datetime | None) -> int:
        query = (
            select(func.count())
            .select_from(messages)
            .where(
                func.lower(messages.c.recipient) == recipient.strip().lower(),
                messages.c.cap_key == cap_key,
                messages.c.status == "sent",
            )
        )
        if since is not None:
            query = query.where(messages.c.at >= since)
        return int(conn.execute(query).scalar() or 0)

    # -- dispatch -------------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedStep]:
        """Mark due pending steps ``claimed`` by this run: ours to act on, nothing sent yet.

        First makes sure this daemon still holds its lock (``LockLost`` otherwise): a daemon
        that lost it must not take on anything new.
        """
        self._lock.verify()
        with self._tx() as conn:
            rows = self._step_rows(
                conn,
                and_(steps.c.state == "pending", steps.c.due_at <= now),
                limit=limit,
                skip_locked=self.dialect == "postgresql",
            )
            if rows:
                ids = [r.id for r in rows]
                claimed = conn.execute(
                    update(steps)
                    .where(steps.c.id.in_(ids), steps.c.state == "pending")
                    .values(
                        state="claimed",
                        claimed_by=self.owner,
                        attempts=steps.c.attempts + 1,
                        updated_at=now,
                    )
                ).rowcount
                if claimed != len(rows):  # something else moved one meanwhile (SQLite)
                    ours = set(
                        conn.execute(
                            select(steps.c.id).where(steps.c.id.in_(ids), self._held(("claimed",)))
                        ).scalars()
                    )
                    rows = [r for r in rows if r.id in ours]
        return [
            ClaimedStep(
                r.id,
                r.store_id,
                r.order_id,
                r.order_number,
                r.sequence,
                r.step,
                r.kind,
                r.due_at,
                r.attempts + 1,
                r.email,
            )
            for r in rows
        ]

    def next_due(self) -> datetime | None:
        """When the earliest pending step falls due (None when nothing is scheduled)."""
        with self._tx() as conn:
            value = conn.execute(
                select(func.min(steps.c.due_at)).where(steps.c.state == "pending")
            ).scalar()
        return value if isinstance(value, datetime) else None

    def _held(self, states: Sequence[str] = HELD_STATES) -> Any:
        """The fence: the step is in one of ``states`` and claimed by this run."""
        return and_(steps.c.claimed_by == self.owner, steps.c.state.in_(states))

    def mark_sending(self, step_id: int, now: datetime, *, cap: CapHold | None = None) -> Clearance:
        """The last write before the provider call: from here a crash means ``uncertain``.

        Only a step this run still holds as ``claimed`` moves on. With a frequency ``cap``, the
        count of messages sent *and in flight* (``sending``) to the recipient under the cap's
        key is taken in the same transaction, and these moves take turns (a thread lock; on
        PostgreSQL also a transaction advisory lock per recipient and key), so two workers
        sending to one customer at once cannot both find the cap free.
        """
        if cap is None:
            with self._tx() as conn:
                return Clearance(self._to_sending(conn, step_id, now, None))
        holder = cap.holder()
        with self._cap_turn, self._tx() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                    {"cls": CAP_LOCK_CLASS, "key": int(holder[:7], 16)},
                )
            if cap.max is None:
                return Clearance(self._to_sending(conn, step_id, now, holder))
            in_flight = conn.execute(
                select(func.count())
                .select_from(steps)
                .where(
                    steps.c.state == "sending",
                    steps.c.sending_cap == holder,
                    steps.c.id != step_id,
                )
            ).scalar()
            used = int(in_flight or 0) + self._sent_count(conn, cap.recipient, cap.key, cap.since)
            if used >= cap.max:
                ours = conn.execute(
                    select(steps.c.id).where(steps.c.id == step_id, self._held(("claimed",)))
                ).first()
                return Clearance(ours is not None, used)
            return Clearance(self._to_sending(conn, step_id, now, holder))

    def _to_sending(
        self, conn: Connection, step_id: int, now: datetime, holder: str | None
    ) -> bool:
        changed = conn.execute(
            update(steps)
            .where(steps.c.id == step_id, self._held(("claimed",)))
            .values(state="sending", sending_cap=holder, updated_at=now)
        ).rowcount
        return bool(changed)

    def release(self, step_id: int, now: datetime, due_at: datetime | None = None) -> bool:
        """Hand a step this run holds back (e.g. the store was unreachable); nothing was sent.

        False when it is no longer ours: then it is left as it is.
        """
        values: dict[str, Any] = {
            "state": "pending",
            "claimed_by": None,
            "sending_cap": None,
            "updated_at": now,
        }
        if due_at is not None:
            values["due_at"] = due_at
        with self._tx() as conn:
            changed = conn.execute(
                update(steps).where(steps.c.id == step_id, self._held()).values(**values)
            ).rowcount
        return bool(changed)

    def release_if_claimed(self, step_id: int, now: datetime, due_at: datetime) -> bool:
        """Hand back a step only if nothing was sent yet (still ``claimed``, by this run)."""
        with self._tx() as conn:
            changed = conn.execute(
                update(steps)
                .where(steps.c.id == step_id, self._held(("claimed",)))
                .values(state="pending", claimed_by=None, due_at=due_at, updated_at=now)
            ).rowcount
        return bool(changed)

    def finish(
        self,
        step: ClaimedStep,
        status: str,
        now: datetime,
        *,
        recipient: str | None,
        message_id: str | None = None,
        reason: str = "",
        cap_key: str | None = None,
        held: Sequence[str] = HELD_STATES,
    ) -> bool:
        """Record a step's outcome and its log line in one transaction.

        Only while this run holds the step (in one of the ``held`` states): False, and nothing
        written, when it was cancelled or taken over by another daemon's recovery meanwhile.
        """
        with self._tx() as conn:
            rows = self._step_rows(conn, steps.c.id == step.id)
            return bool(rows) and self._finish(
                conn,
                rows[0],
                status,
                now,
                recipient=recipient,
                message_id=message_id,
                reason=reason,
                cap_key=cap_key,
                fence=self._held(held),
            )

    def recover_interrupted(self, now: datetime) -> tuple[int, int]:
        """After a crash: claimed steps go back to pending; sending ones become ``uncertain``.

        Only claims of other daemon runs are touched, and their owners are gone: this run holds
        the database's lock, so every other run has lost it (it died, or its PostgreSQL session
        ended), and such a run can no longer move those steps on itself (its writes are fenced
        by ``claimed_by``, and it claims nothing once ``verify`` fails).

        A step left in ``sending`` may or may not have reached the provider. Sending it again
        could mail the customer twice, so it is logged for the owner instead. Coupon leases die
        with the daemon that took them: this one holds the database's lock, so nobody else is
        creating a coupon, and a dead holder's lease would only delay the retry by minutes (the
        code is already planned, so the store is asked for it before anything is created).
        """
        self._lock.verify()  # a daemon that lost its lock must not take the new owner's claims
        others = or_(steps.c.claimed_by.is_(None), steps.c.claimed_by != self.owner)
        with self._tx() as conn:
            conn.execute(
                update(coupons).where(coupons.c.lease_until.is_not(None)).values(lease_until=None)
            )
            released = conn.execute(
                update(steps)
                .where(steps.c.state == "claimed", others)
                .values(state="pending", claimed_by=None, updated_at=now)
            ).rowcount
            rows = self._step_rows(conn, and_(steps.c.state == "sending", others))
            uncertain = 0
            for row in rows:
                uncertain += self._finish(
                    conn,
                    row,
                    "uncertain",
                    now,
                    recipient=None,
                    message_id=None,
                    reason="the daemon stopped while this message was being sent; it may or may "
                    "not have gone out, so it will not be sent again automatically",
                    fence=steps.c.state == "sending",
                )
        return int(released), uncertain

    # -- reading the log ------------------------------------------------------------------

    def messages(
        self,
        *,
        order_id: int | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[MessageRow]:
        query = select(messages).order_by(messages.c.at, messages.c.id)
        if order_id is not None:
            query = query.where(messages.c.order_id == order_id)
        if status is not None:
            query = query.where(messages.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [MessageRow.from_row(r) for r in rows]

    def step_states(self) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(select(steps.c.state, func.count()).group_by(steps.c.state)).all()
        return {state: int(count) for state, count in rows}

    def due_count(self, now: datetime) -> int:
        """Pending steps already due: the dispatch queue's depth."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(steps)
                    .where(steps.c.state == "pending", steps.c.due_at <= now)
                ).scalar()
                or 0
            )

    # -- internals ------------------------------------------------------------------------

    # -- enrolment rows -------------------------------------------------------------------

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

    def _db_time(self, value: datetime) -> Any:
        """An aware datetime as the driver takes it for a ``UTCDateTime`` column."""
        return _sqlite_value(value) if self.dialect == "sqlite" else _naive_utc(value)

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

    @staticmethod
    def _step_rows(
        conn: Connection, where: Any, limit: int | None = None, skip_locked: bool = False
    ) -> Sequence[Any]:
        query = (
            select(
                steps.c.id,
                steps.c.store_id,
                steps.c.order_id,
                steps.c.sequence,
                steps.c.step,
                steps.c.kind,
                steps.c.due_at,
                steps.c.attempts,
                enrollments.c.order_number,
                enrollments.c.email,
            )
            .join(enrollments, enrollments.c.id == steps.c.enrollment_id)
            .where(where)
            .order_by(steps.c.due_at, steps.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        if skip_locked:
            query = query.with_for_update(of=steps, skip_locked=True)
        return conn.execute(query).all()

    @staticmethod
    def _finish(
        conn: Connection,
        row: Any,
        status: str,
        now: datetime,
        *,
        recipient: str | None,
        message_id: str | None,
        reason: str,
        fence: Any,
        cap_key: str | None = None,
    ) -> bool:
        """Move the step to ``status`` and log it, if it still matches ``fence``; else False.

        The fence is checked by the UPDATE itself, so a concurrent change (a claim turning into
        ``sending``, another daemon's recovery) can never be overwritten by a stale decision.
        """
        changed = conn.execute(
            update(steps)
            .where(steps.c.id == row.id, fence)
            .values(state=status, sending_cap=None, updated_at=now)
        ).rowcount
        if not changed:
            return False
        StateStore.log_line(
            conn,
            row,
            status,
            now,
            recipient=recipient,
            message_id=message_id,
            reason=reason,
            cap_key=cap_key,
        )
        return True

    @staticmethod
    def log_line(
        conn: Connection,
        row: Any,
        status: str,
        now: datetime,
        *,
        recipient: str | None = None,
        message_id: str | None = None,
        reason: str = "",
        cap_key: str | None = None,
        order_id: int | None = None,
        order_number: str | None = None,
    ) -> None:
        """A log line about a step; the order may be another one (a coupon's redemption)."""
        conn.execute(
            insert(messages).values(
                at=now,
                step_id=row.id,
                store_id=row.store_id,
                order_id=order_id if order_id is not None else row.order_id,
                order_number=order_number if order_number is not None else row.order_number,
                recipient=recipient if recipient is not None else row.email,
                sequence=row.sequence,
                step=row.step,
                status=status,
                provider_message_id=message_id,
                reason=redact(reason),  # an error may echo a request: no secret is stored
                cap_key=cap_key,
            )
        )


# SQLite checks each step's enrollment_id and store_id, and each enrolment's store_id, as it
# inserts them: about a tenth of the backlog's insert cost. The writer made those references
# itself (the store row, and the enrolments it inserted a moment before in the same
# transaction), so its own connection skips the checks for the poll; every other connection,
# and PostgreSQL, keeps them. (A larger page cache helped while enrollments had a customer
# index, filled in random order; since migration 0004 every index a backlog fills grows at its
# end, and the default 2 MB cache stores 100,000 enrolments as fast as 16 MB did.)
BACKLOG_PRAGMAS = ("foreign_keys=OFF",)
RESTORED_PRAGMAS = ("foreign_keys=ON",)


class BacklogWriter:
    """Enrolment batches of one poll, one transaction each, all on one connection.

    Used from a single thread (the poll's write-behind thread); opened on the first batch.
    """

    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._conn: Connection | None = None

    def enroll(self, prepared: PreparedEnrolments) -> list[Enrollment]:
        """Store prepared enrolments in one transaction, as ``StateStore.enroll_many`` does."""
        if not prepared.plans:
            return []
        conn = self._connection()
        with conn.begin():
            return self._state._enroll_in(conn, prepared)

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._state.engine.connect()
            self._pragmas(self._conn, *BACKLOG_PRAGMAS)
        return self._conn

    def _pragmas(self, conn: Connection, *pragmas: str) -> None:
        if self._state.dialect == "sqlite":
            for pragma in pragmas:
                conn.exec_driver_sql(f"PRAGMA {pragma}")
            conn.commit()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            self._pragmas(conn, *RESTORED_PRAGMAS)
        except SQLAlchemyError:  # the database went away: drop this connection
            conn.invalidate()
        finally:
            conn.close()
