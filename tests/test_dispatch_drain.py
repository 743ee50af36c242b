"""The dispatcher drains a backlog at the workers' pace, and a poll that finds work wakes it.

Before, one dispatch claimed at most ``batch_size`` steps and then waited for the next tick
(10 s): 50 steps per 10 s whatever ``workers`` said. Now one dispatch keeps claiming while
steps are due, so a backlog of 500 goes out in one run with the shipped defaults (batch 50,
4 workers). And the poll and dispatch jobs no longer just fire side by side: a poll that
stores a step due now wakes the dispatch job, which sends it without waiting out its interval.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support import sandbox_env
from test_jobs_clock import StepClocks, runs, stays, wait_until

from wcfollowup.config import Config, load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.service.jobs import Ticker

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


POLL_EVERY, DISPATCH_EVERY = 10.0, 300.0


@pytest.fixture
def slow_dispatch_config(sandbox: Sandbox, tmp_path: Path) -> Config:
    """An idle dispatcher that looks only every 5 minutes; the poll runs every 10 s."""
    path = tmp_path / "config.yaml"
    path.write_text(
        sandbox.config_yaml(tmp_path / "state.db")
        + "poll:\n  interval: 10s\n  overlap: 2m\n"
        + "dispatch:\n  interval: 5m\n  batch_size: 50\n  workers: 4\n"
        + "sequences:\n  - name: thank-you\n    steps:\n"
        + "      - {name: thank-you, template: thank-you, after: 0s}\n",
        encoding="utf-8",
    )
    return load_config(path, env=sandbox_env(sandbox))


@pytest.fixture
def running(slow_dispatch_config: Config, clock: FakeClock, clocks: StepClocks) -> Iterator[Daemon]:
    ticker = Ticker(now=clocks.ticks, wall=clocks.wall, slice=0.002)
    daemon = Daemon(slow_dispatch_config, clock, sleep=lambda _s: None, ticker=ticker)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.shutdown()


def test_a_poll_that_enrols_a_step_due_now_wakes_the_dispatcher(
    sandbox: Sandbox, clock: FakeClock, running: Daemon, clocks: StepClocks
) -> None:
    assert wait_until(lambda: runs(running, "poll") == 1 and runs(running, "dispatch") == 1)
    order_id = sandbox.store.orders_ids(status="processing")[0]
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))

    clocks.elapse(POLL_EVERY)  # the next poll; the dispatch job's interval is far from up

    assert wait_until(lambda: len(running.state.messages(status="sent")) == 1), (
        "the poll enrolled a step due now but the dispatcher waited for its interval"
    )
    assert [m.order_id for m in running.state.messages(status="sent")] == [order_id]
    assert len(sandbox.sink.messages) == 1
    assert wait_until(lambda: runs(running, "dispatch") == 2)
    # An idle poll wakes nothing: the dispatcher only looks again at its interval.
    clocks.elapse(POLL_EVERY)
    assert wait_until(lambda: runs(running, "poll") == 3)
    assert stays(lambda: runs(running, "dispatch") == 2)
    assert len(sandbox.sink.messages) == 1


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> StepClocks:
    from test_jobs_clock import point_apscheduler_at

    clocks = StepClocks()
    point_apscheduler_at(monkeypatch, clocks.wall)
    return clocks


def test_a_drain_stops_claiming_at_shutdown_and_finishes_the_steps_in_hand(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    """Shutdown (or a reload) must not wait for a whole backlog: claiming stops, the steps
    already claimed are sent and recorded, the rest stays due for the next run."""
    from test_fencing import SlowSink

    daemon = make_daemon(after="0s", batch_size=4)
    daemon.run_once()
    new_ids = sandbox.store.add_orders(20, status="processing")
    clock.advance(timedelta(minutes=1))
    for order_id in new_ids:
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))
    assert daemon.poll_once() is not None
    stopping = threading.Event()
    outcome: dict[str, dict[str, int]] = {}
    sink = SlowSink(sandbox).install()
    try:
        drainer = threading.Thread(
            target=lambda: outcome.update(
                a=daemon.dispatcher.dispatch(stop=stopping.is_set).outcomes
            )
        )
        drainer.start()
        sink.wait_until_held(4)  # the first claim's four steps are being sent
        stopping.set()
        sink.open()
        drainer.join(timeout=60)
        assert not drainer.is_alive()
    finally:
        sink.close()
    assert outcome["a"] == {"sent": 4}
    assert len(sandbox.sink.messages) == 4
    assert daemon.state.due_count(clock.now()) == 16
    assert daemon.dispatch_once().outcomes == {"sent": 16}, "the next run sends the rest"
