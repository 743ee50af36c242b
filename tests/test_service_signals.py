"""The daemon as systemd runs it: a real process, real signals, a real notify socket.

The sandbox runs in this test process on the real clock; the daemon is another process started
the way the unit starts it (``python -m wcfollowup.service --config ...``), so what is checked
here is what an owner's server does: READY/WATCHDOG/STATUS reach systemd, SIGHUP swaps the YAML
(or keeps the old one when the new is broken), and SIGTERM never cuts a send in half.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from support import FAST_THANK_YOU_SETTINGS, sandbox_env

from wcfollowup.core.clock import SystemClock
from wcfollowup.db.state import StateStore
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.daemon_process import DaemonProcess
from wcfollowup.service import sd_notify

ONE_SEQUENCE = FAST_THANK_YOU_SETTINGS

SECOND_SEQUENCE = """\
  - name: second-note
    steps:
      - name: note
        after: 0s
        template: thank-you
        window: always
"""

# How the unit starts it, minus the CLI (owned elsewhere): ``wcfollowup.service.systemd.main``.
# What systemd's MemoryDenyWriteExecute=yes enforces, applied by the kernel (Linux 6.3+) to this
# process alone: no memory may ever be writable and executable.
DENY_WRITE_EXECUTE = """\
import ctypes
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0):
    raise SystemExit(f"prctl(PR_SET_MDWE) failed, errno {ctypes.get_errno()}: kernel < 6.3?")
"""

# Long enough for the test to see the send in flight and signal twice; short enough to wait out.
SLOW_SEND_SECONDS = 2.0
# The sandbox's order timestamps have one-second resolution: an order completed in the same second
# as the daemon's first look at the store would count as history, not as a new completion.
TIMESTAMP_RESOLUTION = 1.1


@pytest.fixture
def live_sandbox() -> Iterator[Sandbox]:
    """A sandbox on the real clock: the daemon runs in another process with its own clock."""
    with Sandbox(SystemClock(), timezone="Asia/Jakarta") as sb:
        yield sb


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer than that.
    folder = tempfile.mkdtemp(prefix="wcf-notify-")
    listener = NotifyListener(Path(folder) / "notify.sock")
    try:
        yield listener
    finally:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


class NotifyListener:
    """Plays systemd's side of sd_notify: collects every datagram the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.received: list[list[str]] = []

    def wait_for(self, field: str, timeout: float = 10.0, *, after: int = 0) -> list[str]:
        """The first datagram from index ``after`` on (seen or arriving) containing ``field``."""
        return self.wait_for_prefix(field, timeout, after=after, exact=True)

    def wait_for_prefix(
        self, prefix: str, timeout: float = 10.0, *, after: int = 0, exact: bool = False
    ) -> list[str]:
        """The first datagram from index ``after`` on with a field starting with ``prefix``."""
        deadline = time.monotonic() + timeout
        while True:
            for datagram in self.received[after:]:
                if any(f == prefix if exact else f.startswith(prefix) for f in datagram):
                    return datagram
            if time.monotonic() > deadline:
                raise AssertionError(f"no {prefix!r} from the daemon; got {self.received}")
            self._receive()

    def count(self, field: str) -> int:
        return sum(field in datagram for datagram in self.received)

    def poll(self) -> bool:
        """Take in what has arrived so far (always True, for use in conditions)."""
        for _ in range(1000):
            if not self._receive():
                break
        return True

    def _receive(self) -> bool:
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return False
        self.received.append(data.decode("utf-8").split("\n"))
        return True

    def close(self) -> None:
        self.sock.close()


def expect_event(
    daemon: DaemonProcess, event: str, timeout: float = 15.0, *, after: int = 0
) -> dict[str, Any]:
    """The first log event starting with ``event`` from line ``after`` on, or a failure that
    shows the whole log."""
    found = daemon.wait_for(event, timeout, after=after)
    if found is None:
        raise AssertionError(
            f"no {event!r} in the daemon's log (exit code {daemon.proc.poll()}):\n"
            + "\n".join(daemon.lines)
        )
    return found


@pytest.fixture
def start_daemon(live_sandbox: Sandbox) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(config: Path, *, prelude: str = "", **extra_env: str) -> DaemonProcess:
        daemon = DaemonProcess(config, {**sandbox_env(live_sandbox), **extra_env}, prelude=prelude)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def write_config(path: Path, sandbox: Sandbox, sequences: str = "") -> Path:
    body = sandbox.config_yaml(path.parent / "state.db") + ONE_SEQUENCE + sequences
    path.write_text(body, encoding="utf-8")
    return path


def complete_one_order(sandbox: Sandbox, first_poll_at: float, skip: int = 0) -> int:
    """Complete a processing order, clearly after the daemon's first look at the store."""
    wait = TIMESTAMP_RESOLUTION - (time.monotonic() - first_poll_at)
    if wait > 0:
        time.sleep(wait)
    order_id = sandbox.store.orders_ids(status="processing")[skip]
    sandbox.store.complete(order_id)
    return order_id


def sent_for(sandbox: Sandbox, order_id: int) -> list[str]:
    """The sequences whose mail reached the sink for this order."""
    return sorted(
        str(m.custom_args["wcf_sequence"])
        for m in sandbox.sink.messages
        if m.custom_args.get("wcf_order_id") == str(order_id)
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll the sandbox (in this process) until the daemon's effect shows up."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def started(daemon: DaemonProcess) -> float:
    """Wait until the daemon runs and has polled once; returns when (monotonic) it had."""
    expect_event(daemon, "wcfollowup running")
    expect_event(daemon, "poll done")
    return time.monotonic()


class TestReload:
    def test_sighup_with_a_valid_config_adds_a_sequence_for_later_orders(
        self, tmp_path: Path, live_sandbox: Sandbox, start_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """SIGHUP applies the new YAML: an order completed afterwards gets both sequences."""
        config = write_config(tmp_path / "config.yaml", live_sandbox)
        daemon = start_daemon(config)
        first_poll = started(daemon)

        write_config(config, live_sandbox, SECOND_SEQUENCE)
        mark = daemon.mark()
        daemon.signal(signal.SIGHUP)
        reloaded = expect_event(daemon, "config reloaded", after=mark)
        assert reloaded["sequences"] == 2

        order_id = complete_one_order(live_sandbox, first_poll)
        wait_until(lambda: len(sent_for(live_sandbox, order_id)) == 2, 12, "both sequences")
        assert sent_for(live_sandbox, order_id) == ["second-note", "thank-you"]
        assert daemon.proc.poll() is None

        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        # No secret in anything the daemon printed.
        output = "\n".join(daemon.lines)
        for secret in sandbox_env(live_sandbox).values():
            assert secret not in output

    def test_sighup_with_a_broken_config_keeps_the_running_one(
        self, tmp_path: Path, live_sandbox: Sandbox, start_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A broken file is reported with FILE:LINE and the old config keeps sending."""
        config = write_config(tmp_path / "config.yaml", live_sandbox)
        daemon = start_daemon(config)
        first_poll = started(daemon)

        good = write_config(config, live_sandbox, SECOND_SEQUENCE).read_text(encoding="utf-8")
        broken = good.replace("after: 0s", "after: soon", 1)
        config.write_text(broken, encoding="utf-8")
        mark = daemon.mark()
        daemon.signal(signal.SIGHUP)
        failed = expect_event(daemon, "config reload failed; the running config stays", after=mark)
        assert failed["level"] == "error"
        [problem] = failed["problems"]
        file, line, _column, message = problem.split(":", 3)
        assert file == str(config)
        assert broken.splitlines()[int(line) - 1].strip() == "after: soon"
        assert "'soon' is not a duration" in message
        assert daemon.proc.poll() is None

        order_id = complete_one_order(live_sandbox, first_poll)
        wait_until(lambda: bool(sent_for(live_sandbox, order_id)), 12, "the thank-you")
        assert sent_for(live_sandbox, order_id) == ["thank-you"]
        assert daemon.proc.poll() is None

        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0


class TestStop:
    def test_sigterm_mid_send_finishes_the_send_once_and_exits_0(
        self, tmp_path: Path, live_sandbox: Sandbox, start_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """SIGTERM (twice) while a send is in flight: it completes, is logged once, exit 0."""
        in_flight = threading.Event()
        live_sandbox.mail_faults.hook = slow_sends(live_sandbox, in_flight)
        config = write_config(tmp_path / "config.yaml", live_sandbox)
        daemon = start_daemon(config)
        first_poll = started(daemon)

        order_id = complete_one_order(live_sandbox, first_poll)
        assert in_flight.wait(12), "the daemon never started sending"
        mark = daemon.mark()
        signalled = time.monotonic()
        daemon.signal(signal.SIGTERM)
        expect_event(daemon, "stop requested", after=mark)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        assert time.monotonic() - signalled < SLOW_SEND_SECONDS + 5
        assert expect_event(daemon, "already stopping", after=mark)["level"] == "warning"

        assert sent_for(live_sandbox, order_id) == ["thank-you"]
        state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            logged = state.messages(order_id=order_id)
            states = state.step_states()
        finally:
            state.close()
        assert [m.status for m in logged] in (["sent"], ["uncertain"])
        assert not {"claimed", "sending"} & set(states), states


class TestHardening:
    def test_runs_a_whole_cycle_with_write_execute_memory_denied(
        self, tmp_path: Path, live_sandbox: Sandbox, start_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """The unit's MemoryDenyWriteExecute=yes holds: poll, send, serve links, stop cleanly."""
        config = write_config(tmp_path / "config.yaml", live_sandbox)
        daemon = start_daemon(config, prelude=DENY_WRITE_EXECUTE)
        first_poll = started(daemon)
        expect_event(daemon, "listening for survey and unsubscribe links")

        order_id = complete_one_order(live_sandbox, first_poll)
        wait_until(lambda: bool(sent_for(live_sandbox, order_id)), 12, "the thank-you")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0, "\n".join(daemon.lines)


class TestNotify:
    def test_ready_status_watchdog_reloading_and_stopping_reach_the_socket(
        self,
        tmp_path: Path,
        live_sandbox: Sandbox,
        start_daemon: Callable[..., DaemonProcess],
        notify_socket: NotifyListener,
    ) -> None:
        """systemd hears READY, STATUS, WATCHDOG (every half interval), RELOADING, STOPPING."""
        config = write_config(tmp_path / "config.yaml", live_sandbox)
        daemon = start_daemon(
            config, NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000"
        )
        assert notify_socket.wait_for("READY=1") == ["READY=1"]
        [status] = notify_socket.wait_for_prefix("STATUS=")
        assert " due · " in status and status.endswith(" sent today"), status
        expect_event(daemon, "poll done")
        # WATCHDOG_USEC=1s: a ping every half second; three within two seconds, not one.
        pings = notify_socket.count("WATCHDOG=1")
        notify_socket.wait_for("WATCHDOG=1", timeout=2, after=len(notify_socket.received))
        wait_until(
            lambda: notify_socket.poll() and notify_socket.count("WATCHDOG=1") >= pings + 3,
            2.5,
            "repeated watchdog pings",
        )

        daemon.signal(signal.SIGHUP)
        reloading = notify_socket.wait_for("RELOADING=1")
        [usec] = [f for f in reloading if f.startswith("MONOTONIC_USEC=")]
        assert abs(int(usec.split("=")[1]) / 1e6 - time.monotonic()) < 10
        after = notify_socket.received.index(reloading) + 1
        notify_socket.wait_for("READY=1", after=after)
        [status] = [
            f
            for f in notify_socket.wait_for_prefix("STATUS=", after=after)
            if f.startswith("STATUS=")
        ]
        assert status.startswith("STATUS=last poll ") and " ok · 0 due · 0 sent today" in status

        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        notify_socket.wait_for("STOPPING=1", timeout=2)


class TestSdNotify:
    def test_is_a_no_op_without_notify_socket(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        assert sd_notify.ready() is False

    def test_speaks_to_an_abstract_socket(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``@name`` means the abstract namespace, as systemd writes it."""
        name = f"wcf-test-{os.getpid()}-{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
            assert sd_notify.status("3 due\n1 sent") is True
            assert sock.recv(100) == b"STATUS=3 due 1 sent"

    def test_a_dead_socket_is_not_an_error(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
        assert sd_notify.watchdog() is False

    def test_watchdog_interval_honours_watchdog_pid(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WATCHDOG_USEC", "120000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        assert sd_notify.watchdog_interval() == 120.0
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        assert sd_notify.watchdog_interval() == 120.0
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
        assert sd_notify.watchdog_interval() is None
        monkeypatch.delenv("WATCHDOG_USEC")
        assert sd_notify.watchdog_interval() is None


def slow_sends(sandbox: Sandbox, in_flight: threading.Event) -> Callable[[Scope], ASGIApp | None]:
    """A mail sink that holds each send for a while, so a shutdown can land in the middle."""
    real = sandbox.mail_faults.app

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        in_flight.set()
        await asyncio.sleep(SLOW_SEND_SECONDS)
        await real(scope, receive, send)

    def hook(scope: Scope) -> ASGIApp | None:
        return slow if scope["path"].endswith("/mail/send") else None

    return hook
