"""Polls and dispatches keep their intervals across clock steps; the watchdog needs real work.

The daemon's jobs count elapsed time on a tick source (the monotonic clock in production). The
tests give the real daemon a tick source of their own and step it by an hour, back and forth,
mid-run: the jobs still run within one interval. One test steps the wall clock the way the old
scheduler (APScheduler 3) read it, with the real monotonic clock underneath. And the systemd
watchdog is fed from the jobs' own finish times: a poll stuck on a store that never answers
stops the pings, and they resume once it completes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

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


class StepTicks:
    """A tick source the test moves, forwards or back, as a stepped clock would."""

    def __init__(self) -> None:
        self._now = 10_000.0
        self._lock = threading.Lock()
        self.reads = 0

    def __call__(self) -> float:
        with self._lock:
            self.reads += 1
            return self._now

    def step(self, seconds: float, *, settle: bool = True) -> None:
        """Move the ticks, then let the waiting jobs look at them (a real clock steps, then
        time passes; a step and the next seconds must not reach the jobs as one sum)."""
        with self._lock:
            self._now += seconds
            reads = self.reads
        if settle:
            assert wait_until(lambda: self.reads > reads + 20)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait for the job threads to react (not for a schedule: the test moves the ticks)."""
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
def ticks() -> StepTicks:
    return StepTicks()


@pytest.fixture
def started(
    make_config: Callable[..., Config], clock: FakeClock, ticks: StepTicks
) -> Iterator[Daemon]:
    daemon = Daemon(
        make_config(), clock, sleep=lambda _s: None, ticker=Ticker(now=ticks, slice=0.002)
    )
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.shutdown()


def runs(daemon: Daemon, job: str) -> int:
    assert daemon.jobs is not None
    return daemon.jobs.job(job).runs


def test_jobs_keep_their_interval_when_the_clock_steps_back_an_hour_or_forward(
    started: Daemon, ticks: StepTicks
) -> None:
    assert wait_until(lambda: runs(started, "poll") == 1 and runs(started, "dispatch") == 1)

    ticks.step(-HOUR)  # mid-run, an hour back
    ticks.step(DISPATCH_EVERY)
    assert wait_until(lambda: runs(started, "dispatch") == 2), "dispatch stalled after the step"
    assert stays(lambda: runs(started, "poll") == 1), "poll ran before its interval was up"
    ticks.step(POLL_EVERY - DISPATCH_EVERY)
    assert wait_until(lambda: runs(started, "poll") == 2), "poll stalled after the step back"

    ticks.step(HOUR)  # and an hour forward: one run each at once, not the sixty "missed"
    assert wait_until(lambda: runs(started, "poll") == 3 and runs(started, "dispatch") >= 3)
    assert stays(lambda: runs(started, "poll") == 3 and runs(started, "dispatch") <= 4)
    assert started.is_alive()


def polls_done(daemon: Daemon) -> float:
    for metric in daemon.metrics.registry.collect():
        if metric.name == "wcfollowup_polls":
            return sum(s.value for s in metric.samples if s.name == "wcfollowup_polls_total")
    return 0.0


def test_a_wall_clock_step_back_does_not_stall_polling(
    sandbox: Sandbox, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real monotonic clock, with the wall clock as APScheduler 3 read it an hour back.

    APScheduler kept each job's next run as a wall-clock time: after this step no poll ran for
    an hour. The daemon must poll again within its interval (5 s here, the least allowed).
    """
    # The wall clock as the old scheduler read it (the daemon no longer needs APScheduler).
    apscheduler_base = pytest.importorskip("apscheduler.schedulers.base")

    shift = [timedelta(0)]

    class SteppedWallClock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> SteppedWallClock:
            return datetime.now(tz) - shift[0]  # type: ignore[arg-type,return-value]

    monkeypatch.setattr(apscheduler_base, "datetime", SteppedWallClock)
    path = tmp_path / "config.yaml"
    path.write_text(
        sandbox.config_yaml(tmp_path / "state.db")
        + "poll:\n  interval: 5s\nsequences:\n  - name: thank-you\n    steps:\n"
        + "      - {name: thank-you, template: thank-you, after: 30m}\n",
        encoding="utf-8",
    )
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
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
    ticks: StepTicks,
    notify: NotifyListener,
    tmp_path: Path,
) -> None:
    service = Service(started, tmp_path / "config.yaml")
    assert wait_until(lambda: runs(started, "poll") == 1 and runs(started, "dispatch") == 1)
    assert pinged(service, notify)

    stall = StalledStore(sandbox)
    sandbox.store_faults.hook = stall
    try:
        ticks.step(POLL_EVERY)  # the next poll starts and hangs on the store
        assert stall.stalled.wait(10)
        assert started.jobs is not None and started.jobs.job("poll").running
        ticks.step(HOUR / 2)
        assert pinged(service, notify), "a poll in progress for half an hour is still work"
        ticks.step(HUNG_AFTER_SECONDS)  # dispatch still runs; the poll is stuck
        assert wait_until(lambda: runs(started, "dispatch") >= 3)
        assert not pinged(service, notify), "the watchdog was pinged while no poll completed"
    finally:
        stall.release.set()
        sandbox.store_faults.hook = None
    assert wait_until(lambda: runs(started, "poll") == 2)
    assert pinged(service, notify), "pings did not resume once polls completed again"


def test_no_ping_once_the_jobs_have_stopped(
    started: Daemon, notify: NotifyListener, tmp_path: Path, ticks: StepTicks
) -> None:
    service = Service(started, tmp_path / "config.yaml")
    assert wait_until(lambda: runs(started, "poll") == 1)
    assert pinged(service, notify)
    assert started.jobs is not None
    started.jobs.shutdown()
    ticks.step(2 * POLL_EVERY, settle=False)  # nobody is left to read the ticks
    assert not pinged(service, notify)
