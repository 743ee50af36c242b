"""The daemon: builds the adapters from the config and runs the poll and dispatch jobs.

The jobs (APScheduler, through ``jobs.IntervalJobs``) only decide *when we look*: fixed
intervals, one run at a time, kept on elapsed time when the wall clock steps. What is due is
decided by the injected clock and the outbox in the database, so ``--once`` and the tests run
exactly the code the jobs run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import SQLAlchemyError

from wcfollowup.config import Config
from wcfollowup.core.clock import Clock, SystemClock
from wcfollowup.db.lock import LockLost
from wcfollowup.db.opening import open_state
from wcfollowup.db.privacy import Purge, describe_purge, purge_older_than
from wcfollowup.db.state import DatabaseUnavailable, database_problem
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.engine.dispatcher import Dispatcher, DispatchResult
from wcfollowup.engine.poller import Poller, PollResult
from wcfollowup.mail.sendgrid_mailer import SendGridMailer
from wcfollowup.render.renderer import Renderer
from wcfollowup.service.jobs import IntervalJobs, Ticker
from wcfollowup.service.logs import register_secrets
from wcfollowup.web.metrics import Metrics
from wcfollowup.web.tokens import make_signer
from wcfollowup.woo.errors import (
    StoreAuthError,
    StoreError,
    StoreIncompatible,
    StoreTlsError,
    StoreTooOld,
)
from wcfollowup.woo.gateway import WooGateway

if TYPE_CHECKING:
    from wcfollowup.web.server import WebServer

log = structlog.get_logger("wcfollowup.service.daemon")

RETENTION_EVERY = timedelta(days=1)


class ReloadRefused(Exception):
    """The new config cannot be applied to a running daemon; the old one stays."""


class Daemon:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        ticker: Ticker | None = None,
    ) -> None:
        """``ticker`` times the jobs (the real clocks unless a test steps its own)."""
        self.config = config
        self.clock = clock or SystemClock()
        store, mail = config.store, config.sendgrid
        register_secrets(
            [
                store.consumer_key.get_secret_value(),
                store.consumer_secret.get_secret_value(),
                mail.api_key.get_secret_value(),
            ]
        )
        if store.verify_tls is False:
            log.warning(
                "store.verify_tls is false: the store's certificate is not checked, so anyone "
                "between here and the store can read the API keys and orders; set it to true, "
                "or to the CA bundle of the store's certificate (store.verify_tls: /path/ca.pem)",
                store=store.url,
            )
        # Before the lock: a missing key must not leave the database locked.
        self.signer = make_signer(config)
        # A fault opening the database raises StateUnavailable, one clear message; another
        # daemon on it, AlreadyRunning.
        self.state = open_state(config, daemon=True)
        self._sleep = sleep
        self.metrics = Metrics(started_at=self.clock.now())
        self._web: WebServer | None = None
        self.metrics.before_scrape = self._refresh_gauges
        self._poll_lock = threading.Lock()
        self._dispatch_lock = threading.Lock()
        self._ticker = ticker or Ticker()
        self._scheduler: IntervalJobs | None = None
        # Set at shutdown, and while a reload waits: a dispatch draining a backlog claims
        # nothing more (the steps in hand are finished), so neither waits for the whole backlog.
        self._stopping = threading.Event()
        self._reload_waiting = threading.Event()
        self._build_workers(config)
        self._recovered = False
        # Set when the one-daemon lock was lost: nothing more is claimed, and the service (or
        # ``run --once``) exits with ``EXIT_LOCK_LOST`` so systemd starts a fresh daemon.
        self.lock_lost: str | None = None
        # Why the last poll failed (None after a good one); ``run --once`` exits on it.
        self.poll_problem: Exception | None = None

    def _build_workers(self, config: Config) -> None:
        """(Re)build everything that reads the config; the state store and its lock stay."""
        store, mail = config.store, config.sendgrid
        register_secrets(
            [
                store.consumer_key.get_secret_value(),
                store.consumer_secret.get_secret_value(),
                mail.api_key.get_secret_value(),
            ]
        )
        self.config = config
        self.gateway = WooGateway(
            store.url,
            store.consumer_key.get_secret_value(),
            store.consumer_secret.get_secret_value(),
            timeout=store.request_timeout.total_seconds(),
            verify=store.verify_tls,
            sleep=self._sleep,
            # Every dispatch worker may re-read an order while the poll pages: one kept-alive
            # connection each, never one per request.
            pool_size=config.dispatch.workers + 1,
        )
        self.mailer = SendGridMailer(
            mail.api_key.get_secret_value(),
            from_email=mail.from_email,
            from_name=mail.from_name,
            host=mail.host,
            timeout=mail.request_timeout.total_seconds(),
            sleep=self._sleep,
            pool_size=config.dispatch.workers,
        )
        self.poller = Poller(self.gateway, self.state, config, self.clock, self.metrics)
        previous: Dispatcher | None = getattr(self, "dispatcher", None)
        self.dispatcher = Dispatcher(
            config,
            self.gateway,
            self.mailer,
            self.state,
            Renderer(config.templates_dir),
            self.clock,
            signer=self.signer,
            metrics=self.metrics,
        )
        if previous is not None:
            # Outcomes the database refused (disk full) must survive a reload, or those
            # steps would turn "uncertain" at the next start instead of being recorded.
            self.dispatcher.unrecorded.update(previous.unrecorded)
            self.dispatcher.stranded |= previous.stranded

    # -- the jobs ---------------------------------------------------------------------------

    def recover(self) -> None:
        try:
            released, uncertain = self.state.recover_interrupted(self.clock.now())
        except LockLost as exc:
            self._lost_lock(exc)
            return
        self._recovered = True
        if released or uncertain:
            log.warning(
                "recovered after an interrupted run", released=released, uncertain=uncertain
            )

    def poll_once(self) -> PollResult | None:
        started = time.monotonic()
        try:
            result = self.poller.poll()
        except (StoreTooOld, StoreIncompatible):
            raise
        except StoreAuthError as exc:
            log.error("PAUSED polling: the store refused the API keys", reason=str(exc))
            self._poll_failed(started, exc)
            return None
        except StoreTlsError as exc:
            log.error("poll failed: the store's certificate does not verify", reason=str(exc))
            self._poll_failed(started, exc)
            return None
        except (StoreError, DatabaseUnavailable) as exc:
            log.warning("poll failed; will try again next interval", reason=str(exc))
            self._poll_failed(started, exc)
            return None
        self.poll_problem = None
        self.metrics.poll_finished(
            ok=True,
            seconds=time.monotonic() - started,
            orders=result.orders_seen,
            at=self.clock.now(),
        )
        log.info(
            "poll done",
            requests=result.requests,
            orders=result.orders_seen,
            enrolled=result.enrolled,
            cancelled=result.cancelled,
            cursor=result.cursor.isoformat(),
        )
        return result

    def _poll_failed(self, started: float, problem: Exception) -> None:
        self.poll_problem = problem
        reason = str(problem)
        self.metrics.poll_finished(
            ok=False,
            seconds=time.monotonic() - started,
            orders=0,
            at=self.clock.now(),
            error=reason,
        )

    def health(self) -> tuple[bool, str]:
        return self.metrics.health(self.clock.now(), self.config.poll.interval)

    def start_web(self) -> WebServer | None:
        """Serve survey and unsubscribe links (and /healthz, /metrics) where the config says."""
        http = self.config.http
        if http is None or self.signer is None:
            return None
        from wcfollowup.web.app import make_app
        from wcfollowup.web.server import WebServer

        app = make_app(
            signer=self.signer,
            book=SurveyBook(self.state),
            clock=self.clock,
            store_name=self.config.store.name,
            health=self.health,
            metrics=self.metrics,
            max_body_bytes=http.max_body_bytes,
        )
        host, port = http.listen
        self._web = WebServer(
            app,
            host,
            port,
            max_connections=http.max_connections,
            request_timeout=http.request_timeout.total_seconds(),
        )
        self._web.start()
        log.info("listening for survey and unsubscribe links", address=f"{host}:{self._web.port}")
        return self._web

    def dispatch_once(self) -> DispatchResult:
        if not self._recovered:
            try:
                self.recover()
            except DatabaseUnavailable as exc:
                log.warning("could not recover yet; will try again", reason=str(exc))
                return DispatchResult()
            except SQLAlchemyError as exc:
                log.warning("could not recover yet; will try again", reason=database_problem(exc))
                return DispatchResult()
        if self.lock_lost is not None:
            return DispatchResult()
        try:
            result = self.dispatcher.dispatch(stop=self._yield_drain)
        except LockLost as exc:
            self._lost_lock(exc)
            return DispatchResult({"lock-lost": 1})
        if result.lock_lost is not None:
            self._lost_lock(LockLost(result.lock_lost))
        if result.outcomes:
            log.info("dispatch done", **result.outcomes)
        return result

    def _yield_drain(self) -> bool:
        return self._stopping.is_set() or self._reload_waiting.is_set()

    def _lost_lock(self, exc: LockLost) -> None:
        """Another daemon may own the steps now: claim nothing more, and let the service exit
        (``EXIT_LOCK_LOST``) so that systemd starts a fresh daemon."""
        self.lock_lost = str(exc)
        log.error(
            "STOPPING: this daemon lost its database lock; another daemon may be running. "
            "Nothing more is claimed; exiting so the service manager starts a fresh one",
            reason=str(exc),
        )

    def _refresh_gauges(self) -> None:
        """Steps by state and queue depth for /metrics: two COUNT queries, on each scrape."""
        try:
            self.metrics.set_step_counts(self.state.step_states())
            self.metrics.set_queue_depth(self.state.due_count(self.clock.now()))
        except Exception as exc:  # metrics must never stop dispatch
            log.warning("could not refresh metrics", error=type(exc).__name__)

    def check_store(self) -> StoreError | None:
        """Fail fast on a store that cannot be polled safely; anything else is retried later
        (and returned, for ``run --once``)."""
        try:
            self.poller.ensure_store()
        except (StoreTooOld, StoreIncompatible):
            raise
        except StoreError as exc:
            log.warning("store check failed; polling will keep trying", reason=str(exc))
            return exc
        return None

    def purge_once(self) -> Purge | None:
        """Drop personal data older than ``privacy.retention``; ``None`` when kept forever."""
        retention = self.config.privacy.retention
        if retention is None:
            return None
        try:
            now = self.clock.now()
            purged = purge_older_than(self.state.engine, now - retention, now)
        except Exception as exc:  # a failed purge is retried tomorrow; sending goes on
            log.warning("retention purge failed; will try again tomorrow", error=type(exc).__name__)
            return None
        if purged.total:
            log.info(
                "retention: personal data removed from old follow-ups",
                older_than=f"{retention.days}d",
                purged=describe_purge(purged),
                **purged.as_dict(),
            )
        return purged

    def run_once(self) -> Exception | None:
        """One poll and one dispatch; returns what stopped the work, for ``run --once``'s exit code.

        A store that failed the check is not polled: the poll's first request is the same one,
        and would only fail (and be retried) again. Due steps are still dispatched.
        """
        self.recover()
        problem: Exception | None = self.check_store()
        if problem is None:
            self.poll_once()
            problem = self.poll_problem
        self.dispatch_once()
        if self.lock_lost is not None:
            raise LockLost(self.lock_lost)
        return problem or self.gateway.refused or self.mailer.refused

    def start(self) -> None:
        """Recover, check the store, and start the poll and dispatch jobs in the background."""
        self.recover()
        self.check_store()
        self._scheduler = IntervalJobs(self._ticker)
        self._schedule_jobs()
        self.start_web()
        self._scheduler.start()
        log.info(
            "wcfollowup running",
            store=self.config.store.url,
            poll_every=str(self.config.poll.interval),
            dispatch_every=str(self.config.dispatch.interval),
        )

    def _schedule_jobs(self) -> None:
        assert self._scheduler is not None
        self._scheduler.add("poll", self._poll_job, self.config.poll.interval.total_seconds())
        self._scheduler.add(
            "dispatch", self._dispatch_job, self.config.dispatch.interval.total_seconds()
        )
        # Daily; not watched: a purge that fails is retried tomorrow, polls and sends go on.
        self._scheduler.add(
            "retention", self.purge_once, RETENTION_EVERY.total_seconds(), watched=False
        )

    def _poll_job(self) -> None:
        with self._poll_lock:
            result = self.poll_once()
        if result is not None and self._something_due():
            # A step this poll stored (or re-anchored) may be due now: send it now, not at the
            # dispatch job's next interval (a drain in progress runs once more right after).
            scheduler = self._scheduler
            if scheduler is not None:
                scheduler.wake("dispatch")

    def _something_due(self) -> bool:
        try:
            return self.state.due_count(self.clock.now()) > 0
        except SQLAlchemyError as exc:
            log.warning("could not count due steps", problem=database_problem(exc))
            return False

    def _dispatch_job(self) -> None:
        with self._dispatch_lock:
            self.dispatch_once()

    def shutdown(self) -> None:
        """Stop taking new work; wait for a running poll or dispatch (and its sends) to finish."""
        log.info("stopping: finishing in-flight work")
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self._web is not None:
            self._web.stop()
            self._web = None
        self.state.close()
        log.info("stopped")

    def reload(self, config: Config) -> None:
        """Apply a new config between jobs, without a restart.

        Everything the jobs read from the config is rebuilt from the new one. The database cannot
        change under a running daemon (its lock and state live there): that needs a restart, and
        the running config stays.
        """
        if config.database.sqlalchemy_url != self.config.database.sqlalchemy_url:
            raise ReloadRefused(
                "the database setting changed; restart wcfollowup to use a different database"
            )
        self._reload_waiting.set()
        try:
            self._apply(config)
        finally:
            self._reload_waiting.clear()
        scheduler = self._scheduler
        if scheduler is not None and self._something_due():
            scheduler.wake("dispatch")  # go on with a backlog the reload interrupted
        log.info("config reloaded", path=str(config.source_path), sequences=len(config.sequences))

    def _apply(self, config: Config) -> None:
        with self._poll_lock, self._dispatch_lock:
            intervals_changed = (config.poll.interval, config.dispatch.interval) != (
                self.config.poll.interval,
                self.config.dispatch.interval,
            )
            self._build_workers(config)
            if intervals_changed and self._scheduler is not None:
                self._schedule_jobs()

    def is_alive(self) -> bool:
        """True while polls and dispatches run and complete (on the monotonic clock).

        False when a job's thread died, or when poll or dispatch has not completed for twice
        its interval (plus slack), or is stuck in one run: systemd's watchdog should then
        restart us. A timer that pinged whatever the jobs did would hide exactly that.
        """
        scheduler = self._scheduler
        return scheduler is not None and scheduler.progressing()

    @property
    def jobs(self) -> IntervalJobs | None:
        """The running jobs (None before ``start``), with when each last ran."""
        return self._scheduler

    def overdue_jobs(self) -> list[str]:
        """The watched jobs without recent evidence of work (for the log)."""
        scheduler = self._scheduler
        return scheduler.overdue() if scheduler is not None else []

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.shutdown()

    def close(self) -> None:
        if self._web is not None:
            self._web.stop()
            self._web = None
        self.state.close()
