"""Run the daemon's jobs at fixed intervals of elapsed time, whatever the wall clock does.

APScheduler 3 stored each job's next run as a wall-clock datetime and compared it with
``datetime.now()`` (``BaseScheduler._process_jobs``): when the system clock stepped back an hour
(NTP fixing a wrong clock, a VM restored from a snapshot, a manual ``date -s``), the next poll
lay an hour ahead and nothing ran for that hour. Here each job has a thread of its own that
counts the time that has *elapsed* since the job last started, on ``time.monotonic`` (which no
clock step moves), and waits on ``threading.Event.wait`` (on Linux with glibc >= 2.30 CPython
waits on the monotonic clock too). Elapsed time is counted in small steps and a step backwards
of the tick source counts as none, so even a tick source that jumps back cannot stall a job for
longer than its interval.

The jobs the daemon needs are few and simple: a fixed interval, one run at a time (a run that
overruns its interval is followed by one run at once, not by the runs it missed), the first run
at start. Each job also records when it last started and finished, on the same monotonic ticks,
which is what the systemd watchdog is fed from (``progressing``): the watchdog is pinged only
while the jobs actually complete, never by a timer that runs whatever the jobs do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("wcfollowup.service.jobs")

# A job that has not completed for twice its interval plus this is overdue.
SLACK_SECONDS = 30.0
# A run that has gone on this long is taken as hung (one poll of a large backlog takes minutes).
HUNG_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class Ticker:
    """Where the jobs read elapsed seconds (``now``), and how often a waiting job looks."""

    now: Callable[[], float] = time.monotonic
    slice: float = 5.0


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
    runs: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)


class IntervalJobs:
    def __init__(self, ticker: Ticker | None = None) -> None:
        self.ticker = ticker or Ticker()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started_at: float | None = None

    def add(
        self, name: str, func: Callable[[], object], interval: float, *, watched: bool = True
    ) -> None:
        """Add a job, or give an existing one a new function and interval (a reload).

        ``watched`` jobs are the ones ``progressing`` checks: a daily purge is not.
        """
        if interval <= 0:
            raise ValueError(f"job {name!r} needs a positive interval, not {interval}")
        with self._lock:
            job = self._jobs.get(name)
            if job is not None:
                job.func, job.interval, job.watched = func, interval, watched
                return
            job = self._jobs[name] = Job(name, func, interval, watched)
            if self._started_at is not None:
                self._launch(job)

    def start(self) -> None:
        """Start every job; each runs at once, then every ``interval`` seconds."""
        with self._lock:
            self._started_at = self.ticker.now()
            for job in self._jobs.values():
                self._launch(job)

    def shutdown(self, wait: bool = True) -> None:
        """Start no new runs; with ``wait``, let the runs in progress finish first."""
        self._stop.set()
        if wait:
            for job in list(self._jobs.values()):
                if job.thread is not None and job.thread is not threading.current_thread():
                    job.thread.join()

    @property
    def running(self) -> bool:
        """Started, not shut down, and every job's thread still there."""
        if self._started_at is None or self._stop.is_set():
            return False
        return all(j.thread is not None and j.thread.is_alive() for j in self._jobs.values())

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

    # -- each job's thread ------------------------------------------------------------------

    def _launch(self, job: Job) -> None:
        job.thread = threading.Thread(
            target=self._loop, args=(job,), name=f"wcfollowup-{job.name}", daemon=True
        )
        job.thread.start()

    def _loop(self, job: Job) -> None:
        while not self._stop.is_set():
            self._run(job)
            self._wait(job)

    def _run(self, job: Job) -> None:
        job.started, job.running = self.ticker.now(), True
        try:
            job.func()
        except Exception:
            log.exception("job failed; it runs again at its next interval", job=job.name)
        finally:
            job.finished, job.running = self.ticker.now(), False
            job.runs += 1

    def _wait(self, job: Job) -> None:
        """Until ``job.interval`` seconds have elapsed since the run started (or stop)."""
        now = self.ticker.now()
        assert job.started is not None
        remaining = job.interval - max(0.0, now - job.started)
        last = now
        while remaining > 0 and not self._stop.is_set():
            self._stop.wait(min(remaining, self.ticker.slice))
            now = self.ticker.now()
            remaining -= max(0.0, now - last)  # a step back counts as no time, never as more
            last = now
