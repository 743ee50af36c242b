"""What the daemon is doing, as Prometheus metrics, and whether it is healthy.

Metrics live on a private ``CollectorRegistry`` so several daemons (or tests) in one process never
share counters. Health is judged from polls alone: if we cannot read the store, nothing else can
happen, and a stuck poll is the failure an owner would otherwise notice days later.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from wcfollowup.common.redact import redact

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

MIN_STALE = timedelta(minutes=5)
FAILED_POLLS_UNHEALTHY = 3
_ERROR_CHARS = 200


class Metrics:
    def __init__(self, *, started_at: datetime | None = None) -> None:
        """``started_at`` is when the first poll became due; without it, the first health check."""
        self.registry = CollectorRegistry(auto_describe=True)
        # Set by the daemon: counts steps by state and the due queue, so a scrape is current
        # and nothing is queried when nobody scrapes.
        self.before_scrape: Callable[[], None] | None = None
        self._polls = Counter(
            "wcfollowup_polls",
            "Polls of the store, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._poll_seconds = Histogram(
            "wcfollowup_poll_duration_seconds",
            "How long one poll took.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self._orders = Counter(
            "wcfollowup_orders_seen", "Changed orders read from the store.", registry=self.registry
        )
        self._skipped = Counter(
            "wcfollowup_orders_skipped",
            "Orders a poll skipped because they could not be read, planned or stored "
            "(each is logged with its id), by stage.",
            ["stage"],
            registry=self.registry,
        )
        self._last_ok = Gauge(
            "wcfollowup_last_successful_poll_timestamp_seconds",
            "When the last successful poll finished (Unix time).",
            registry=self.registry,
        )
        self._messages = Counter(
            "wcfollowup_messages",
            "Follow-up messages handled, by step kind and outcome.",
            ["kind", "status"],
            registry=self.registry,
        )
        self._steps = Gauge(
            "wcfollowup_steps", "Scheduled steps, by state.", ["state"], registry=self.registry
        )
        self._queue_depth = Gauge(
            "wcfollowup_queue_depth", "Steps due now and not yet handled.", registry=self.registry
        )
        self._lock = threading.Lock()
        self._started_at = started_at
        self._last_success: datetime | None = None
        self._last_error: str | None = None
        self._recent: deque[bool] = deque(maxlen=FAILED_POLLS_UNHEALTHY)
        self._step_states: set[str] = set()

    def poll_finished(
        self,
        *,
        ok: bool,
        seconds: float,
        orders: int,
        at: datetime,
        error: str | None = None,
    ) -> None:
        self._polls.labels(outcome="ok" if ok else "error").inc()
        self._poll_seconds.observe(max(seconds, 0.0))
        if orders > 0:
            self._orders.inc(orders)
        with self._lock:
            self._recent.append(ok)
            if ok:
                self._last_success = at
                self._last_ok.set(at.timestamp())
            elif error:
                # The reason ends up on /healthz: keep it short and free of keys or signed URLs.
                self._last_error = redact(" ".join(error.split()))[:_ERROR_CHARS]

    def order_skipped(self, stage: str) -> None:
        self._skipped.labels(stage=stage).inc()

    def message_finished(self, *, kind: str, status: str) -> None:
        self._messages.labels(kind=kind, status=status).inc()

    def set_step_counts(self, counts: Mapping[str, int]) -> None:
        with self._lock:
            # A state that emptied out must read 0, not keep its last value.
            for state in self._step_states - set(counts):
                self._steps.labels(state=state).set(0)
            self._step_states |= set(counts)
        for state, count in counts.items():
            self._steps.labels(state=state).set(count)

    def set_queue_depth(self, due: int) -> None:
        self._queue_depth.set(due)

    def exposition(self) -> bytes:
        """The text Prometheus scrapes; gauges read from the database are refreshed first."""
        refresh = self.before_scrape
        if refresh is not None:
            refresh()
        return generate_latest(self.registry)

    def health(self, now: datetime, poll_interval: timedelta) -> tuple[bool, str]:
        """Unhealthy after 3 failed polls in a row, or too long without a successful one."""
        limit = max(3 * poll_interval, MIN_STALE)
        with self._lock:
            if self._started_at is None:
                self._started_at = now
            last_error = f" (last error: {self._last_error})" if self._last_error else ""
            if len(self._recent) == FAILED_POLLS_UNHEALTHY and not any(self._recent):
                return False, f"the last {FAILED_POLLS_UNHEALTHY} polls failed{last_error}"
            if self._last_success is None:
                waited = now - self._started_at
                if waited > limit:
                    return False, f"no successful poll since start {_ago(waited)} ago{last_error}"
                return True, "ok"
            stale = now - self._last_success
            if stale > limit:
                return False, f"no successful poll for {_ago(stale)}{last_error}"
            return True, "ok"


def _ago(delta: timedelta) -> str:
    """17m, 2h05m, 3d4h: short enough for a monitoring alert."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"
