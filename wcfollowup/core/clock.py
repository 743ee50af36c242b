"""Time as an injected dependency.

Every component that needs "now" takes a ``Clock``. Production uses ``SystemClock``; tests use
``FakeClock`` to cross weeks in milliseconds; the demo uses ``ScaledClock`` so a 30-minute delay
passes in seconds. The jobs tick on the monotonic clock (``jobs``): it only decides *when we
look*, while what is due is always decided by this clock.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)


class ScaledClock:
    """Real time sped up by ``speed`` from a starting instant (the demo's fast clock)."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        self.speed = speed
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self.speed
        return self._start + timedelta(seconds=elapsed)
