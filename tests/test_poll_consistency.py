"""Orders that change while one poll pages through the backlog are neither missed nor doubled.

The store is changed *during* ``poll_once``: a hook on the sandbox store (``store_faults.hook``)
watches the poller's ``GET /wp-json/wc/v3/orders`` requests and, just before the store answers
the k-th one, touches an order (an admin edit bumps ``date_modified``) and completes a fresh one.
The hook only observes and mutates the store; it always lets the request through.

Success is judged where the customer would judge it: the SendGrid sink. Every order gets exactly
one thank-you (counted by the ``wcf_order_id`` custom arg), none twice, including after a
follow-up poll whose overlap window re-reads the same orders.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from support import drain

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

MakeDaemon = Callable[..., Daemon]
ORDERS_PATH = "/wp-json/wc/v3/orders"


class MidScan:
    """A store hook: on the ``at``-th order-list request, run ``action`` before it is answered."""

    def __init__(self, at: int, action: Callable[[], None]) -> None:
        self.at = at
        self.action = action
        self.list_requests = 0
        self.fired = threading.Event()
        self.error: BaseException | None = None

    def __call__(self, scope: dict[str, Any]) -> None:
        if scope["method"] != "GET" or scope["path"].rstrip("/") != ORDERS_PATH:
            return None
        self.list_requests += 1
        if self.list_requests == self.at:
            try:
                self.action()
            except BaseException as exc:  # surfaced by the test, not lost in the server thread
                self.error = exc
            self.fired.set()
        return None  # never replace the response: observe and mutate only


def thank_yous(sandbox: Sandbox) -> Counter[int]:
    return Counter(int(m.custom_args["wcf_order_id"]) for m in sandbox.sink.messages)


def assert_exactly_once(sandbox: Sandbox, expected: list[int], when: str) -> None:
    counts = thank_yous(sandbox)
    missed = sorted(set(expected) - set(counts))
    doubled = sorted(order_id for order_id, n in counts.items() if n > 1)
    unexpected = sorted(set(counts) - set(expected))
    assert not missed and not doubled and not unexpected, (
        f"{when}: missed {missed}, sent more than once {doubled}, not expected {unexpected}"
    )


def poll_during_changes(sandbox: Sandbox, daemon: Daemon, hook: MidScan) -> None:
    sandbox.store_faults.hook = hook  # type: ignore[assignment]
    try:
        result = daemon.poll_once()
    finally:
        sandbox.store_faults.hook = None
    assert result is not None, "the poll failed"
    if hook.error is not None:
        raise hook.error
    assert hook.fired.is_set(), (
        f"the poll made only {hook.list_requests} order-list requests; the change was meant "
        f"for request {hook.at}"
    )


def run_and_check(
    sandbox: Sandbox,
    clock: FakeClock,
    daemon: Daemon,
    hook: MidScan,
    expected_after: Callable[[], list[int]],
) -> None:
    """Poll through the changes, send, check; then poll again, send, check again."""
    started = time.perf_counter()
    poll_during_changes(sandbox, daemon, hook)
    polled = time.perf_counter()
    expected = expected_after()
    drain(daemon)
    sent = time.perf_counter()
    assert_exactly_once(sandbox, expected, "after the poll that paged through the changes")
    # The next poll re-reads the overlap window (and the touched orders again): nothing new.
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()
    drain(daemon)
    assert_exactly_once(sandbox, expected, "after a follow-up poll")
    print(
        f"\npoll {polled - started:.2f} s, {len(expected)} sends {sent - polled:.2f} s, "
        f"follow-up {time.perf_counter() - sent:.2f} s"
    )


# Which already-completed order the admin touches, by its position in completion order; the
# poller pages by date_modified ascending, 100 at a time, so position 10 came back on the first
# page and 900 is on a page not yet fetched. (The page boundary is covered by the churn test.)
@pytest.mark.parametrize(
    ("touched", "at_request"),
    [
        pytest.param(10, 3, id="earlier-page-touched-at-3rd-request"),
        pytest.param(900, 3, id="later-page-touched-at-3rd-request"),
    ],
)
def test_order_modified_mid_scan_of_1000_is_neither_missed_nor_doubled(
    sandbox: Sandbox,
    clock: FakeClock,
    make_daemon: MakeDaemon,
    touched: int,
    at_request: int,
) -> None:
    daemon = make_daemon(after="0s", batch_size=1000)
    daemon.run_once()  # first sight sets the baseline
    *batch, fresh = sandbox.store.add_orders(1001, status="processing")
    clock.advance(timedelta(minutes=1))
    for order_id in batch:  # completed at 1,000 distinct seconds after the baseline
        clock.advance(timedelta(seconds=1))
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))

    def change_mid_scan() -> None:
        sandbox.store.touch(batch[touched])
        sandbox.store.complete(fresh)

    hook = MidScan(at_request, change_mid_scan)
    run_and_check(sandbox, clock, daemon, hook, lambda: [*batch, fresh])


def test_orders_changing_on_every_page_while_time_passes(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    """Churn on every request: a second passes, an earlier order is edited, a new one completes."""
    daemon = make_daemon(after="0s", batch_size=1000)
    daemon.run_once()
    ids = sandbox.store.add_orders(1020, status="processing")
    batch, fresh = ids[:1000], ids[1000:]
    clock.advance(timedelta(minutes=1))
    for order_id in batch:
        clock.advance(timedelta(seconds=1))
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))

    class EveryPage(MidScan):
        def __call__(self, scope: dict[str, Any]) -> None:
            if scope["method"] == "GET" and scope["path"].rstrip("/") == ORDERS_PATH:
                n = self.list_requests  # requests answered so far
                if 1 <= n <= len(fresh):
                    clock.advance(timedelta(seconds=1))
                    last = len(batch) - 1
                    sandbox.store.touch(batch[min((n - 1) * 100 + 50, last)])  # the page before
                    sandbox.store.touch(batch[min(n * 100 - 1, last)])  # its last: the pivot
                    sandbox.store.complete(fresh[n - 1])
            return super().__call__(scope)

    hook = EveryPage(2, lambda: None)
    completed_fresh: list[int] = []

    def expected() -> list[int]:
        changed = min(hook.list_requests - 1, len(fresh))
        completed_fresh[:] = fresh[:changed]
        return [*batch, *completed_fresh]

    run_and_check(sandbox, clock, daemon, hook, expected)
    leftover = fresh[len(completed_fresh) :]
    assert not set(leftover) & set(thank_yous(sandbox)), "orders never completed got mail"


class EditEveryRequest(MidScan):
    """Before every order-list request after the first, edit one more already-returned order.

    ``orders[n]`` is edited before request n+1; the ``action`` runs once, at request 2. Whatever
    request a poller starts paging by number inside a crowded second, an edit lands just before.
    """

    def __init__(
        self, orders: list[int], touch: Callable[[int], object], action: Callable[[], None]
    ):
        super().__init__(2, action)
        self.orders = orders
        self.touch = touch

    def __call__(self, scope: dict[str, Any]) -> None:
        if scope["method"] == "GET" and scope["path"].rstrip("/") == ORDERS_PATH:
            n = self.list_requests  # requests answered so far
            if 1 <= n < len(self.orders):
                self.touch(self.orders[n])
        return super().__call__(scope)


# A bulk action in wp-admin completes many orders within one second: a keyset cannot split a
# second, so the poller must page inside it (``exclude`` or page numbers) while edits move
# already-returned orders out of that second. ``bulk[1..]`` sort first by id within the second,
# so every edited order was on the first page.
@pytest.mark.parametrize(
    ("count", "gap"),
    [
        pytest.param(150, timedelta(seconds=1), id="150-polled-a-second-later"),
        # The bulk change was a while ago (the daemon was down, or polls are five minutes apart):
        # longer ago than the 2 minute overlap, so a later poll cannot make up for a miss.
        pytest.param(150, timedelta(minutes=5), id="150-polled-5-minutes-later"),
        # More than a keyset ``exclude`` list should carry: a poller may fall back to page numbers.
        pytest.param(450, timedelta(minutes=5), id="450-polled-5-minutes-later"),
    ],
)
def test_orders_sharing_one_second_with_edits_mid_scan(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon, count: int, gap: timedelta
) -> None:
    daemon = make_daemon(after="0s", batch_size=1000)
    daemon.run_once()
    *bulk, fresh = sandbox.store.add_orders(count + 1, status="processing")
    clock.advance(timedelta(minutes=1))
    for order_id in bulk:  # the clock does not move: one second for all of them
        sandbox.store.complete(order_id)
    clock.advance(gap)

    hook = EditEveryRequest(bulk[:50], sandbox.store.touch, lambda: sandbox.store.complete(fresh))
    run_and_check(sandbox, clock, daemon, hook, lambda: [*bulk, fresh])
