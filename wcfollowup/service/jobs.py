"""APScheduler runs the daemon's jobs; a clock-step guard keeps them on elapsed time.

APScheduler 3 (``BackgroundScheduler``, ``IntervalTrigger``) runs each job at a fixed interval,
one run at a time (``max_instances=1``), once rather than once per missed interval when late
(``coalesce=True``), the first run at start. It keeps each job's next run as a wall-clock
datetime and compares it with ``datetime.now()`` (``BaseScheduler._process_jobs``): when the
system clock stepped back an hour (NTP fixing a wrong clock, a VM restored from a snapshot, a
manual ``date -s``), the next poll lay an hour ahead and nothing ran for that hour.

So before each round of the scheduler (``_process_jobs``, the method APScheduler's own Qt
scheduler overrides too), the guard compares the wall clock with ``time.monotonic``, which no
clock step moves. When the gap between the two moved by more than ``STEP_SECONDS``, the wall
clock was stepped, and each job's next run is set again to one interval after its last start,
counted in monotonic seconds. The scheduler waits at most ``Ticker.slice`` seconds between
rounds, so a step is seen within that time even while the next run is far away.

Each job also records when it last started and finished, on the monotonic clock, which is what
the systemd watchdog is fed from (``progressing``): the watchdog is pinged only while the jobs
actually complete, never by a timer that runs whatever the jobs do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = structlog.get_logger("wcfollowup.service.jobs")

# A job that has not completed for twice its interval plus this is overdue.
SLACK_SECONDS = 30.0
# A run that has gone on this long is taken as hung (one poll of a large backlog takes minutes).
HUNG_AFTER_SECONDS = 3600.0
# The wall clock moved this much against the monotonic clock between two rounds: a step, not
# NTP slewing (at most 0.5 ms a second).
STEP_SECONDS = 1.0


@dataclass(frozen=True)
class Ticker:
    """The clocks the jobs read, and how often the scheduler looks at them.

    ``now`` counts elapsed seconds (the bookkeeping, the watchdog, the guard); ``wall`` is the
    wall clock, as APScheduler reads it, in seconds since the epoch.
    """

    now: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    slice: float = 1.0


@dataclass
class Job:
    name: str
    func: Callable[[], object]
    interval: float
    watched: bool
    # Ticks (``Ticker.now``) of the last start and finish; None before the first.
    started: float | None = None
    finished: float | None = None
    running: bool = False
    # Completed runs, counted once APScheduler has let go of the run (a run due then is not
    # refused as a second instance).
    runs: int = 0
    # From the start of a run until APScheduler has let go of it (``_finished``), and whether
    # the job was woken meanwhile: it then runs again as soon as that run is over.
    busy: bool = False
    woken: bool = False


class _GuardedScheduler(BackgroundScheduler):  # type: ignore[misc]  # APScheduler is untyped
    """A ``BackgroundScheduler`` that calls ``guard`` before each round and waits at most
    ``slice`` seconds between rounds."""

    def __init__(self, guard: Callable[[], None], slice: float, **options: Any) -> None:
        self._guard, self._slice = guard, slice
        super().__init__(**options)

    def _process_jobs(self) -> float:
        self._guard()
        wait: float | None = super()._process_jobs()
        return self._slice if wait is None else min(wait, self._slice)


class IntervalJobs:
    def __init__(self, ticker: Ticker | None = None) -> None:
        self.ticker = ticker or Ticker()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._gap: float | None = None  # wall minus monotonic clock, at the last round
        self.scheduler = _GuardedScheduler(
            self._guard,
            self.ticker.slice,
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(self._finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def add(
        self, name: str, func: Callable[[], object], interval: float, *, watched: bool = True
    ) -> None:
        """Add a job, or give an existing one a new function and interval (a reload).

        A new job runs at once (at start, if not started yet). ``watched`` jobs are the ones
        ``progressing`` checks: a daily purge is not.
        """
        if interval <= 0:
            raise ValueError(f"job {name!r} needs a positive interval, not {interval}")
        trigger = IntervalTrigger(seconds=interval, timezone=UTC)
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                self._jobs[name] = Job(name, func, interval, watched)
                self.scheduler.add_job(
                    self._run,
                    trigger,
                    args=(name,),
                    id=name,
                    name=name,
                    next_run_time=_utc(self.ticker.wall()),
                )
                return
            job.func, job.interval, job.watched = func, interval, watched
            wall, now = self.ticker.wall(), self.ticker.now()
            self.scheduler.modify_job(
                name, trigger=trigger, next_run_time=self._next_run(job, wall, now)
            )

    def wake(self, name: str) -> None:
        """Run the job now rather than at its next interval (a poll found work due now).

        A job in the middle of a run is run again as soon as that run is over: APScheduler
        would refuse a second instance, and the run in progress may have looked just before
        the work appeared. Its interval then counts from that new run.
        """
        with self._lock:
            job = self._jobs[name]
            if job.busy:
                job.woken = True
                return
        self._run_now(name)

    def _run_now(self, name: str) -> None:
        if self.scheduler.running:
            self.scheduler.modify_job(name, next_run_time=_utc(self.ticker.wall()))

    def start(self) -> None:
        """Start every job; each runs at once, then every ``interval`` seconds."""
        self._started_at = self.ticker.now()
        self.scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        """Start no new runs; with ``wait``, let the runs in progress finish first."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        """Started and not shut down (a scheduler thread that died shows as overdue jobs)."""
        return self._started_at is not None and bool(self.scheduler.running)

    def job(self, name: str) -> Job:
        return self._jobs[name]

    def overdue(self) -> list[str]:
        """Watched jobs with no evidence of work: not finished recently, or hung in a run."""
        now = self.ticker.now()
        late = []
        for job in list(self._jobs.values()):
            if not job.watched:
                continue
            if job.running:
                assert job.started is not None
                if now - job.started > max(HUNG_AFTER_SECONDS, job.interval):
                    late.append(job.name)
                continue
            last = job.finished if job.finished is not None else self._started_at
            if last is None or now - last > 2 * job.interval + SLACK_SECONDS:
                late.append(job.name)
        return late

    def progressing(self) -> bool:
        """True while the jobs run and complete: what the systemd watchdog is fed from."""
        return self.running and not self.overdue()

    # -- called by APScheduler --------------------------------------------------------------

    def _run(self, name: str) -> None:
        job = self._jobs[name]
        with self._lock:
            job.busy = True
        job.started, job.running = self.ticker.now(), True
        try:
            job.func()
        except Exception:
            log.exception("job failed; it runs again at its next interval", job=name)
        finally:
            job.finished, job.running = self.ticker.now(), False

    def _finished(self, event: JobExecutionEvent) -> None:
        """Count the run; APScheduler has let go of it, so a wake that came meanwhile can
        start the next one now."""
        with self._lock:
            job = self._jobs[event.job_id]
            job.runs += 1
            job.busy = False
            woken, job.woken = job.woken, False
        if woken:
            self._run_now(job.name)

    def _guard(self) -> None:
        """If the wall clock was stepped since the last round, reschedule every job one interval
        after its last start, on the monotonic clock."""
        wall, now = self.ticker.wall(), self.ticker.now()
        gap, last = wall - now, self._gap
        self._gap = gap
        if last is None or abs(gap - last) <= STEP_SECONDS:
            return
        log.warning(
            "the wall clock was stepped; the jobs keep their intervals", seconds=round(gap - last)
        )
        with self._lock:
            for job in self._jobs.values():
                self.scheduler.modify_job(job.name, next_run_time=self._next_run(job, wall, now))

    @staticmethod
    def _next_run(job: Job, wall: float, now: float) -> datetime:
        """One interval after the job's last start (at once if it never started)."""
        elapsed = job.interval if job.started is None else now - job.started
        return _utc(wall + max(0.0, job.interval - elapsed))


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
