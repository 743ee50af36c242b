"""``wcfollowup run`` as a long-lived service: signals, sd_notify, watchdog and status line.

The poll and dispatch jobs run on threads of their own (``Daemon``, ``jobs``); the main thread
only supervises, and pings systemd's watchdog only while those jobs complete. Signal handlers do
nothing but wake it up through ``signal.set_wakeup_fd``: all real work (reloading YAML, shutting
down, logging) happens in the main loop, outside the handler, where taking locks and writing
logs is safe. Shutdown runs on a helper thread so the main thread keeps answering signals (a
second SIGTERM is logged, never allowed to cut a send in half) and keeps
telling systemd it is alive.
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from datetime import time as day_time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from wcfollowup.service import sd_notify
from wcfollowup.service.exit_codes import ExitCode

if TYPE_CHECKING:
    from wcfollowup.core.clock import Clock
    from wcfollowup.service.daemon import Daemon

__all__ = ["EXIT_CONFIG", "EXIT_LOCKED", "EXIT_STORE", "Service", "main", "serve", "status_line"]

log = structlog.get_logger("wcfollowup.service")

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.FAILED
EXIT_CONFIG = ExitCode.CONFIG
EXIT_STORE = ExitCode.STORE_INCOMPATIBLE
EXIT_LOCKED = ExitCode.ALREADY_RUNNING
EXIT_LOCK_LOST = ExitCode.LOCK_LOST  # the database lock was lost while running

# Without a watchdog the main loop still wakes this often to refresh the status line.
IDLE_TICK = 5.0
# The status line costs three small queries; systemd only shows it on request.
STATUS_EVERY = 10.0

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_HANDLED_SIGNALS = (*_STOP_SIGNALS, signal.SIGHUP)


def serve(config_path: Path, *, clock: Clock | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the process exit code. Main thread only.

    2: the config has problems (each printed to stderr); 3: the store cannot be polled safely;
    4: another daemon already uses this database; 75: this daemon lost its database lock while
    running (systemd restarts it); 1: the link listener could not start, or the
    scheduler died without a watchdog to notice.
    """
    from wcfollowup.config import ConfigError, load_config
    from wcfollowup.db.lock import AlreadyRunning
    from wcfollowup.db.opening import StateUnavailable
    from wcfollowup.service.daemon import Daemon
    from wcfollowup.service.logs import configure_logging
    from wcfollowup.web.server import WebServerError
    from wcfollowup.web.tokens import KeyUnavailable
    from wcfollowup.woo.errors import StoreIncompatible, StoreTooOld

    try:
        config = load_config(config_path)
    except ConfigError as error:
        for problem in error.problems:
            print(str(problem), file=sys.stderr)
        print(
            f"{len(error.problems)} problem(s) in {config_path}; nothing was started.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    configure_logging()
    try:
        daemon = Daemon(config, clock)
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except StateUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.DATABASE_UNAVAILABLE
    except KeyUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        daemon.start()
    except (StoreTooOld, StoreIncompatible) as exc:
        daemon.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except WebServerError as exc:
        daemon.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BaseException:
        daemon.close()
        raise
    return Service(daemon, config_path).run()


class Service:
    """Supervises a started ``Daemon`` from the main thread until it is told to stop."""

    def __init__(self, daemon: Daemon, config_path: Path) -> None:
        self.daemon = daemon
        self.config_path = config_path
        interval = sd_notify.watchdog_interval()
        self.watchdog_enabled = interval is not None
        # Half the watchdog interval, as sd_watchdog_enabled(3) recommends.
        self.tick = min(interval / 2, IDLE_TICK) if interval is not None else IDLE_TICK
        self._last_status = -STATUS_EVERY
        self._dead_logged = False

    def run(self) -> int:
        """Main-thread loop: READY, then heartbeat/status until a stop signal; returns exit code."""
        signals_in, signals_out = socket.socketpair()
        signals_in.setblocking(False)
        signals_out.setblocking(False)
        previous_fd = signal.set_wakeup_fd(signals_out.fileno(), warn_on_full_buffer=False)
        previous = {sig: signal.signal(sig, _just_wake) for sig in _HANDLED_SIGNALS}
        try:
            sd_notify.ready()
            self.update_status(force=True)
            while True:
                received = _wait_for_signals(signals_in, self.tick)
                if any(sig in _STOP_SIGNALS for sig in received):
                    log.info("stop requested", signal=_names(received))
                    return self._stop(signals_in)
                if signal.SIGHUP in received:
                    self.reload()
                if self.daemon.lock_lost is not None:
                    return self._die(EXIT_LOCK_LOST)
                if not self.heartbeat():
                    return self._die()
                self.update_status()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            signals_in.close()
            signals_out.close()

    def heartbeat(self) -> bool:
        """Ping the watchdog only while polls and dispatches complete; False when nobody else
        will notice that they stopped.

        The evidence is the jobs' own finish times on the monotonic clock (``Daemon.is_alive``),
        so neither a wall-clock step nor a stuck job can keep the pings going.
        """
        if self.daemon.is_alive():
            sd_notify.watchdog()
            if self._dead_logged:
                self._dead_logged = False
                log.info("polls and dispatches are completing again")
            return True
        if not self._dead_logged:
            self._dead_logged = True
            log.error(
                "polls or dispatches stopped completing; no more polls or sends may happen",
                overdue=self.daemon.overdue_jobs(),
                action="systemd's watchdog will restart wcfollowup"
                if self.watchdog_enabled
                else "exiting so the service manager can restart wcfollowup",
            )
        return self.watchdog_enabled

    def reload(self) -> None:
        """Re-read the YAML; anything wrong leaves the running config in charge."""
        from wcfollowup.config import ConfigError, load_config
        from wcfollowup.service.daemon import ReloadRefused

        sd_notify.reloading()
        try:
            log.info("reloading config", path=str(self.config_path))
            try:
                config = load_config(self.config_path)
            except ConfigError as error:
                log.error(
                    "config reload failed; the running config stays",
                    path=str(self.config_path),
                    problems=[str(problem) for problem in error.problems],
                )
                return
            try:
                self.daemon.reload(config)
            except ReloadRefused as exc:
                log.error("config reload refused; the running config stays", reason=str(exc))
        finally:
            sd_notify.ready()
            self.update_status(force=True)

    def update_status(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_EVERY:
            return
        self._last_status = now
        sd_notify.status(status_line(self.daemon))

    def _stop(self, signals_in: socket.socket) -> int:
        """Finish in-flight work on a helper thread while the main thread keeps watch."""
        sd_notify.stopping()
        sd_notify.status("stopping: finishing in-flight sends")
        stopper = threading.Thread(target=self.daemon.shutdown, name="wcfollowup-shutdown")
        stopper.start()
        while stopper.is_alive():
            received = _wait_for_signals(signals_in, min(self.tick, 0.5))
            if received:
                log.warning(
                    "already stopping; waiting for in-flight sends to finish",
                    signal=_names(received),
                )
            if self.watchdog_enabled:
                sd_notify.watchdog()
            stopper.join(timeout=0)
        return EXIT_OK

    def _die(self, code: int = EXIT_FAILED) -> int:
        sd_notify.stopping()
        self.daemon.shutdown()
        return code


def status_line(daemon: Daemon) -> str:
    """ "last poll 12:03:04 ok · 3 due · 120 sent today", in the store's time zone.

    Cheap on purpose (indexed counts); any database trouble yields a plain "running" rather than
    disturbing the main loop.
    """
    from sqlalchemy import and_, func, select
    from sqlalchemy.exc import SQLAlchemyError

    from wcfollowup.db.schema import messages, steps, stores

    zone = daemon.config.store.tz
    now = daemon.clock.now()
    start_of_day = datetime.combine(now.astimezone(zone).date(), day_time(), tzinfo=zone)
    try:
        with daemon.state.engine.connect() as conn:
            last_poll = conn.execute(select(func.max(stores.c.last_poll_at))).scalar()
            due = conn.execute(
                select(func.count())
                .select_from(steps)
                .where(and_(steps.c.state == "pending", steps.c.due_at <= now))
            ).scalar()
            sent = conn.execute(
                select(func.count())
                .select_from(messages)
                .where(and_(messages.c.status == "sent", messages.c.at >= start_of_day))
            ).scalar()
    except SQLAlchemyError as exc:
        log.debug("status query failed", reason=str(exc))
        return "running"
    healthy, reason = daemon.health()
    if isinstance(last_poll, datetime):
        poll = f"last poll {last_poll.astimezone(zone):%H:%M:%S}"
    else:
        poll = "no poll yet"
    health = "ok" if healthy else f"PROBLEM: {reason}"
    return f"{poll} {health} · {int(due or 0)} due · {int(sent or 0)} sent today"


def _just_wake(_signum: int, _frame: FrameType | None) -> None:
    """The signal number already reached the wakeup socket; the main loop reads it there."""


def _wait_for_signals(signals_in: socket.socket, timeout: float) -> list[signal.Signals]:
    """Block up to ``timeout`` s for signals; returns those received (in order, may repeat)."""
    readable, _, _ = select.select([signals_in], [], [], timeout)
    if not readable:
        return []
    received: list[signal.Signals] = []
    while True:
        try:
            data = signals_in.recv(64)
        except BlockingIOError:
            break
        if not data:
            break
        received.extend(signal.Signals(number) for number in data)
    return received


def _names(received: Sequence[signal.Signals]) -> str:
    return ",".join(dict.fromkeys(sig.name for sig in received))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m wcfollowup.service --config PATH``: the daemon without the CLI around it."""
    parser = argparse.ArgumentParser(prog="wcfollowup-service", description=main.__doc__)
    parser.add_argument("--config", "-c", type=Path, required=True, help="the YAML config")
    args = parser.parse_args(argv)
    from wcfollowup.common.private_files import keep_files_private

    keep_files_private()
    sys.exit(serve(args.config))


if __name__ == "__main__":
    main()
