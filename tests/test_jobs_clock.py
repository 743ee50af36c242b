"""Polls and dispatches keep their intervals across clock steps; the watchdog needs real work.

APScheduler runs the daemon's jobs on the wall clock; a guard keeps them on elapsed time (the
monotonic clock). The tests give the real daemon both clocks of their own (APScheduler reads
the wall clock as ``datetime.now`` in its scheduler module, which the tests point at theirs) and
step the wall clock by an hour, back and forth, mid-run: the jobs still run within one
interval. One test steps the wall clock with the real clocks underneath. And the systemd
watchdog is fed from the jobs' own finish times: a poll stuck on a store that never answers
stops the pings, and they resume once it completes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import apscheduler.schedulers.base
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from support import sandbox_env
from test_service_signals import NotifyListener

from wcfollowup.config import Config, load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.service.jobs import HUNG_AFTER_SECONDS, Ticker
from wcfollowup.service.systemd import Service

HOUR = 3600.0
POLL_EVERY, DISPATCH_EVERY = 60.0, 10.0  # tests/support.py's config


class StepClocks:
    """The two clocks the jobs read, which the test moves: elapsed ticks (the monotonic clock,
    which only time passing moves) and the wall clock (which a clock step moves too)."""

    def __init__(self) -> None:
        self._ticks = 10_000.0
        self._wall = float(int(time.time()))  # whole seconds: the sums below stay exact
        self._lock = threading.Lock()
        self.reads = 0

    def ticks(self) -> float:
        with self._lock:
            return self._ticks

    def wall(self) -> float:
        with self._lock:
            self.reads += 1
            return self._wall

    def elapse(self, seconds: float, *, settle: bool = True) -> None:
        """Time passes: both clocks move."""
        self._move(seconds, seconds, settle)

    def step_wall(self, seconds: float) -> None:
        """The wall clock is stepped (NTP, ``date -s``, a restored VM); no time passes."""
        self._move(0.0, seconds, settle=True)

    def _move(self, ticks: float, wall: float, settle: bool) -> None:
        """Move the clocks, then let the scheduler look at them (a real clock steps, then time
        passes; a step and the next seconds must not reach the scheduler as one sum)."""
        with self._lock:
            self._ticks += ticks
            self._wall += wall
            reads = self.reads
        if settle:
            assert wait_until(lambda: self.reads > reads + 20)


def point_apscheduler_at(monkeypatch: pytest.MonkeyPatch, wall: Callable[[], float]) -> None:
    """APScheduler compares its run times with ``datetime.now`` in its scheduler module."""

    class Wall(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Wall:
            return datetime.fromtimestamp(wall(), tz)  # type: ignore[return-value]

    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", Wall)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait for the jobs to react (not for a schedule: the test moves the clocks)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def stays(condition: Callable[[], bool], seconds: float = 0.3) -> bool:
    """``condition`` holds for ``seconds`` (many job slices): nothing ran that should not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> StepClocks:
    clocks = StepClocks()
    point_apscheduler_at(monkeypatch, clocks.wall)
    return clocks


@pytest.fixture
def started(
    make_config: Callable[..., Config], clock: FakeClock, clocks: StepClocks
) -> Iterator[Daemon]:
    ticker = Ticker(now=clocks.ticks, wall=clocks.wall, slice=0.002)
    daemon = Daemon(make_config(), clock, sleep=lambda _s: None, ticker=ticker)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.shutdown()


def runs(daemon: Daemon, job: str) -> int:
    assert daemon.jobs is not None
    return daemon.jobs.job(job).runs


def test_jobs_keep_their_interval_when_the_clock_steps_back_an_hour_or_forward(
    started: Daemon, clocks: StepClocks
) -> None:
    assert wait_until(lambda: runs(started, "poll") == 1 and runs(started, "dispatch") == 1)

    clocks.step_wall(-HOUR)  # an hour back: APScheduler alone would wait out that hour
    clocks.elapse(DISPATCH_EVERY)
    assert wait_until(lambda: runs(started, "dispatch") == 2), "dispatch stalled after the step"
    assert stays(lambda: runs(started, "poll") == 1), "poll ran before its interval was up"
    clocks.elapse(POLL_EVERY - DISPATCH_EVERY)
    assert wait_until(lambda: runs(started, "poll") == 2), "poll stalled after the step back"

    clocks.step_wall(HOUR)  # an hour forward: at most one run each, not the sixty "missed"
    assert stays(lambda: runs(started, "poll") <= 3 and runs(started, "dispatch") <= 4)
    clocks.elapse(POLL_EVERY)  # and the jobs go on at their intervals
    assert wait_until(lambda: runs(started, "poll") >= 3)
    assert stays(lambda: runs(started, "poll") <= 4)

    polls, dispatches = runs(started, "poll"), runs(started, "dispatch")
    clocks.elapse(HOUR)  # an hour really passes (the process was stopped): one run each
    assert wait_until(
        lambda: runs(started, "poll") == polls + 1 and runs(started, "dispatch") == dispatches + 1
    )
    assert stays(
        lambda: runs(started, "poll") == polls + 1 and runs(started, "dispatch") == dispatches + 1
    )
    assert started.is_alive()


def test_a_reload_gives_the_jobs_their_new_interval(started: Daemon, clocks: StepClocks) -> None:
    assert wait_until(lambda: runs(started, "poll") == 1)
    config = started.config
    faster = config.poll.model_copy(update={"interval": timedelta(seconds=20)})
    started.reload(config.model_copy(update={"poll": faster}))
    clocks.elapse(20)
    assert wait_until(lambda: runs(started, "poll") == 2), "poll kept its old interval"
    clocks.elapse(20)
    assert wait_until(lambda: runs(started, "poll") == 3)


def polls_done(daemon: Daemon) -> float:
    for metric in daemon.metrics.registry.collect():
        if metric.name == "wcfollowup_polls":
            return sum(s.value for s in metric.samples if s.name == "wcfollowup_polls_total")
    return 0.0


def test_a_wall_clock_step_back_does_not_stall_polling(
    sandbox: Sandbox, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real clocks, with the wall clock stepped an hour back mid-run.

    APScheduler keeps each job's next run as a wall-clock time: on its own, after this step
    no poll ran for an hour. The daemon must poll again within its interval (5 s here, the
    least allowed).
    """
    shift = [timedelta(0)]

    def wall() -> float:
        return time.time() - shift[0].total_seconds()

    point_apscheduler_at(monkeypatch, wall)
    path = tmp_path / "config.yaml"
    path.write_text(
        sandbox.config_yaml(tmp_path / "state.db")
        + "poll:\n  interval: 5s\nsequences:\n  - name: thank-you\n    steps:\n"
        + "      - {name: thank-you, template: thank-you, after: 30m}\n",
        encoding="utf-8",
    )
    config = load_config(path, env=sandbox_env(sandbox))
    daemon = Daemon(config, clock, sleep=lambda _s: None, ticker=Ticker(wall=wall))
    daemon.start()
    try:
        assert wait_until(lambda: polls_done(daemon) >= 1)
        shift[0] = timedelta(hours=1)
        assert wait_until(lambda: polls_done(daemon) >= 2, timeout=5 * 2 + 2), (
            "no poll within two intervals after the wall clock stepped back"
        )
    finally:
        daemon.shutdown()


class StalledStore:
    """A store hook: order lists are not answered until ``release`` is set."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner: ASGIApp = sandbox.store_faults.app
        self.release = threading.Event()
        self.stalled = threading.Event()

    def __call__(self, scope: Scope) -> ASGIApp | None:
        if scope["method"] == "GET" and scope["path"].endswith("/wc/v3/orders"):
            return self._stall
        return None

    async def _stall(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stalled.set()
        while not self.release.is_set():
            await asyncio.sleep(0.005)
        await self.inner(scope, receive, send)


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="wcf-notify-")
    listener = NotifyListener(Path(folder) / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield listener
    finally:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


def pinged(service: Service, notify: NotifyListener) -> bool:
    """One heartbeat of the service's main loop: did it reach systemd as WATCHDOG=1?"""
    before = notify.poll() and notify.count("WATCHDOG=1")
    assert service.heartbeat(), "with a watchdog, systemd is the one to restart us"
    # A local datagram is queued at the listener before heartbeat() returns.
    return notify.poll() and notify.count("WATCHDOG=1") > before


def test_the_watchdog_is_pinged_only_while_polls_complete(
    sandbox: Sandbox,
    started: Daemon,
    clocks: StepClocks,
    notify: NotifyListener,
    tmp_path: Path,
) -> None:
    service = Service(started, tmp_path / "config.yaml")
    assert wait_until(lambda: runs(started, "poll") == 1 and runs(started, "dispatch") == 1)
    assert pinged(service, notify)

    stall = StalledStore(sandbox)
    sandbox.store_faults.hook = stall
    try:
        clocks.elapse(POLL_EVERY)  # the next poll starts and hangs on the store
        assert stall.stalled.wait(10)
        assert started.jobs is not None and started.jobs.job("poll").running
        clocks.elapse(HOUR / 2)
        assert pinged(service, notify), "a poll in progress for half an hour is still work"
        clocks.elapse(HUNG_AFTER_SECONDS)  # dispatch still runs; the poll is stuck
        assert wait_until(lambda: runs(started, "dispatch") >= 3)
        assert not pinged(service, notify), "the watchdog was pinged while no poll completed"
    finally:
        stall.release.set()
        sandbox.store_faults.hook = None
    assert wait_until(lambda: runs(started, "poll") == 2)
    assert pinged(service, notify), "pings did not resume once polls completed again"


def test_no_ping_once_the_jobs_have_stopped(
    started: Daemon, notify: NotifyListener, tmp_path: Path, clocks: StepClocks
) -> None:
    service = Service(started, tmp_path / "config.yaml")
    assert wait_until(lambda: runs(started, "poll") == 1)
    assert pinged(service, notify)
    assert started.jobs is not None
    started.jobs.shutdown()
    clocks.elapse(2 * POLL_EVERY, settle=False)  # nobody is left to read the clocks
    assert not pinged(service, notify)
