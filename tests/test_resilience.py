"""The database locked by another program, the disk full, the clock jumping: nothing twice, nothing
lost, clear log lines, and recovery on its own when the trouble goes.

The real daemon runs in this process against the sandbox; the trouble is real too: another SQLite
connection holding ``BEGIN EXCLUSIVE``, a tiny tmpfs filled to the last byte, a daemon clock set
back and forward while the store's clock runs on.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.testing import capture_logs
from support import sandbox_env

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.state import DatabaseUnavailable
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

THANK_YOU_AND_COUPON = """\
poll:
  interval: 60s
  overlap: 2m
dispatch:
  interval: 10s
  workers: 2
sequences:
  - name: after-purchase
    steps:
      - {name: thank-you, after: 0s, template: thank-you, window: always}
      - {name: survey, kind: survey, after: 2h, window: always}
      - {name: review, kind: review, after: 3d, window: {hours: '09:00-17:00'}}
  - name: reward
    steps:
      - name: coupon
        kind: coupon
        after: 0s
        window: always
        coupon: {discount_type: percent, amount: 10, expires_in: 30d, prefix: TERIMAKASIH}
"""

# SQLite waits this long for another connection's lock (``_sqlite_pragmas``) before giving up.
BUSY_TIMEOUT = 10.0


def make_daemon(sandbox: Sandbox, folder: Path, clock: FakeClock) -> Daemon:
    config = folder / "config.yaml"
    config.write_text(
        sandbox.config_yaml(folder / "state.db") + THANK_YOU_AND_COUPON, encoding="utf-8"
    )
    return Daemon(load_config(config, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)


@pytest.fixture
def daemon(sandbox: Sandbox, clock: FakeClock, tmp_path: Path) -> Iterator[Daemon]:
    """The daemon on its own clock (a copy of the store's), after its first look at the store."""
    own_clock = FakeClock(clock.now())
    daemon = make_daemon(sandbox, tmp_path, own_clock)
    daemon.run_once()
    yield daemon
    daemon.close()


def complete_order(sandbox: Sandbox, clocks: list[FakeClock], customer: str) -> int:
    """A new order for a new guest, completed a minute later on every clock given."""
    order_id = int(sandbox.store.create_order(customer=customer, items=[(11, 1)])["id"])
    for clock in clocks:
        clock.advance(timedelta(minutes=1))
    sandbox.store.complete(order_id)
    for clock in clocks:
        clock.advance(timedelta(seconds=2))
    return order_id


def daemon_clock(daemon: Daemon) -> FakeClock:
    assert isinstance(daemon.clock, FakeClock)
    return daemon.clock


def mails(sandbox: Sandbox, order_id: int, step: str | None = None) -> list[Any]:
    return [
        m
        for m in sandbox.sink.messages
        if m.custom_args.get("wcf_order_id") == str(order_id)
        and (step is None or m.custom_args.get("wcf_step") == step)
    ]


def steps_by_state(daemon: Daemon, order_id: int) -> dict[str, str]:
    with daemon.state.tx() as conn:
        rows = conn.exec_driver_sql(
            "SELECT step, state FROM steps WHERE order_id = ?", (order_id,)
        ).all()
    return {str(r[0]): str(r[1]) for r in rows}


def statuses(daemon: Daemon, order_id: int, step: str) -> list[str]:
    return [m.status for m in daemon.state.messages(order_id=order_id) if m.step == step]


def events(logs: list[dict[str, Any]], fragment: str) -> list[dict[str, Any]]:
    return [e for e in logs if fragment in str(e.get("event", ""))]


def assert_no_secrets(logs: list[dict[str, Any]], sandbox: Sandbox) -> None:
    text = repr(logs)
    for secret in sandbox_env(sandbox).values():
        assert secret not in text


# -- the database locked by another program -----------------------------------------------


class ExclusiveLock(threading.Thread):
    """Another program (a backup, ``sqlite3`` in a terminal) holding the database for a while."""

    def __init__(self, db_path: Path, hold: float) -> None:
        super().__init__(daemon=True)
        self.db_path = db_path
        self.hold = hold
        self.taken = threading.Event()
        self.released_at = 0.0

    def run(self) -> None:
        conn = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self.taken.set()
            time.sleep(self.hold)
            conn.execute("COMMIT")
            self.released_at = time.monotonic()
        finally:
            conn.close()

    def __enter__(self) -> ExclusiveLock:
        self.start()
        assert self.taken.wait(5), "could not lock the database"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.join(self.hold + 5)


def test_a_short_lock_is_waited_out_and_the_step_sent_once(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, tmp_path: Path
) -> None:
    """A lock shorter than SQLite's busy timeout only delays the work."""
    order_id = complete_order(sandbox, [clock, daemon_clock(daemon)], "shopper80001")
    daemon.poll_once()
    with ExclusiveLock(tmp_path / "state.db", hold=1.0) as lock:
        result = daemon.dispatch_once()
        finished = time.monotonic()
    assert 0 < lock.released_at <= finished  # it really waited for the lock to go
    assert result.outcomes == {"sent": 2}
    assert sorted(m.custom_args["wcf_step"] for m in mails(sandbox, order_id)) == [
        "coupon",
        "thank-you",
    ]
    assert statuses(daemon, order_id, "thank-you") == ["sent"]


def test_a_long_lock_is_logged_clearly_and_the_work_resumes_when_it_goes(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, tmp_path: Path
) -> None:
    """Held past the busy timeout: no crash, a log line saying what to do, nothing sent or
    lost; once the lock goes the next dispatch sends each step once."""
    order_id = complete_order(sandbox, [clock, daemon_clock(daemon)], "shopper80002")
    daemon.poll_once()
    with capture_logs() as logs, ExclusiveLock(tmp_path / "state.db", hold=BUSY_TIMEOUT + 1.5):
        result = daemon.dispatch_once()
    assert result.outcomes == {"database-unavailable": 1}
    [line] = events(logs, "could not look for due steps")
    assert line["log_level"] == "error"
    assert "locked by another program" in line["problem"]
    assert mails(sandbox, order_id) == []
    assert set(steps_by_state(daemon, order_id).values()) == {"pending"}

    assert daemon.dispatch_once().outcomes == {"sent": 2}
    assert len(mails(sandbox, order_id, "thank-you")) == 1
    assert len(mails(sandbox, order_id, "coupon")) == 1
    assert len(sandbox.store.coupons) == 1
    assert_no_secrets(logs, sandbox)


# -- the disk full --------------------------------------------------------------------------


class TinyDisk:
    """A 2 MB tmpfs holding the database; ``fill`` takes every free byte, ``free`` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def mount(self) -> None:
        self.path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "wcf-test", str(self.path)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)

    def fill(self) -> None:
        try:
            with self.filler.open("ab", buffering=0) as out:
                while True:
                    out.write(b"\0" * 4096)
        except OSError:
            pass  # no space left: that was the point

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tiny tmpfs, which needs root")
    disk = TinyDisk(tmp_path / "disk")
    disk.mount()
    try:
        yield disk
    finally:
        disk.unmount()


class FillDiskOnSend:
    """The disk fills up while SendGrid is accepting the message: the send works, its record
    cannot be written."""

    def __init__(self, sandbox: Sandbox, disk: TinyDisk) -> None:
        self.inner: ASGIApp = sandbox.mail_faults.app
        self.disk = disk
        self.sends = 0

    def __call__(self, scope: Scope) -> ASGIApp | None:
        return self._send if scope["path"].endswith("/mail/send") else None

    async def _send(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.sends += 1
        self.disk.fill()
        await self.inner(scope, receive, send)


def test_a_full_disk_never_doubles_or_loses_a_send_and_recovers(
    sandbox: Sandbox, clock: FakeClock, tiny_disk: TinyDisk
) -> None:
    own_clock = FakeClock(clock.now())
    daemon = make_daemon(sandbox, tiny_disk.path, own_clock)
    try:
        daemon.run_once()
        clocks = [clock, own_clock]
        first = complete_order(sandbox, clocks, "shopper80003")
        daemon.poll_once()
        # The thank-you reaches SendGrid, then the disk is full: its outcome cannot be written.
        fault = FillDiskOnSend(sandbox, tiny_disk)
        sandbox.mail_faults.hook = fault
        with capture_logs() as logs:
            daemon.dispatch_once()
            sandbox.mail_faults.hook = None
            assert len(mails(sandbox, first)) == fault.sends >= 1
            # Each mail that went out is kept in memory, with a line saying what to do.
            unrecorded = events(logs, "but not yet recorded")
            assert len(unrecorded) == fault.sends
            assert all("disk holding the database is full" in e["problem"] for e in unrecorded)
            # Still full: nothing new is claimed or sent, and the log says why.
            own_clock.advance(timedelta(minutes=1))
            assert daemon.dispatch_once().outcomes == {"database-unavailable": 1}
            assert events(logs, "the database still refuses writes")
            # A poll cannot store new orders either: it says so and keeps its cursor.
            second = complete_order(sandbox, clocks, "shopper80004")
            with pytest.raises(DatabaseUnavailable, match="disk holding the database is full"):
                daemon.poller.poll()
        assert len(mails(sandbox, first)) == fault.sends  # nothing was sent again

        tiny_disk.free()
        with capture_logs() as logs:
            daemon.dispatch_once()  # writes the kept outcome first, then carries on
            result = daemon.poll_once()
            assert result is not None and result.enrolled == 2  # the second order, not lost
            own_clock.advance(timedelta(seconds=5))
            daemon.dispatch_once()
        assert events(logs, "recorded after the database recovered")
        assert_no_secrets(logs, sandbox)
        for order_id in (first, second):
            assert len(mails(sandbox, order_id, "thank-you")) == 1
            assert len(mails(sandbox, order_id, "coupon")) == 1
            assert statuses(daemon, order_id, "thank-you") == ["sent"]
            assert statuses(daemon, order_id, "coupon") == ["sent"]
        [logged] = [m for m in daemon.state.messages(order_id=first) if m.step == "thank-you"]
        [sent] = mails(sandbox, first, "thank-you")
        assert logged.provider_message_id == sent.message_id
        assert len(sandbox.store.coupons) == 2
    finally:
        daemon.close()


# -- the clock jumping ----------------------------------------------------------------------


def test_a_backward_jump_neither_resends_nor_re_enrols(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    own = daemon_clock(daemon)
    order_id = complete_order(sandbox, [clock, own], "shopper80005")
    daemon.poll_once()
    daemon.dispatch_once()
    assert len(mails(sandbox, order_id)) == 2  # thank-you and coupon
    before = steps_by_state(daemon, order_id)

    own.set(own.now() - timedelta(days=1))  # NTP steps the clock back a day
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        own.advance(timedelta(minutes=1))
        daemon.poll_once()
        daemon.dispatch_once()
    assert len(mails(sandbox, order_id)) == 2
    assert steps_by_state(daemon, order_id) == before
    with daemon.state.tx() as conn:
        enrolled = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM enrollments WHERE order_id = ?", (order_id,)
        ).scalar()
    assert enrolled == 2

    own.set(clock.now())  # back to the right time: the survey is due two hours after completion
    clock.advance(timedelta(hours=2))
    own.advance(timedelta(hours=2))
    daemon.dispatch_once()
    assert len(mails(sandbox, order_id, "survey")) == 1
    assert mails(sandbox, order_id, "review") == []


def test_a_forward_jump_sends_what_fell_due_within_its_window_once(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    own = daemon_clock(daemon)
    order_id = complete_order(sandbox, [clock, own], "shopper80006")
    daemon.poll_once()
    daemon.dispatch_once()
    assert mails(sandbox, order_id, "survey") == []

    # Three days and a bit later, at 02:00 in Jakarta: the survey is overdue and goes now; the
    # review is due too but its window (09:00-17:00 store time) is closed, so it waits.
    jakarta_2am = (own.now() + timedelta(days=3, hours=1)).astimezone(UTC)
    target = jakarta_2am.replace(hour=19, minute=0, second=0, microsecond=0)  # 02:00 WIB
    if target < own.now() + timedelta(days=3, minutes=5):
        target += timedelta(days=1)
    own.set(target)
    daemon.dispatch_once()
    daemon.dispatch_once()
    assert len(mails(sandbox, order_id, "survey")) == 1
    assert mails(sandbox, order_id, "review") == []
    assert steps_by_state(daemon, order_id)["review"] == "pending"

    own.set(target + timedelta(hours=7, minutes=1))  # 09:01 in Jakarta: the window opens
    daemon.dispatch_once()
    daemon.dispatch_once()
    assert len(mails(sandbox, order_id, "survey")) == 1
    assert (
        len(mails(sandbox, order_id, "review"))
        + len([m for m in daemon.state.messages(order_id=order_id) if m.step == "review"])
        >= 1
    )
    review_log = statuses(daemon, order_id, "review")
    assert review_log in (["sent"], ["skipped"])
    assert len(mails(sandbox, order_id, "review")) == (1 if review_log == ["sent"] else 0)
    sent_at = {m.custom_args["wcf_step"]: m for m in mails(sandbox, order_id)}
    assert set(sent_at) >= {"thank-you", "coupon", "survey"}


# -- a daemon killed while creating a coupon -------------------------------------------------


def test_a_coupon_lease_left_by_a_killed_daemon_does_not_hold_up_the_next_one(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, tmp_path: Path
) -> None:
    """SIGKILL while the store was creating the coupon leaves the step claimed and its lease
    taken; the next start must not wait minutes for a lease nobody holds any more."""
    from wcfollowup.db.coupons import CouponRecord

    own = daemon_clock(daemon)
    order_id = complete_order(sandbox, [clock, own], "shopper80007")
    daemon.poll_once()
    [step] = [s for s in daemon.state.claim_due(own.now(), 10) if s.step == "coupon"]
    book = daemon.dispatcher.coupons
    email = str(sandbox.store.get(order_id)["billing"]["email"]).lower()
    record = CouponRecord(
        step.id, order_id, "terimakasih-killed0001", email, "percent", "10", None, None
    )
    book.plan(record, step.store_id, own.now())
    assert book.take_lease(step.id, own.now())
    daemon.close()  # what the kill leaves behind: claimed, planned, leased

    restarted = make_daemon(sandbox, tmp_path, own)
    try:
        own.advance(timedelta(seconds=5))
        restarted.run_once()
        [mail] = mails(sandbox, order_id, "coupon")
        assert "TERIMAKASIH-KILLED0001" in mail.text
        assert [c.code for c in sandbox.store.coupons.values()] == ["terimakasih-killed0001"]
        assert statuses(restarted, order_id, "coupon") == ["sent"]
    finally:
        restarted.close()
