"""Scenario tests for the follow-up engine: weeks of fake time against the real sandbox.

Each scenario writes the YAML an owner would write, drives the real daemon (poll, dispatch) over
HTTP against the sandbox store and mail sink, and moves a fake clock instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support import drain, sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.schema import steps
from wcfollowup.engine.poller import FLUSH_AT
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

JAKARTA = ZoneInfo("Asia/Jakarta")

THREE_STEPS = """\
delivery:
  status: delivered
  assume_after: 7d
sequences:
  - name: after-purchase
    steps:
      - name: thank-you
        after: 30m
        template: thank-you
      - name: review-request
        after: {delivered: 3d}
        template: thank-you
      - name: win-back
        after: 21d
        template: thank-you
"""


@pytest.fixture(autouse=True)
def delivered_status(sandbox: Sandbox) -> None:
    """The stores in these scenarios run a courier plugin that registers "delivered"."""
    sandbox.store.register_status("delivered")


@pytest.fixture
def start(tmp_path: Path, sandbox: Sandbox, clock: FakeClock) -> Iterator[Callable[[str], Daemon]]:
    daemons: list[Daemon] = []

    def make(body: str) -> Daemon:
        path = write_engine_config(tmp_path / "config.yaml", sandbox, body)
        daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.close()


def tick(daemon: Daemon, clock: FakeClock, by: timedelta) -> None:
    """Let ``by`` pass the way the running daemon would see it, jumping from due time to due time.

    The daemon polls and dispatches at each jump, so every step is sent the moment it falls due;
    nothing between jumps can happen, because the store only changes when the test changes it.
    """
    end = clock.now() + by
    while True:
        daemon.poll_once()
        drain(daemon)
        upcoming = daemon.state.next_due()
        if upcoming is None or upcoming > end:
            break
        clock.set(max(upcoming, clock.now()))
    clock.set(end)
    daemon.poll_once()
    drain(daemon)


def sent(daemon: Daemon) -> list[tuple[int, str, datetime]]:
    return [(m.order_id, m.step, m.at) for m in daemon.state.messages(status="sent")]


def complete_new_order(sandbox: Sandbox, clock: FakeClock, customer: str = "siti") -> int:
    order_id = int(sandbox.store.create_order(customer=customer, items=[(15, 1)])["id"])
    clock.advance(timedelta(seconds=5))
    sandbox.store.complete(order_id)
    return order_id


def first_sight_then_order(
    start: Callable[[str], Daemon],
    sandbox: Sandbox,
    clock: FakeClock,
    body: str = THREE_STEPS,
    customer: str = "siti",
) -> tuple[Daemon, int]:
    """A daemon that has seen the store once, and an order completed a minute later."""
    daemon = start(body)
    daemon.run_once()
    clock.advance(timedelta(minutes=1))
    return daemon, complete_new_order(sandbox, clock, customer)


def test_three_steps_run_in_order_at_the_right_times(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon, order_id = first_sight_then_order(start, sandbox, clock)
    completed_at = clock.now()
    tick(daemon, clock, timedelta(days=30))

    steps = sent(daemon)
    assert [s[1] for s in steps] == ["thank-you", "review-request", "win-back"]
    assert all(s[0] == order_id for s in steps)
    polls = timedelta(hours=1)  # each send happens at the first tick after it is due
    thank_you, review, win_back = (s[2] for s in steps)
    assert completed_at + timedelta(minutes=30) <= thank_you <= completed_at + polls
    # No delivery signal: the fallback assumes delivery 7 days after completion, plus 3 days.
    assert completed_at + timedelta(days=10) <= review <= completed_at + timedelta(days=10) + polls
    assert (
        completed_at + timedelta(days=21) <= win_back <= completed_at + timedelta(days=21) + polls
    )
    assert len(sandbox.sink.messages) == 3


def test_a_refund_between_steps_cancels_the_rest(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon, order_id = first_sight_then_order(start, sandbox, clock)
    tick(daemon, clock, timedelta(days=2))
    sandbox.store.refund(order_id)
    tick(daemon, clock, timedelta(days=30))

    log = [(m.step, m.status, m.reason) for m in daemon.state.messages()]
    assert log == [
        ("thank-you", "sent", ""),
        ("review-request", "cancelled", "order is refunded"),
        ("win-back", "cancelled", "order is refunded"),
    ]
    assert len(sandbox.sink.messages) == 1


def test_a_delivery_signal_moves_the_review_step(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon, order_id = first_sight_then_order(start, sandbox, clock)
    tick(daemon, clock, timedelta(days=2))
    sandbox.store.set_status(order_id, "delivered")  # the courier plugin marks it delivered
    delivered_at = clock.now()
    tick(daemon, clock, timedelta(days=4))

    reviews = [s for s in sent(daemon) if s[1] == "review-request"]
    assert len(reviews) == 1
    # Three days after the real delivery (day 2), not after the 7-day fallback.
    assert (
        delivered_at + timedelta(days=3)
        <= reviews[0][2]
        <= delivered_at + timedelta(days=3, hours=1)
    )


def test_a_send_window_in_jakarta_holds_a_step_until_nine(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon = start(
        """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 30m
        template: thank-you
        window: {days: mon-sat, hours: "09:00-20:00"}
"""
    )
    # Tuesday 24 November 2026, 21:50 in Jakarta.
    clock.set(datetime(2026, 11, 24, 21, 50, tzinfo=JAKARTA))
    daemon.run_once()
    clock.advance(timedelta(minutes=1))
    complete_new_order(sandbox, clock)
    tick(daemon, clock, timedelta(hours=16))

    [(_order, _step, at)] = sent(daemon)
    local = at.astimezone(JAKARTA)
    assert (local.date().isoformat(), local.hour) == ("2026-11-25", 9)
    assert local.minute < 10


def test_a_frequency_cap_skips_a_second_review_request(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon = start(
        """\
sequences:
  - name: review
    steps:
      - name: review-request
        after: 1d
        template: thank-you
        cap: {max: 1, per: 30d}
"""
    )
    daemon.run_once()
    clock.advance(timedelta(minutes=1))
    first = complete_new_order(sandbox, clock, "dewi")
    tick(daemon, clock, timedelta(days=3))
    second = complete_new_order(sandbox, clock, "dewi")
    other = complete_new_order(sandbox, clock, "tan")
    tick(daemon, clock, timedelta(days=3))

    outcome = {m.order_id: (m.status, m.reason) for m in daemon.state.messages()}
    assert outcome[first][0] == "sent"
    assert outcome[other][0] == "sent"
    assert outcome[second][0] == "skipped"
    assert "frequency cap" in outcome[second][1]


def test_conditions_pick_the_right_orders(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon = start(
        """\
sequences:
  - name: big-batik-orders
    conditions:
      all:
        - categories: [batik]
        - country: [ID]
        - not: {payment_method: cod}
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
"""
    )
    daemon.run_once()
    clock.advance(timedelta(minutes=1))
    orders = {
        "batik-id-transfer": ("siti", [(11, 1)]),
        "batik-id-cod": ("putu", [(12, 1)]),
        "coffee-id-transfer": ("dewi", [(15, 1)]),
        "batik-my": ("nurul", [(11, 1)]),
    }
    ids = {}
    for label, (customer, items) in orders.items():
        ids[label] = int(sandbox.store.create_order(customer=customer, items=items)["id"])
        clock.advance(timedelta(seconds=2))
        sandbox.store.complete(ids[label])
    tick(daemon, clock, timedelta(hours=1))
    assert [s[0] for s in sent(daemon)] == [ids["batik-id-transfer"]]


def test_a_restart_in_the_middle_resumes_without_a_duplicate(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon, order_id = first_sight_then_order(start, sandbox, clock)
    tick(daemon, clock, timedelta(days=1))
    daemon.close()
    for _ in range(3):  # restart three times over the following weeks
        daemon = start(THREE_STEPS)
        tick(daemon, clock, timedelta(days=8))
        daemon.close()
    steps = [s[1] for s in sent(start(THREE_STEPS))]
    assert steps == ["thank-you", "review-request", "win-back"]
    assert len(sandbox.sink.messages) == 3
    assert {int(m.custom_args["wcf_order_id"]) for m in sandbox.sink.messages} == {order_id}


def test_unsubscribed_recipient_gets_nothing_more(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon, _order_id = first_sight_then_order(start, sandbox, clock)
    tick(daemon, clock, timedelta(days=1))
    daemon.state.unsubscribe("Siti.Rahmawati@example.test", "test", clock.now())
    tick(daemon, clock, timedelta(days=30))
    log = [(m.step, m.status, m.reason) for m in daemon.state.messages()]
    assert log[0][:2] == ("thank-you", "sent")
    assert [entry[1:] for entry in log[1:]] == [("cancelled", "the recipient unsubscribed")] * 2
    assert len(sandbox.sink.messages) == 1


def test_the_fake_clock_crosses_weeks_quickly() -> None:
    """Guard against a scenario accidentally waiting on real time."""
    clock = FakeClock(datetime(2026, 11, 1, tzinfo=UTC))
    clock.advance(timedelta(weeks=3))
    assert clock.now() == datetime(2026, 11, 22, tzinfo=UTC)


def test_a_delivery_status_the_store_lacks_is_refused_clearly(
    tmp_path: Path, clock: FakeClock
) -> None:
    from wcfollowup.woo.errors import StoreStatusUnknown

    with Sandbox(clock) as bare:  # no courier plugin: "delivered" is not a status here
        path = write_engine_config(tmp_path / "config.yaml", bare, THREE_STEPS)
        daemon = Daemon(load_config(path, env=sandbox_env(bare)), clock, sleep=lambda _s: None)
        try:
            with pytest.raises(StoreStatusUnknown, match=r"delivery\.status"):
                daemon.run_once()
        finally:
            daemon.close()


def test_first_and_repeat_customers_are_told_apart_for_members_and_guests(
    sandbox: Sandbox, clock: FakeClock, start: Callable[[str], Daemon]
) -> None:
    daemon = start(
        """\
sequences:
  - name: welcome
    conditions: {customer: first}
    steps:
      - {name: welcome, after: 0s, template: thank-you}
  - name: loyal
    conditions: {customer: repeat}
    steps:
      - {name: loyal, after: 0s, template: thank-you}
"""
    )
    daemon.run_once()
    clock.advance(timedelta(days=1))
    # A brand-new guest and a brand-new member, then each of them again.
    fresh_guest = complete_new_order(sandbox, clock, "shopper424242")
    clock.advance(timedelta(minutes=1))
    tick(daemon, clock, timedelta(minutes=5))
    again_guest = complete_new_order(sandbox, clock, "shopper424242")
    # Siti has orders in the seeded history: she is a repeat customer from the start.
    member = complete_new_order(sandbox, clock, "siti")
    tick(daemon, clock, timedelta(minutes=5))

    enrolled = {(m.order_id, m.sequence) for m in daemon.state.messages(status="sent")}
    assert (fresh_guest, "welcome") in enrolled and (fresh_guest, "loyal") not in enrolled
    assert (again_guest, "loyal") in enrolled and (again_guest, "welcome") not in enrolled
    assert (member, "loyal") in enrolled and (member, "welcome") not in enrolled


def test_the_three_step_sequence_on_postgresql(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock
) -> None:
    """The scale-out backend runs the same engine: PostgreSQL on 127.0.0.1, a schema per test."""
    import uuid

    from sqlalchemy import create_engine, text

    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    path = write_engine_config(tmp_path / "config.yaml", sandbox, THREE_STEPS)
    text_config = path.read_text(encoding="utf-8").replace(
        f"  path: {tmp_path / 'state.db'}",
        f"  url: {pg}?options=-csearch_path%3D{schema}",
    )
    # No state folder for a generated link key with PostgreSQL: the config gives one.
    text_config = text_config.replace(
        "http:\n", "http:\n  signing_key: pg-test-signing-key-0123456789abcdef\n", 1
    )
    path.write_text(text_config, encoding="utf-8")
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    try:
        daemon.run_once()
        clock.advance(timedelta(minutes=1))
        order_id = complete_new_order(sandbox, clock)
        tick(daemon, clock, timedelta(days=30))
        steps = [(s[0], s[1]) for s in sent(daemon)]
    finally:
        daemon.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    assert steps == [(order_id, "thank-you"), (order_id, "review-request"), (order_id, "win-back")]


@pytest.mark.parametrize(
    ("orders", "change_at"),
    [
        (300, 3),  # comes back while its batch is still buffered
        (FLUSH_AT + 300, FLUSH_AT // 100 + 2),  # its batch went to the writer before
    ],
)
def test_an_order_delivered_or_refunded_while_a_poll_pages_through_it_is_handled_in_that_poll(
    sandbox: Sandbox,
    clock: FakeClock,
    start: Callable[[str], Daemon],
    orders: int,
    change_at: int,
) -> None:
    """An order enrolled from an early page and changed before the scan ends shows up again at
    the end of the same scan: its delivery must move the steps just planned, and its refund must
    cancel them, whether its enrolment is still being batched or already written."""
    daemon = start(THREE_STEPS)
    daemon.run_once()
    clock.advance(timedelta(seconds=orders + 60))  # the orders come one second apart from here
    backlog = sandbox.store.add_orders(orders, status="completed", spread_seconds=orders - 1)
    delivered, refunded = backlog[0], backlog[1]  # both on the first page
    clock.advance(timedelta(seconds=5))
    lists = 0

    def change_mid_scan(scope: dict[str, object]) -> None:
        nonlocal lists
        if scope["method"] == "GET" and str(scope["path"]).rstrip("/").endswith("/orders"):
            lists += 1
            if lists == change_at:  # the first page is planned, this one not yet answered
                sandbox.store.set_status(delivered, "delivered")
                sandbox.store.refund(refunded)

    sandbox.store_faults.hook = change_mid_scan  # type: ignore[assignment]
    try:
        delivered_at = clock.now()
        daemon.poll_once()
    finally:
        sandbox.store_faults.hook = None  # type: ignore[assignment]
    assert lists >= 4, "the change did not land mid-scan"

    # Three days after the delivery seen mid-scan, not after the 7-day fallback.
    review_window = (delivered_at + timedelta(days=3), delivered_at + timedelta(days=3, hours=1))
    with daemon.state.engine.connect() as conn:
        review_due = conn.execute(
            select(steps.c.due_at).where(
                steps.c.order_id == delivered, steps.c.step == "review-request"
            )
        ).scalar_one()
    assert review_window[0] <= review_due <= review_window[1]
    log = [(m.step, m.status, m.reason) for m in daemon.state.messages() if m.order_id == refunded]
    assert log == [
        ("thank-you", "cancelled", "order is refunded"),
        ("review-request", "cancelled", "order is refunded"),
        ("win-back", "cancelled", "order is refunded"),
    ]
    if orders > FLUSH_AT:
        return  # sending is the same either way; the smaller backlog checks it in seconds
    tick(daemon, clock, timedelta(days=5))
    reviews = {order: at for order, step, at in sent(daemon) if step == "review-request"}
    assert list(reviews) == [delivered]
    assert review_window[0] <= reviews[delivered] <= review_window[1]
    assert refunded not in {m.custom_args["wcf_order_id"] for m in sandbox.sink.messages}
