"""The daemon: builds the adapters from the config and runs the poll and dispatch jobs.

APScheduler 3 only decides *when we look* (interval ticks on real time, one instance each,
coalesced); what is due is decided by the injected clock and the outbox in the database, so
``--once`` and the tests run exactly the code the scheduler runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from wcfollowup.clock import Clock, SystemClock
from wcfollowup.config import Config
from wcfollowup.db.lock import AlreadyRunning
from wcfollowup.db.state import StateStore
from wcfollowup.engine.dispatcher import Dispatcher, DispatchResult
from wcfollowup.engine.poller import Poller, PollResult
from wcfollowup.logs import register_secrets
from wcfollowup.mail.sendgrid_mailer import SendGridMailer
from wcfollowup.render import Renderer
from wcfollowup.woo.errors import StoreAuthError, StoreError, StoreIncompatible, StoreTooOld
from wcfollowup.woo.gateway import WooGateway

log = structlog.get_logger("wcfollowup.daemon")


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
        self.state = StateStore(config.database.sqlalchemy_url)
        try:
            self.state.lock()
        except AlreadyRunning:
            self.state.close()
            raise
        self.gateway = WooGateway(
            store.url,
            store.consumer_key.get_secret_value(),
            store.consumer_secret.get_secret_value(),
            timeout=store.request_timeout.total_seconds(),
            verify=store.verify_tls,
            sleep=sleep,
        )
        self.mailer = SendGridMailer(
            mail.api_key.get_secret_value(),
            from_email=mail.from_email,
            from_name=mail.from_name,
            host=mail.host,
            timeout=mail.request_timeout.total_seconds(),
            sleep=sleep,
        )
        self.poller = Poller(self.gateway, self.state, config, self.clock)
        self.dispatcher = Dispatcher(
            config,
            self.gateway,
            self.mailer,
            self.state,
            Renderer(config.templates_dir),
            self.clock,
        )
        self._recovered = False

    # -- the jobs ---------------------------------------------------------------------------

    def recover(self) -> None:
        released, uncertain = self.state.recover_interrupted(self.clock.now())
        self._recovered = True
        if released or uncertain:
            log.warning(
                "recovered after an interrupted run", released=released, uncertain=uncertain
            )

    def poll_once(self) -> PollResult | None:
        try:
            result = self.poller.poll()
        except (StoreTooOld, StoreIncompatible):
            raise
        except StoreAuthError as exc:
            log.error("PAUSED polling: the store refused the API keys", reason=str(exc))
            return None
        except StoreError as exc:
            log.warning("poll failed; will try again next interval", reason=str(exc))
            return None
        log.info(
            "poll done",
            requests=result.requests,
            orders=result.orders_seen,
            enrolled=result.enrolled,
            cancelled=result.cancelled,
            cursor=result.cursor.isoformat(),
        )
        return result

    def dispatch_once(self) -> DispatchResult:
        if not self._recovered:
            self.recover()
        result = self.dispatcher.dispatch()
        if result.outcomes:
            log.info("dispatch done", **result.outcomes)
        return result

    def check_store(self) -> None:
        """Fail fast on a store that cannot be polled safely; anything else is retried later."""
        try:
            self.poller.ensure_store()
        except (StoreTooOld, StoreIncompatible):
            raise
        except StoreError as exc:
            log.warning("store check failed; polling will keep trying", reason=str(exc))

    def run_once(self) -> None:
        self.recover()
        self.check_store()
        self.poll_once()
        self.dispatch_once()

    def run_forever(self, stop: threading.Event) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.recover()
        self.check_store()
        scheduler = BackgroundScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        )
        scheduler.add_job(
            self.poll_once,
            "interval",
            id="poll",
            name="poll",
            seconds=self.config.poll.interval.total_seconds(),
            next_run_time=_now_for_apscheduler(),
        )
        scheduler.add_job(
            self.dispatch_once,
            "interval",
            id="dispatch",
            name="dispatch",
            seconds=self.config.dispatch.interval.total_seconds(),
            next_run_time=_now_for_apscheduler(),
        )
        scheduler.start()
        log.info(
            "wcfollowup running",
            store=self.config.store.url,
            poll_every=str(self.config.poll.interval),
            dispatch_every=str(self.config.dispatch.interval),
        )
        try:
            stop.wait()
        finally:
            log.info("stopping: finishing in-flight work")
            scheduler.shutdown(wait=True)
            self.state.close()
            log.info("stopped")

    def close(self) -> None:
        self.state.close()


def _now_for_apscheduler() -> datetime:
    """APScheduler runs on the wall clock; "start now" means the real now."""
    return datetime.now().astimezone()
