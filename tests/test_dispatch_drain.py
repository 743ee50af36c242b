"""The dispatcher drains a backlog at the workers' pace, and a poll that finds work wakes it.

Before, one dispatch claimed at most ``batch_size`` steps and then waited for the next tick
(10 s): 50 steps per 10 s whatever ``workers`` said. Now one dispatch keeps claiming while
steps are due, so a backlog of 500 goes out in one run with the shipped defaults (batch 50,
4 workers). And the poll and dispatch jobs no longer just fire side by side: a poll that
stores a step due now wakes the dispatch job, which sends it without waiting out its interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

MakeDaemon = Callable[..., Daemon]


def test_one_dispatch_sends_a_backlog_of_500_with_the_default_batch_and_workers(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = make_daemon(after="0s")  # batch_size 50, workers 4: the shipped defaults
    assert (daemon.config.dispatch.batch_size, daemon.config.dispatch.workers) == (50, 4)
    daemon.run_once()  # first sight: the store's past is history
    new_ids = sandbox.store.add_orders(500, status="processing")
    clock.advance(timedelta(minutes=1))
    for order_id in new_ids:
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))
    polled = daemon.poll_once()
    assert polled is not None and polled.enrolled == 500

    result = daemon.dispatch_once()

    assert result.outcomes == {"sent": 500}
    sent = Counter(m.order_id for m in daemon.state.messages(status="sent"))
    assert set(sent) == set(new_ids) and max(sent.values()) == 1
    assert len(sandbox.sink.messages) == 500
    assert daemon.state.due_count(clock.now()) == 0
    assert daemon.dispatch_once().outcomes == {}, "nothing is left to send, nothing twice"
