"""The real daemon as its own process, as systemd starts it, with its JSON log collected.

Shared by the real-process tests (signals, notify, chaos) and the benches (footprint, chaos):
each starts ``wcfollowup.service`` against a sandbox running in the caller's process and
watches its log for events.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

LAUNCH = "from wcfollowup.service.systemd import main; main()"
# A test's own systemd variables must not leak into a daemon that did not ask for them.
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def parse_event(line: str) -> dict[str, Any] | None:
    """One JSON log line as a dict; anything else (a traceback line) is None."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class DaemonProcess:
    """``python -m wcfollowup.service --config CONFIG``; ``prelude`` runs before it (tests)."""

    def __init__(self, config: Path, env: dict[str, str], *, prelude: str = "") -> None:
        clean = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"{prelude}\n{LAUNCH}", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**clean, **env},
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log event so far."""
        with self._changed:
            lines = list(self.lines)
        return [event for event in map(parse_event, lines) if event is not None]

    def mark(self) -> int:
        """Where the log is now: wait for events after this point with ``after=``."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, event: str, timeout: float, *, after: int = 0) -> dict[str, Any] | None:
        """The first event starting with ``event`` from line ``after`` on; None when the time
        runs out or the process ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    found = parse_event(line)
                    if found is not None and str(found.get("event", "")).startswith(event):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._changed.wait(min(left, 0.2))

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._reader.join(timeout=5)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; a daemon that does not stop in time is killed (returns -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(timeout=5)
        return int(self.proc.returncode)
