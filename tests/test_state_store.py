"""The SQL adapter against both backends: SQLite (the default) and PostgreSQL (scale-out).

PostgreSQL runs on 127.0.0.1:5432 (trust auth, database ``test``) on the development machines
and in CI; each test gets its own schema so runs never see each other's rows.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.planning import Enrollment, PlannedStep
from wcfollowup.db.lock import AlreadyRunning
from wcfollowup.db.schema import metadata
from wcfollowup.db.state import StateStore

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    yield from postgres_schema_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from postgres_schema_url()


def postgres_schema_url() -> Iterator[str]:
    """A fresh schema of its own for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def enrollment(
    order_id: int, sequence: str = "thank-you", email: str = "a@b.test", once: bool = False
) -> Enrollment:
    order = OrderSnapshot(order_id, str(order_id), "completed", NOW, NOW, email)
    step = PlannedStep("thank-you", "email", "completed", timedelta(0), NOW, "pending")
    return Enrollment(order, sequence, NOW, None, once, (step,))


def test_migrations_build_exactly_the_declared_schema(store_url: str) -> None:
    state = StateStore(store_url)
    with state.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    state.close()
    assert diff == []


def test_enrolment_is_once_per_order_and_sequence(store_url: str) -> None:
    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    first = state.enroll_many(shop.id, [enrollment(1), enrollment(2)], NOW)
    again = state.enroll_many(shop.id, [enrollment(1), enrollment(2), enrollment(3)], NOW)
    assert [p.order.id for p in first] == [1, 2]
    assert [p.order.id for p in again] == [3]
    assert len(state.claim_due(NOW, 100)) == 3
    state.close()


def test_once_per_customer_skips_a_second_order_of_the_same_customer(store_url: str) -> None:
    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    stored = state.enroll_many(
        shop.id,
        [
            enrollment(1, "welcome", "Siti@X.test", once=True),
            enrollment(2, "welcome", "siti@x.test", once=True),
            enrollment(3, "welcome", "budi@x.test", once=True),
        ],
        NOW,
    )
    assert [p.order.id for p in stored] == [1, 3]
    later = state.enroll_many(shop.id, [enrollment(4, "welcome", "SITI@x.test", once=True)], NOW)
    assert later == []
    # Once per customer is per store and per sequence: Siti is new to both of these.
    other_shop = state.create_store("http://other-shop.test", NOW, NOW)
    elsewhere = state.enroll_many(
        other_shop.id, [enrollment(5, "welcome", "siti@x.test", once=True)], NOW
    )
    other_sequence = state.enroll_many(
        shop.id, [enrollment(6, "win-back", "siti@x.test", once=True)], NOW
    )
    assert [p.order.id for p in elsewhere + other_sequence] == [5, 6]
    state.close()


def test_unsubscribe_cancels_pending_steps_and_is_remembered(store_url: str) -> None:
    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    state.enroll_many(shop.id, [enrollment(1, email="Siti@X.test"), enrollment(2)], NOW)
    assert state.unsubscribe("siti@x.TEST", "test", NOW) == 1
    assert state.is_unsubscribed("SITI@x.test")
    [entry] = state.messages()
    assert (entry.order_id, entry.status, entry.reason) == (
        1,
        "cancelled",
        "the recipient unsubscribed",
    )
    assert [s.order_id for s in state.claim_due(NOW, 10)] == [2]
    state.close()


def test_a_second_daemon_on_the_same_database_is_refused(store_url: str) -> None:
    first = StateStore(store_url)
    first.lock()
    second = StateStore(store_url)
    with pytest.raises(AlreadyRunning, match="already running"):
        second.lock()
    second.close()
    first.close()
    third = StateStore(store_url)
    third.lock()  # released with the first one
    third.close()


def test_the_head_constant_matches_the_newest_migration() -> None:
    """``migrate.HEAD`` lets a current database skip importing Alembic; it must not go stale."""
    from alembic.script import ScriptDirectory

    from wcfollowup.db.migrate import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


def test_once_per_customer_counts_enrolments_made_before_the_rule_was_turned_on(
    store_url: str,
) -> None:
    """The rule's memory of customers is filled from the enrolments whenever it (re)starts."""
    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)

    def enrol(order_id: int, email: str, once: bool) -> list[int]:
        stored = state.enroll_many(shop.id, [enrollment(order_id, "welcome", email, once)], NOW)
        return [p.order.id for p in stored]

    assert enrol(1, "siti@x.test", once=False) == [1]
    assert enrol(2, "siti@x.test", once=True) == []  # Siti had it before the rule
    assert enrol(3, "budi@x.test", once=True) == [3]
    assert enrol(4, "budi@x.test", once=False) == [4]  # the rule is off again
    assert enrol(5, "ani@x.test", once=False) == [5]
    assert enrol(6, "ani@x.test", once=True) == []  # Ani enrolled while it was off
    assert enrol(7, "dewi@x.test", once=True) == [7]
    assert enrol(8, "dewi@x.test", once=True) == []
    state.close()


def test_erasing_a_customer_erases_the_once_per_customer_memory_of_them(store_url: str) -> None:
    from wcfollowup.db import privacy
    from wcfollowup.db.schema import once_customers

    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    for order_id, email in ((1, "siti@x.test"), (2, "budi@x.test")):
        state.enroll_many(shop.id, [enrollment(order_id, "welcome", email, once=True)], NOW)
    privacy.forget(state.engine, "Siti@X.test", NOW)
    with state.engine.connect() as conn:
        kept = [r.customer_key for r in conn.execute(select(once_customers))]
    assert kept == ["budi@x.test"]
    state.close()


def test_backlog_writer_enrols_once_across_its_batches(store_url: str) -> None:
    """The poll's writer keeps the once-per-order and once-per-customer rules of enroll_many."""
    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    with state.backlog_writer() as writer:
        first = writer.enroll(
            state.prepare_enrolments(
                shop.id, [enrollment(1), enrollment(2, "welcome", "Siti@X.test", once=True)], NOW
            )
        )
        # Built page by page, as the poll does; order 1 and Siti's "welcome" are stored already.
        batch = state.prepare_enrolments(shop.id, [enrollment(1), enrollment(3)], NOW)
        batch.extend(
            state.prepare_enrolments(
                shop.id, [enrollment(4, "welcome", "siti@x.test", once=True), enrollment(5)], NOW
            )
        )
        again = writer.enroll(batch)
    assert [p.order.id for p in first] == [1, 2]
    assert [p.order.id for p in again] == [3, 5]
    claimed = state.claim_due(NOW, 100)
    assert sorted(s.order_id for s in claimed) == [1, 2, 3, 5]
    # Each step row points at its own order's enrolment.
    assert all(s.order_number == str(s.order_id) for s in claimed)
    state.close()


def test_backlog_writer_gives_its_key_checks_back(tmp_path: Path) -> None:
    """Skipping foreign-key checks lasts for the poll only: an idle daemon's connections check
    every reference again."""
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    shop = state.create_store("http://shop.test", NOW, NOW)
    with state.backlog_writer() as writer:
        writer.enroll(state.prepare_enrolments(shop.id, [enrollment(1)], NOW))
        conn = writer._connection()  # the one connection all of a poll's batches use
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        assert dbapi.execute("PRAGMA foreign_keys").fetchone()[0] == 0
    assert dbapi.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # The pooled connection checks references again.
    with pytest.raises(IntegrityError), state.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO steps (enrollment_id, store_id, order_id, sequence, step, kind,"
            " anchor, delay_seconds, state, attempts, updated_at)"
            " VALUES (999, 1, 1, 's', 's', 'email', 'completed', 0, 'pending', 0, '2026')"
        )
    state.close()


def test_a_bulk_insert_stays_within_sqlites_parameter_limit() -> None:
    from wcfollowup.db.state import (
        BULK_ROWS,
        ENROLLMENT_COLUMNS,
        SQLITE_MAX_PARAMETERS,
        STEP_COLUMNS,
    )

    assert BULK_ROWS * max(len(ENROLLMENT_COLUMNS), len(STEP_COLUMNS)) <= SQLITE_MAX_PARAMETERS


def test_enrolment_times_round_trip_with_and_without_microseconds(store_url: str) -> None:
    """Times come back exactly as planned, past one INSERT's worth of rows (BULK_ROWS), and on
    SQLite they are stored as the very text SQLAlchemy writes, so SQL comparisons agree."""
    from wcfollowup.db.state import BULK_ROWS

    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)  # written through SQLAlchemy
    plans = []
    for order_id in range(1, BULK_ROWS + 3):
        due = NOW + timedelta(seconds=order_id, microseconds=7 if order_id % 2 else 0)
        order = OrderSnapshot(order_id, str(order_id), "completed", NOW, NOW, "a@b.test")
        step = PlannedStep("thank-you", "email", "completed", timedelta(0), due, "pending")
        plans.append(Enrollment(order, "thank-you", NOW, None, False, (step,)))
    assert len(state.enroll_many(shop.id, plans, NOW)) == len(plans)
    last_due = plans[-1].steps[0].due_at
    assert last_due is not None
    claimed = state.claim_due(last_due, 10_000)
    assert {(s.order_id, s.due_at) for s in claimed} == {
        (p.order.id, p.steps[0].due_at) for p in plans
    }
    if state.dialect == "sqlite":
        with state.engine.connect() as conn:
            ours = conn.exec_driver_sql("SELECT DISTINCT enrolled_at FROM enrollments").all()
            theirs = conn.exec_driver_sql("SELECT created_at FROM stores").all()
        assert ours == theirs == [("2026-11-22 03:00:00.000000",)]
    state.close()


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2300, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=7)), timezone(-timedelta(hours=5))]
        ),
    )
)
def test_sqlite_time_text_is_what_sqlalchemy_writes_for_any_time(value: datetime) -> None:
    """The cached-pieces time text agrees with SQLAlchemy's own format everywhere."""
    from wcfollowup.db.state import _sqlite_value

    expected = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert _sqlite_value(value) == expected


def test_a_purge_larger_than_a_statement_can_carry_and_its_once_memory(store_url: str) -> None:
    """PostgreSQL takes at most 65,535 parameters in a statement: a first purge of a big store
    erases more enrolments than that, and must also empty their once-per-customer memory."""
    from wcfollowup.db import privacy
    from wcfollowup.db.schema import once_customers, once_sequences

    count = 70_000
    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    numbers = (
        f"generate_series(1, {count}) AS g(x)"
        if state.dialect == "postgresql"
        else f"(WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {count})"
        " SELECT x FROM g)"
    )
    with state.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO enrollments (store_id, order_id, order_number, sequence, email,"
                " customer_key, anchor_at, enrolled_at)"
                f" SELECT {shop.id}, x, 'n', 'welcome', 'c' || x || '@x.test',"
                f" 'c' || x || '@x.test', :at, :at FROM {numbers}"
            ),
            {"at": datetime(2024, 1, 1)},
        )
        conn.execute(
            text(
                "INSERT INTO once_customers (store_id, sequence, customer_key)"
                " SELECT store_id, sequence, customer_key FROM enrollments"
            )
        )
        conn.execute(once_sequences.insert().values(store_id=shop.id, sequence="welcome"))
    purged = privacy.purge_older_than(state.engine, datetime(2025, 1, 1, tzinfo=UTC), NOW)
    assert purged.enrollments == count
    with state.engine.connect() as conn:
        assert conn.execute(select(once_customers)).first() is None
    state.close()


@pytest.mark.parametrize("warm", [False, True], ids=["first-use", "steady"])
def test_two_processes_enrolling_one_customer_at_once_keep_the_once_rule(
    pg_url: str, warm: bool
) -> None:
    """The daemon and a `backfill` may enrol at the same moment on PostgreSQL: the second
    waits for the first and then sees the customer it just enrolled (no IntegrityError)."""
    state = StateStore(pg_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    if warm:  # the sequence's memory of customers exists already
        state.enroll_many(shop.id, [enrollment(100, "welcome", "budi@x.test", once=True)], NOW)
    first = state.engine.connect()
    first_tx = first.begin()
    mine = state.prepare_enrolments(shop.id, [enrollment(1, "welcome", "siti@x.test", True)], NOW)
    assert len(state._enroll_in(first, mine)) == 1
    outcome: list[object] = []

    def enrol_the_same_customer() -> None:
        try:
            outcome.extend(
                state.enroll_many(shop.id, [enrollment(2, "welcome", "siti@x.test", True)], NOW)
            )
        except Exception as exc:  # reported below, with its type
            outcome.append(exc)

    other = threading.Thread(target=enrol_the_same_customer)
    other.start()
    with state.engine.connect() as watcher:  # until the other transaction waits for ours
        deadline = time.monotonic() + 10
        while not watcher.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar():
            assert time.monotonic() < deadline, "the second enrolment never waited"
            watcher.rollback()
    first_tx.commit()
    first.close()
    other.join(timeout=10)
    assert outcome == []  # the customer had it already: nothing enrolled, nothing raised
    state.close()


def test_a_purge_keeps_remembering_a_customer_a_newer_enrolment_still_names(
    store_url: str,
) -> None:
    """Enrolled twice (the rule was off once), the customer stays remembered when only the
    older enrolment is purged: the memory is rebuilt from the enrolments that remain."""
    from wcfollowup.db import privacy
    from wcfollowup.db.schema import once_customers

    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    state.enroll_many(shop.id, [enrollment(1, "welcome", "siti@x.test", once=False)], NOW)
    state.enroll_many(shop.id, [enrollment(2, "welcome", "siti@x.test", once=False)], NOW)
    state.enroll_many(shop.id, [enrollment(3, "welcome", "budi@x.test", once=True)], NOW)
    with state.engine.begin() as conn:  # orders 1 and 3 are two years old, with no steps
        conn.execute(text("DELETE FROM steps WHERE order_id IN (1, 3)"))
        conn.execute(
            text("UPDATE enrollments SET enrolled_at = :at WHERE order_id IN (1, 3)"),
            {"at": datetime(2024, 1, 1)},
        )
    purged = privacy.purge_older_than(state.engine, datetime(2025, 1, 1, tzinfo=UTC), NOW)
    assert purged.enrollments == 2
    with state.engine.connect() as conn:
        kept = sorted(r.customer_key for r in conn.execute(select(once_customers)))
    assert kept == ["siti@x.test"]
    state.close()
