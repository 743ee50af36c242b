"""Fenced claims: a daemon that lost its lock can neither send nor record what another now owns.

Two daemons on one PostgreSQL schema, the first one's lock backend ended by the server
(``pg_terminate_backend``) while its sends hang in a slow mail sink: every email goes out once.
Underneath, the state layer's writes of a claimed step name the claimer, on both backends.
Also here: frequency caps under parallel workers, and order ids past 2^31.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from starlette.types import ASGIApp, Receive, Scope, Send
from support import FAST_THANK_YOU_SETTINGS, drain, sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.planning import Enrollment, PlannedStep
from wcfollowup.db.lock import LockLost
from wcfollowup.db.schema import steps
from wcfollowup.db.state import StateStore, UnstorableOrder
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)

THANK_YOU_NOW = """\
dispatch:
  interval: 10s
  batch_size: 50
  workers: 4
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
"""


# -- fixtures -----------------------------------------------------------------------------


def new_schema() -> Iterator[str]:
    """A PostgreSQL schema of its own for one test (other tests share the database)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    yield from new_schema()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_schema()


@pytest.fixture
def daemons(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock
) -> Iterator[Callable[[str, str | None], Daemon]]:
    """Daemons on the sandbox with the given sequences YAML, on SQLite or a PostgreSQL URL."""
    made: list[Daemon] = []

    def make(body: str, url: str | None = None) -> Daemon:
        path = write_engine_config(tmp_path / "config.yaml", sandbox, body)
        if url is not None:
            config = path.read_text(encoding="utf-8")
            config = config.replace(f"  path: {tmp_path / 'state.db'}", f"  url: {url}")
            # No state folder for a generated link key with PostgreSQL: the config gives one.
            config = config.replace(
                "http:\n", "http:\n  signing_key: pg-test-signing-key-0123456789abcdef\n", 1
            )
            path.write_text(config, encoding="utf-8")
        daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()


class SlowSink:
    """Holds every mail request at the sink until ``open``; counts the requests held."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.gate = threading.Event()
        self.held = 0
        self.changed = threading.Condition()

    def install(self) -> SlowSink:
        def hook(scope: Scope) -> ASGIApp | None:
            if scope.get("path") != "/v3/mail/send":
                return None
            return self._held_then(self.sandbox.mail_faults.app)

        self.sandbox.mail_faults.hook = hook
        return self

    def _held_then(self, inner: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            with self.changed:
                self.held += 1
                self.changed.notify_all()
            await asyncio.to_thread(self.gate.wait, 60)
            await inner(scope, receive, send)

        return app

    def wait_until_held(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.held >= n, timeout=30), self.held

    def open(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.sandbox.mail_faults.hook = None


def complete_orders(sandbox: Sandbox, clock: FakeClock, daemon: Daemon, n: int) -> list[int]:
    """First sight of the store, then ``n`` orders of ``n`` new customers completed and
    enrolled, all due now."""
    daemon.run_once()
    clock.advance(timedelta(minutes=1))
    ids = [int(sandbox.store.create_order(f"shopper{700_000 + i}")["id"]) for i in range(n)]
    clock.advance(timedelta(seconds=2))
    for order_id in ids:
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))
    daemon.poll_once()
    return ids


def lock_backend(daemon: Daemon) -> int:
    """The PostgreSQL backend holding the daemon's lock."""
    connection = daemon.state._lock._connection
    pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    connection.commit()
    return int(pid)


def terminate(pid: int) -> None:
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


def sends_per_step(sandbox: Sandbox) -> Counter[int]:
    return Counter(int(m.custom_args["wcf_step_id"]) for m in sandbox.sink.messages)


# -- a lost PostgreSQL lock ---------------------------------------------------------------


def test_a_daemon_that_lost_its_lock_mid_dispatch_sends_nothing_twice(
    sandbox: Sandbox,
    clock: FakeClock,
    pg_url: str,
    daemons: Callable[[str, str | None], Daemon],
) -> None:
    """The review's reproduction: daemon A mid-dispatch with a slow sink, its lock's backend
    ended, daemon B started on the same database. Every email goes out exactly once, B drains
    everything, and A stops claiming (and would exit with EXIT_LOCK_LOST)."""
    first = daemons(THANK_YOU_NOW, pg_url)
    orders = complete_orders(sandbox, clock, first, 30)
    sink = SlowSink(sandbox).install()
    try:
        pid = lock_backend(first)
        outcome: dict[str, Any] = {}
        a_thread = threading.Thread(
            target=lambda: outcome.update(a=first.dispatch_once().outcomes), name="daemon-a"
        )
        a_thread.start()
        sink.wait_until_held(4)  # A's four workers are each in the middle of a send
        terminate(pid)
        second = daemons(THANK_YOU_NOW, pg_url)  # takes the lock A no longer has
        second.recover()
        sink.open()
        drain(second)
        a_thread.join(timeout=60)
        assert not a_thread.is_alive()
        drain(second)
        per_step = sends_per_step(sandbox)
        assert {step: n for step, n in per_step.items() if n > 1} == {}, "duplicate emails"
        assert len(per_step) == len(orders) == 30
        # A's next claim finds the lock gone: it reports it and claims nothing more.
        assert first.lock_lost is not None
        assert first.dispatch_once().outcomes == {}
        with pytest.raises(LockLost):
            first.run_once()
    finally:
        sink.close()

    # A's four in-flight sends went out once; B's recovery marked them uncertain (A could no
    # longer record them). A let go of all 30; B sent the other 26.
    assert second.state.step_states() == {"sent": 26, "uncertain": 4}
    assert outcome["a"] == {"let-go": 30, "lock-lost": 1}


def test_the_lock_check_notices_an_ended_session_and_lets_another_daemon_in(
    sandbox: Sandbox, pg_url: str, daemons: Callable[[str, str | None], Daemon]
) -> None:
    first = daemons(THANK_YOU_NOW, pg_url)
    first.state.verify_lock()  # held: no error
    terminate(lock_backend(first))
    with pytest.raises(LockLost, match="lock was lost"):
        first.state.verify_lock()
    with pytest.raises(LockLost):
        first.state.claim_due(NOW, 10)
    # Nor may it recover: the claims it would hand back may be the new owner's.
    with pytest.raises(LockLost):
        first.state.recover_interrupted(NOW)
    second = daemons(THANK_YOU_NOW, pg_url)
    second.state.verify_lock()


# -- the fence in the state layer ---------------------------------------------------------


def enrollment(order_id: int, email: str = "a@b.test") -> Enrollment:
    order = OrderSnapshot(order_id, str(order_id), "completed", NOW, NOW, email)
    step = PlannedStep("thank-you", "email", "completed", timedelta(0), NOW, "pending")
    return Enrollment(order, "thank-you", NOW, None, False, (step,))


def test_a_step_claimed_by_one_daemon_cannot_be_moved_on_by_another(store_url: str) -> None:
    """finish, mark_sending and release name the claimer: another run's writes change nothing."""
    owner, other = StateStore(store_url), StateStore(store_url)
    shop = owner.create_store("http://shop.test", NOW, NOW)
    owner.enroll_many(shop.id, [enrollment(1), enrollment(2)], NOW)
    first, second = owner.claim_due(NOW, 10)

    assert other.finish(first, "sent", NOW, recipient="a@b.test", message_id="m-1") is False
    assert other.mark_sending(first.id, NOW).ours is False
    assert other.release(first.id, NOW) is False
    assert other.release_if_claimed(first.id, NOW, NOW) is False
    assert other.messages() == []
    assert other.step_states() == {"claimed": 2}

    assert owner.mark_sending(first.id, NOW).go
    assert owner.finish(first, "sent", NOW, recipient="a@b.test", message_id="m-1") is True
    assert [m.status for m in owner.messages()] == ["sent"]
    # Recovery by the next run takes the rest away; the old owner then finishes nothing.
    assert other.recover_interrupted(NOW) == (1, 0)
    assert owner.mark_sending(second.id, NOW).ours is False
    assert owner.finish(second, "sent", NOW, recipient="a@b.test") is False
    assert owner.release(second.id, NOW) is False
    [again] = other.claim_due(NOW, 10)
    assert again.id == second.id
    assert other.mark_sending(second.id, NOW).go
    with owner.engine.connect() as conn:
        assert conn.execute(select(steps.c.claimed_by).where(steps.c.id == second.id)).scalar() == (
            other.owner
        )
    owner.close()
    other.close()


def test_recovery_marks_another_runs_sending_step_uncertain_and_its_owner_records_nothing(
    store_url: str,
) -> None:
    owner, other = StateStore(store_url), StateStore(store_url)
    shop = owner.create_store("http://shop.test", NOW, NOW)
    owner.enroll_many(shop.id, [enrollment(1)], NOW)
    [step] = owner.claim_due(NOW, 10)
    assert owner.mark_sending(step.id, NOW).go
    assert other.recover_interrupted(NOW) == (0, 1)
    assert owner.finish(step, "sent", NOW, recipient="a@b.test", message_id="m-1") is False
    assert [m.status for m in other.messages()] == ["uncertain"]
    owner.close()
    other.close()


def test_an_order_id_no_64_bit_column_can_hold_is_refused_on_its_own(store_url: str) -> None:
    state = StateStore(store_url)
    shop = state.create_store("http://shop.test", NOW, NOW)
    with pytest.raises(UnstorableOrder, match=str(2**63)) as caught:
        state.enroll_many(shop.id, [enrollment(2**63)], NOW)
    assert caught.value.order_id == 2**63
    stored = state.enroll_many(shop.id, [enrollment(2**63 - 1), enrollment(2**31 + 5)], NOW)
    assert sorted(p.order.id for p in stored) == [2**31 + 5, 2**63 - 1]
    assert sorted(s.order_id for s in state.claim_due(NOW, 10)) == [2**31 + 5, 2**63 - 1]
    state.close()


# -- order ids past 2^31, end to end ------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_order_id_past_2_to_the_31_enrols_and_sends(
    sandbox: Sandbox,
    clock: FakeClock,
    daemons: Callable[[str, str | None], Daemon],
    backend: str,
) -> None:
    schemas = new_schema() if backend == "postgresql" else None
    url = next(schemas) if schemas is not None else None
    try:
        daemon = daemons(THANK_YOU_NOW, url)
        daemon.run_once()
        clock.advance(timedelta(minutes=1))
        sandbox.store._next_post_id = 2**31 + 5  # a store whose ids went past int4
        order_id = int(sandbox.store.create_order()["id"])
        assert order_id == 2**31 + 5
        clock.advance(timedelta(seconds=2))
        sandbox.store.complete(order_id)
        clock.advance(timedelta(seconds=2))
        daemon.poll_once()
        drain(daemon)
        assert [(m.order_id, m.status) for m in daemon.state.messages()] == [(order_id, "sent")]
        assert [m.to for m in sandbox.sink.messages] == [[daemon.state.messages()[0].recipient]]
        daemon.close()
    finally:
        if schemas is not None:
            next(schemas, None)


# -- frequency caps with parallel workers -------------------------------------------------

TWO_CAPPED_SEQUENCES = """\
dispatch:
  interval: 10s
  batch_size: 50
  workers: 4
sequences:
  - name: thanks
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
        cap: {max: 1, per: 7d, key: weekly}
  - name: review
    steps:
      - name: review-request
        after: 0s
        template: thank-you
        cap: {max: 1, per: 7d, key: weekly}
"""


class LatentSink:
    """Every mail request takes a while, as a real provider's does: sends overlap."""

    def __init__(self, sandbox: Sandbox, seconds: float) -> None:
        self.sandbox = sandbox
        self.seconds = seconds

    def install(self) -> None:
        def hook(scope: Scope) -> ASGIApp | None:
            if scope.get("path") != "/v3/mail/send":
                return None
            inner = self.sandbox.mail_faults.app

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                await asyncio.sleep(self.seconds)
                await inner(scope, receive, send)

            return app

        self.sandbox.mail_faults.hook = hook


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_shared_cap_holds_with_four_workers_and_both_steps_due_at_once(
    sandbox: Sandbox,
    clock: FakeClock,
    daemons: Callable[[str, str | None], Daemon],
    backend: str,
) -> None:
    schemas = new_schema() if backend == "postgresql" else None
    url = next(schemas) if schemas is not None else None
    try:
        daemon = daemons(TWO_CAPPED_SEQUENCES, url)
        orders = complete_orders(sandbox, clock, daemon, 5)
        assert sum(daemon.state.step_states().values()) == 10
        LatentSink(sandbox, 0.3).install()
        drain(daemon)
        sandbox.mail_faults.hook = None
        recipients = Counter(address for m in sandbox.sink.messages for address in m.to)
        assert len(recipients) == 5, recipients
        assert set(recipients.values()) == {1}, recipients  # each customer exactly one
        outcomes = Counter(m.status for m in daemon.state.messages())
        assert outcomes == {"sent": 5, "skipped": 5}
        skipped = [m for m in daemon.state.messages() if m.status == "skipped"]
        assert all("frequency cap" in m.reason for m in skipped)
        assert {m.order_id for m in daemon.state.messages(status="sent")} == set(orders)
        daemon.close()
    finally:
        if schemas is not None:
            next(schemas, None)


# -- the service exits so systemd restarts it ---------------------------------------------

SERVICE_SETTINGS = FAST_THANK_YOU_SETTINGS


def test_the_service_exits_with_its_lock_lost_code_when_its_session_is_ended(
    tmp_path: Path, pg_url: str
) -> None:
    """The daemon as systemd runs it (a real process): its lock's backend ended by the server,
    it logs why and exits with EXIT_LOCK_LOST (75), which ``Restart=on-failure`` restarts."""
    from wcfollowup.core.clock import SystemClock
    from wcfollowup.db.lock import ADVISORY_KEY, EXIT_LOCK_LOST, schema_lock_key
    from wcfollowup.sandbox.daemon_process import DaemonProcess
    from wcfollowup.service.systemd import EXIT_LOCK_LOST as SERVICE_EXIT_LOCK_LOST

    assert SERVICE_EXIT_LOCK_LOST == EXIT_LOCK_LOST == 75
    schema = pg_url.rsplit("%3D", 1)[1]
    with Sandbox(SystemClock(), timezone="Asia/Jakarta") as live:
        config = tmp_path / "config.yaml"
        body = live.config_yaml(tmp_path / "state.db") + SERVICE_SETTINGS
        body = body.replace(f"  path: {tmp_path / 'state.db'}", f"  url: {pg_url}")
        body = body.replace(
            "http:\n", "http:\n  signing_key: pg-test-signing-key-0123456789abcdef\n", 1
        )
        config.write_text(body, encoding="utf-8")
        daemon = DaemonProcess(config, sandbox_env(live))
        try:
            assert daemon.wait_for("wcfollowup running", 30) is not None, daemon.lines
            admin = create_engine(PG_URL)
            with admin.begin() as conn:
                ended = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND classid::bigint = :cls "
                        "AND objid::bigint = :key AND objsubid = 2"
                    ),
                    {"cls": ADVISORY_KEY, "key": schema_lock_key(schema)},
                ).all()
            admin.dispose()
            assert ended == [(True,)]
            assert daemon.wait(30) == EXIT_LOCK_LOST, "\n".join(daemon.lines)
            assert any(
                str(e.get("event", "")).startswith("STOPPING: this daemon lost its database lock")
                for e in daemon.events()
            ), daemon.lines
        finally:
            daemon.kill()


# -- migration 0005 on a database in use --------------------------------------------------


def test_migration_0005_keeps_the_rows_and_widens_the_ids(store_url: str) -> None:
    """A 0004 database with an enrolment, upgraded: the rows stay, and an order id past 2^31
    (PostgreSQL's int4) is stored afterwards."""
    from alembic import command

    from wcfollowup.db.migrate import alembic_config, current_revision

    old = StateStore(store_url, migrate=False)
    config = alembic_config()
    with old.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    shop = old.create_store("http://shop.test", NOW, NOW)  # unchanged by 0005
    with old.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO enrollments (store_id, order_id, order_number, sequence, email, "
                "customer_key, anchor_at, enrolled_at) VALUES "
                "(:shop, 7, '7', 'thank-you', 'a@b.test', 'a@b.test', :t, :t)"
            ),
            {"shop": shop.id, "t": NOW.replace(tzinfo=None)},
        )
    old.close()
    state = StateStore(store_url)
    assert current_revision(state.engine) == "0005"
    stored = state.enroll_many(shop.id, [enrollment(7), enrollment(2**31 + 5)], NOW)
    assert [p.order.id for p in stored] == [2**31 + 5]
    [step] = state.claim_due(NOW, 10)
    assert step.order_id == 2**31 + 5
    state.close()
