"""The poll cursor is bounded by the store's own clock; a future-dated order costs nothing.

A plugin or an importer can write a ``date_modified_gmt`` years ahead. The poll pages by that
date, so a cursor that followed the order to 2099 would ask, from then on, only for orders
modified after 2099: nothing else would ever be enrolled. The store's clock (its HTTP ``Date``
header, which the sandbox stamps from its fake clock) bounds the cursor instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from wcfollowup.config import Config
from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

MakeDaemon = Callable[..., Daemon]
FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)
# "A small tolerance": the cursor may lead the store's clock by at most this.
FUTURE_TOLERANCE = timedelta(minutes=1)


def enrolled_orders(daemon: Daemon) -> set[int]:
    from sqlalchemy import select

    from wcfollowup.db.schema import enrollments

    with daemon.state.engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(select(enrollments.c.order_id))}


def cursor(daemon: Daemon) -> datetime:
    state = daemon.state.store_state(daemon.gateway.url)
    assert state is not None
    return state.cursor_gmt


def complete_new_order(sandbox: Sandbox, clock: FakeClock) -> int:
    order_id = int(sandbox.store.create_order(customer="siti", items=[(11, 1)])["id"])
    clock.advance(timedelta(seconds=5))
    sandbox.store.complete(order_id)
    return order_id


def test_a_future_dated_order_is_enrolled_and_later_orders_still_are(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = make_daemon()
    daemon.run_once()  # first sight: the seeded orders are history
    clock.advance(timedelta(minutes=1))

    future = complete_new_order(sandbox, clock)
    sandbox.store.set_modified(future, FAR_FUTURE)
    before = complete_new_order(sandbox, clock)
    clock.advance(timedelta(seconds=30))
    with capture_logs() as logs:
        assert daemon.poll_once() is not None
    assert {future, before} <= enrolled_orders(daemon)
    warned = [e for e in logs if e["log_level"] == "warning" and e.get("order_id") == future]

    # Orders completed after the future-dated one, over several polls, are all enrolled.
    later = []
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        later.append(complete_new_order(sandbox, clock))
        clock.advance(timedelta(seconds=30))
        assert daemon.poll_once() is not None
        assert cursor(daemon) <= clock.now() + FUTURE_TOLERANCE
    assert set(later) <= enrolled_orders(daemon), "orders after the future-dated one were lost"
    assert warned, f"no warning names order {future}: {logs}"


def test_a_cursor_already_in_the_future_is_brought_back_to_the_store_clock(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    """A database written before this fix may hold a cursor in 2099: polling recovers."""
    daemon = make_daemon()
    daemon.run_once()
    state = daemon.state.store_state(daemon.gateway.url)
    assert state is not None
    daemon.state.advance_cursor(state.id, FAR_FUTURE, clock.now())
    clock.advance(timedelta(minutes=1))
    order_id = complete_new_order(sandbox, clock)
    clock.advance(timedelta(seconds=30))
    with capture_logs() as logs:
        assert daemon.poll_once() is not None
    assert order_id in enrolled_orders(daemon)
    assert cursor(daemon) <= clock.now() + FUTURE_TOLERANCE
    assert any(e["log_level"] == "warning" and "cursor" in e["event"] for e in logs), logs


class AheadClock:
    """The daemon's machine, its clock ``ahead`` of the store's (NTP broken on one side)."""

    def __init__(self, store_clock: FakeClock, ahead: timedelta) -> None:
        self.store_clock = store_clock
        self.ahead = ahead

    def now(self) -> datetime:
        return self.store_clock.now() + self.ahead


def test_the_bound_is_the_store_clock_not_ours(
    sandbox: Sandbox, clock: FakeClock, make_config: Callable[..., Config]
) -> None:
    """Our clock 10 minutes ahead (OAuth still accepts it): a cursor bounded by our clock would
    start the next poll 9 minutes in the store's future, and lose the orders of those minutes."""
    daemon = Daemon(make_config(), AheadClock(clock, timedelta(minutes=10)), sleep=lambda _s: 0)
    try:
        daemon.run_once()
        clock.advance(timedelta(minutes=1))
        future = complete_new_order(sandbox, clock)
        sandbox.store.set_modified(future, FAR_FUTURE)
        clock.advance(timedelta(seconds=30))
        assert daemon.poll_once() is not None
        assert cursor(daemon) <= clock.now() + FUTURE_TOLERANCE
        clock.advance(timedelta(minutes=1))
        later = complete_new_order(sandbox, clock)
        clock.advance(timedelta(seconds=30))
        assert daemon.poll_once() is not None
        assert {future, later} <= enrolled_orders(daemon)
    finally:
        daemon.close()


def test_without_a_date_header_our_own_clock_bounds_the_cursor(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    sandbox.store_dates.send_date = False
    daemon = make_daemon()
    daemon.run_once()
    clock.advance(timedelta(minutes=1))
    future = complete_new_order(sandbox, clock)
    sandbox.store.set_modified(future, FAR_FUTURE)
    clock.advance(timedelta(seconds=30))
    assert daemon.poll_once() is not None
    assert cursor(daemon) <= clock.now() + FUTURE_TOLERANCE
    clock.advance(timedelta(minutes=5))
    later = complete_new_order(sandbox, clock)
    clock.advance(timedelta(seconds=30))
    assert daemon.poll_once() is not None
    assert {future, later} <= enrolled_orders(daemon)
