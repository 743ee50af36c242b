"""The daemon: builds the adapters from the config and runs the poll and dispatch jobs.

APScheduler 3 only decides *when we look* (interval ticks on real time, one instance each,
coalesced); what is due is decided by the injected clock and the outbox in the database, so
``--once`` and the tests run exactly the code the scheduler runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import SQLAlchemyError

from wcfollowup.clock import Clock, SystemClock
from wcfollowup.config import Config
from wcfollowup.db.lock import AlreadyRunning
from wcfollowup.db.state import DatabaseUnavailable, StateStore, database_problem
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.engine.dispatcher import Dispatcher, DispatchResult
from wcfollowup.engine.poller import Poller, PollResult
from wcfollowup.logs import register_secrets
from wcfollowup.mail.sendgrid_mailer import SendGridMailer
from wcfollowup.metrics import Metrics
from wcfollowup.privacy import Purge, describe_purge, purge_older_than
from wcfollowup.render import Renderer
from wcfollowup.woo.errors import StoreAuthError, StoreError, StoreIncompatible, StoreTooOld
from wcfollowup.woo.gateway import WooGateway

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from wcfollowup.tokens import LinkSigner
    from wcfollowup.web.server import WebServer

log = structlog.get_logger("wcfollowup.daemon")

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
    ) -> None:
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
        # Before the lock: a missing key must not leave the database locked.
        self.signer = make_signer(config)
        self.state = StateStore(config.database.sqlalchemy_url)
        try:
            self.state.lock()
        except AlreadyRunning:
            self.state.close()
            raise
        self._sleep = sleep
        self.metrics = Metrics(started_at=self.clock.now())
        self._web: WebServer | None = None
        self.metrics.before_scrape = self._refresh_gauges
        self._poll_lock = threading.Lock()
        self._dispatch_lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self._build_workers(config)
        self._recovered = False

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
        )
        self.mailer = SendGridMailer(
            mail.api_key.get_secret_value(),
            from_email=mail.from_email,
            from_name=mail.from_name,
            host=mail.host,
            timeout=mail.request_timeout.total_seconds(),
            sleep=self._sleep,
        )
        self.poller = Poller(self.gateway, self.state, config, self.clock)
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
        released, uncertain = self.state.recover_interrupted(self.clock.now())
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
            self._poll_failed(started, str(exc))
            return None
        except (StoreError, DatabaseUnavailable) as exc:
            log.warning("poll failed; will try again next interval", reason=str(exc))
            self._poll_failed(started, str(exc))
            return None
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

    def _poll_failed(self, started: float, reason: str) -> None:
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
        result = self.dispatcher.dispatch()
        if result.outcomes:
            log.info("dispatch done", **result.outcomes)
        return result

    def _refresh_gauges(self) -> None:
        """Steps by state and queue depth for /metrics: two COUNT queries, on each scrape."""
        try:
            self.metrics.set_step_counts(self.state.step_states())
            self.metrics.set_queue_depth(self.state.due_count(self.clock.now()))
        except Exception as exc:  # metrics must never stop dispatch
            log.warning("could not refresh metrics", error=type(exc).__name__)

    def check_store(self) -> None:
        """Fail fast on a store that cannot be polled safely; anything else is retried later."""
        try:
            self.poller.ensure_store()
        except (StoreTooOld, StoreIncompatible):
            raise
        except StoreError as exc:
            log.warning("store check failed; polling will keep trying", reason=str(exc))

    def purge_once(self) -> Purge | None:
        """Drop personal data older than ``privacy.retention``; ``None`` when kept forever."""
        retention = self.config.privacy.retention
        if retention is None:
            return None
        try:
            purged = purge_older_than(self.state.engine, self.clock.now() - retention)
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

    def run_once(self) -> None:
        self.recover()
        self.check_store()
        self.poll_once()
        self.dispatch_once()

    def start(self) -> None:
        """Recover, check the store, and start the poll and dispatch jobs in the background."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self.recover()
        self.check_store()
        self._scheduler = BackgroundScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        )
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
        for job_id, func, interval in (
            ("poll", self._poll_job, self.config.poll.interval),
            ("dispatch", self._dispatch_job, self.config.dispatch.interval),
            ("retention", self.purge_once, RETENTION_EVERY),
        ):
            self._scheduler.add_job(
                func,
                "interval",
                id=job_id,
                name=job_id,
                seconds=interval.total_seconds(),
                next_run_time=_now_for_apscheduler(),
                replace_existing=True,
            )

    def _poll_job(self) -> None:
        with self._poll_lock:
            self.poll_once()

    def _dispatch_job(self) -> None:
        with self._dispatch_lock:
            self.dispatch_once()

    def shutdown(self) -> None:
        """Stop taking new work; wait for a running poll or dispatch (and its sends) to finish."""
        log.info("stopping: finishing in-flight work")
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
        with self._poll_lock, self._dispatch_lock:
            intervals_changed = (config.poll.interval, config.dispatch.interval) != (
                self.config.poll.interval,
                self.config.dispatch.interval,
            )
            self._build_workers(config)
            if intervals_changed and self._scheduler is not None:
                self._schedule_jobs()
        log.info("config reloaded", path=str(config.source_path), sequences=len(config.sequences))

    def is_alive(self) -> bool:
        """False when the scheduler thread died: systemd's watchdog should then restart us."""
        scheduler = self._scheduler
        return scheduler is not None and scheduler.running

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


def signing_key_path(config: Config) -> Path:
    """Where the generated link-signing key lives: the state folder.

    systemd's ``StateDirectory=`` sets ``$STATE_DIRECTORY``; otherwise the SQLite database's
    folder. A PostgreSQL setup without either must give ``http.signing_key``.
    """
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_dir:
        return Path(state_dir) / "signing.key"
    if config.database.path is not None:
        return Path(config.database.path).parent / "signing.key"
    raise KeyUnavailable(
        "survey and unsubscribe links need a signing key: set http.signing_key in the config "
        "(e.g. ${WCF_SIGNING_KEY}, 32+ random characters), or run under systemd with "
        "StateDirectory= so wcfollowup can generate one"
    )


def make_signer(config: Config) -> LinkSigner | None:
    from wcfollowup.tokens import LinkSigner, load_or_create_key

    if config.http is None:
        return None
    if config.http.signing_key is not None:
        key = config.http.signing_key.get_secret_value().encode("utf-8")
    else:
        key = load_or_create_key(signing_key_path(config))
    register_secrets([key.hex()] if config.http.signing_key is None else [key.decode()])
    return LinkSigner(key)


class KeyUnavailable(Exception):
    """No signing key is configured and there is no state folder to keep a generated one."""


def _now_for_apscheduler() -> datetime:
    """APScheduler runs on the wall clock; "start now" means the real now."""
    return datetime.now().astimezone()
