"""Act on due steps: re-read the order, decide, send, and record the outcome.

The order of writes is what keeps "never twice" true: a step is ``claimed`` (nothing sent), then
``sending`` is committed immediately before the provider call, then the outcome and its log line
are committed together. A crash while ``sending`` leaves the step for ``recover_interrupted`` to
mark ``uncertain``; it is never sent again on its own.

When the database itself refuses a write (locked by another program, disk full), nothing is
lost and nothing doubles: an outcome that could not be recorded (a mail already accepted by
SendGrid) is kept in memory and written first on the next dispatch, and a step that could not be
handed back stays claimed until then. New steps are claimed only once the backlog is written.
If the daemon dies meanwhile, the next start marks those steps ``uncertain`` or ``pending``.

Every write of a claimed step is fenced by this daemon run's owner token (see ``StateStore``):
when one does not match, the step was cancelled or taken over by another daemon after this one
lost its lock, and this daemon lets it go without sending or recording anything for it. A
frequency cap is decided in the same transaction that moves the step to ``sending`` and counts
the messages in flight, so it holds however many workers send at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from jinja2 import TemplateError
from sqlalchemy.exc import SQLAlchemyError

from wcfollowup.common.emails import normalize_email
from wcfollowup.config import Config, StepConfig
from wcfollowup.core.clock import Clock
from wcfollowup.core.delivery import delivery_statuses
from wcfollowup.core.orders import EXIT_STATUSES
from wcfollowup.core.planning import find_step
from wcfollowup.core.shapes import tidy_order
from wcfollowup.db.coupons import CouponBook
from wcfollowup.db.lock import LockLost
from wcfollowup.db.state import ClaimedStep, StateStore, database_problem
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.engine.compose import Composer, NothingToSend
from wcfollowup.engine.coupon_issuer import CouponBusy, CouponIssuer, CouponRefused
from wcfollowup.engine.facts import FactsSource
from wcfollowup.engine.step_checks import StepChecks
from wcfollowup.engine.step_ref import StepRef
from wcfollowup.mail.errors import MailAuthError, MailRejected, MailUnavailable, MailUncertain
from wcfollowup.mail.sendgrid_mailer import SendGridMailer
from wcfollowup.render.renderer import Renderer, TemplateMissing
from wcfollowup.woo.errors import OrderNotFound, StoreAuthError, StoreError
from wcfollowup.woo.gateway import WooGateway

if TYPE_CHECKING:
    from wcfollowup.web.metrics import Metrics
    from wcfollowup.web.tokens import LinkSigner

log = structlog.get_logger("wcfollowup.dispatch")

RETRY_LATER = timedelta(minutes=5)
MAX_ATTEMPTS = 12
AUTH_PAUSE = timedelta(minutes=5)


class Paused(Exception):
    """A credential was refused: stop acting until someone fixes the config."""


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """A step's outcome the database refused to store; written before anything else is done."""

    step: ClaimedStep
    status: str
    recipient: str | None
    reason: str
    message_id: str | None
    cap_key: str | None


@dataclass
class DispatchResult:
    outcomes: dict[str, int] = field(default_factory=dict)
    # Why the lock was found lost while claiming (the steps in hand were still finished).
    lock_lost: str | None = None

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Dispatcher:
    def __init__(
        self,
        config: Config,
        gateway: WooGateway,
        mailer: SendGridMailer,
        state: StateStore,
        renderer: Renderer,
        clock: Clock,
        signer: LinkSigner | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.mailer = mailer
        self.state = state
        self.renderer = renderer
        self.clock = clock
        self.paused_until: datetime | None = None
        self.paused_reason = ""
        # Outcomes and hand-backs the database refused; retried at the start of each dispatch.
        self.unrecorded: dict[int, Unrecorded] = {}
        self.stranded: set[int] = set()
        self._backlog_lock = threading.Lock()
        self.completed_statuses = frozenset({"completed", *delivery_statuses(config.delivery)})
        self.metrics = metrics
        self.surveys = SurveyBook(state)
        self.coupons = CouponBook(state)
        self.checks = StepChecks(config, state, self.surveys, FactsSource(gateway))
        self.composer = Composer(
            config,
            gateway,
            renderer,
            signer,
            self.surveys,
            CouponIssuer(gateway, self.coupons, config.store.tz, clock),
        )

    def dispatch(self, stop: Callable[[], bool] | None = None) -> DispatchResult:
        """Send every step that is due, keeping all ``workers`` busy until none is left.

        One claim takes at most ``batch_size`` steps; the next is claimed as soon as fewer
        steps than workers are left in hand, so a backlog drains at the workers' pace rather
        than one batch per dispatch interval. Claiming stops when nothing is due, when a
        credential was refused (paused), when the database refuses writes (the backlog is
        written before each claim, as before), when the lock is found lost (``lock_lost``),
        or when ``stop()`` says so (shutdown, a reload waiting); the steps already claimed are
        still acted on, each write fenced as before.
        """
        result = DispatchResult()
        workers = self.config.dispatch.workers
        batch_size = self.config.dispatch.batch_size
        in_hand: set[Future[str]] = set()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dispatch") as pool:
            claiming = True
            while claiming or in_hand:
                if claiming and len(in_hand) < workers:
                    claimed = self._claim(batch_size, result, stop)
                    claiming = bool(claimed)
                    in_hand |= {pool.submit(self._run_step, step) for step in claimed}
                    if not in_hand:
                        break
                done, in_hand = wait(in_hand, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    result.add(outcome)
                    if outcome in ("paused", "database-unavailable"):
                        claiming = False
        return result

    def _claim(
        self, limit: int, result: DispatchResult, stop: Callable[[], bool] | None
    ) -> list[ClaimedStep]:
        """The next due steps, or none when claiming must stop."""
        now = self.clock.now()
        if stop is not None and stop():
            return []
        if self.paused_until is not None and now < self.paused_until:
            return []
        if not self._write_backlog():
            result.add("database-unavailable")
            return []
        try:
            return self.state.claim_due(now, limit)
        except LockLost as exc:
            result.lock_lost = str(exc)
            result.add("lock-lost")
            return []
        except SQLAlchemyError as exc:
            log.error("could not look for due steps", problem=database_problem(exc))
            result.add("database-unavailable")
            return []

    # -- one step -------------------------------------------------------------------------

    def _run_step(self, step: ClaimedStep) -> str:
        bound = log.bind(order_id=step.order_id, sequence=step.sequence, step=step.step)
        if self.paused_until is not None and self.clock.now() < self.paused_until:
            self._hand_back(step.id)
            return "paused"
        try:
            return self._act(step, bound)
        except Paused as exc:
            self._pause(str(exc))
            return "paused"
        except SQLAlchemyError as exc:
            # Before the send (the only later write, the outcome, never raises): nothing went out.
            bound.error("step put back: the database refused it", problem=database_problem(exc))
            self._hand_back(step.id)
            return "database-unavailable"
        except Exception:  # never let one bad order stop the queue
            bound.exception("step crashed")
            return self._after_crash(step, bound)

    def _act(self, step: ClaimedStep, bound: Any) -> str:
        now = self.clock.now()
        step_config = self._step_config(step)
        if step_config is None:
            return self._finish(
                step, "cancelled", None, reason="this step is no longer in the config", bound=bound
            )
        try:
            # Every later reader may rely on the shapes (billing a dict, lists of dicts).
            order = tidy_order(self.gateway.get_order(step.order_id))
        except OrderNotFound:
            return self._finish(
                step, "skipped", None, reason="the order was deleted from the store", bound=bound
            )
        except StoreAuthError as exc:
            self.state.release(step.id, now)
            raise Paused(str(exc)) from None
        except StoreError as exc:
            return self._retry_later(step, f"could not re-read the order: {exc}", bound)

        status = str(order.get("status", ""))
        if status in EXIT_STATUSES:
            return self._finish(step, "cancelled", None, reason=f"order is {status}", bound=bound)
        if status not in self.completed_statuses:
            return self._finish(
                step,
                "skipped",
                None,
                reason=f"order is no longer completed (now {status})",
                bound=bound,
            )
        billing = order.get("billing") or {}
        to_owner = step_config.to == "owner"
        raw_email = str(billing.get("email") or "").strip()
        recipient = normalize_email(raw_email)
        if recipient is None and not to_owner:
            shown = raw_email[:80] or "empty"
            return self._finish(
                step,
                "skipped",
                raw_email,
                reason=f"order has no valid billing email ({shown})",
                bound=bound,
            )
        if to_owner:
            recipient = self.composer.owner_address()
        assert recipient is not None
        if not to_owner and self.state.is_unsubscribed(recipient):
            return self._finish(
                step, "cancelled", recipient, reason="the recipient unsubscribed", bound=bound
            )
        opening = self.checks.window_opening(step_config, order, now)
        if opening > now:
            self.state.release(step.id, now, due_at=opening)
            bound.info("step held for its send window", opens=opening.isoformat())
            return "held"
        guard = self.checks.guard(step_config, order, step.store_id, step.order_id)
        if guard is not None:
            return self._finish(step, "skipped", recipient, reason=guard, bound=bound)
        cap_key = self.checks.cap_key(step_config)
        # A first look, before a coupon is made for nothing; ``mark_sending`` decides.
        capped = None if to_owner else self.checks.capped(step_config, recipient, cap_key, now)
        if capped is not None:
            return self._finish(step, "skipped", recipient, reason=capped, bound=bound)

        ref = StepRef(step.id, step.store_id, step.order_id, step.sequence, step.step)
        try:
            composed = self.composer.compose(ref, step_config, order, recipient, now)
        except NothingToSend as exc:
            return self._finish(step, "skipped", recipient, reason=str(exc), bound=bound)
        except CouponBusy as exc:
            return self._retry_later(step, str(exc), bound)
        except CouponRefused as exc:
            return self._finish(step, "failed", recipient, reason=str(exc), bound=bound)
        except StoreAuthError as exc:
            self.state.release(step.id, now)
            raise Paused(str(exc)) from None
        except StoreError as exc:
            return self._retry_later(step, f"the store did not answer: {exc}", bound)
        except (TemplateError, TemplateMissing, KeyError, ValueError, TypeError) as exc:
            return self._finish(
                step,
                "failed",
                recipient,
                reason=f"template '{step_config.template}' failed: {exc}",
                bound=bound,
            )

        # The owner's copies count against no customer's cap.
        cap = None if to_owner else self.checks.cap_hold(step_config, recipient, cap_key, now)
        clearance = self.state.mark_sending(step.id, self.clock.now(), cap=cap)
        if not clearance.ours:
            return self._let_go(step, "not sent", None, bound)
        if clearance.capped is not None:
            assert step_config.cap is not None
            reason = self.checks.cap_reason(step_config, cap_key, clearance.capped)
            return self._finish(step, "skipped", recipient, reason=reason, bound=bound)
        try:
            message_id = self.mailer.send(composed.email)
        except MailUnavailable as exc:
            return self._retry_later(step, str(exc), bound)
        except MailAuthError as exc:
            self.state.release(step.id, self.clock.now())
            raise Paused(str(exc)) from None
        except MailRejected as exc:
            return self._finish(step, "failed", recipient, reason=str(exc), bound=bound)
        except MailUncertain as exc:
            return self._finish(step, "uncertain", recipient, reason=str(exc), bound=bound)
        reason = ""
        if composed.coupon is not None:
            reason = f"coupon {composed.coupon.code.upper()}"
        return self._finish(
            step,
            "sent",
            recipient,
            message_id=message_id,
            bound=bound,
            cap_key=cap_key,
            reason=reason,
        )

    # -- helpers --------------------------------------------------------------------------

    def _step_config(self, step: ClaimedStep) -> StepConfig | None:
        return find_step(self.config.sequences, step.sequence, step.step)

    def _finish(
        self,
        step: ClaimedStep,
        status: str,
        recipient: str | None,
        *,
        bound: Any,
        reason: str = "",
        message_id: str | None = None,
        cap_key: str | None = None,
    ) -> str:
        outcome = Unrecorded(step, status, recipient, reason, message_id, cap_key)
        try:
            recorded = self._record(outcome)
        except SQLAlchemyError as exc:
            with self._backlog_lock:
                self.unrecorded[step.id] = outcome
            bound.error(
                "step " + status + " but not yet recorded: the database refused the write; "
                "it is kept and written as soon as the database accepts it",
                status=status,
                problem=database_problem(exc),
            )
            return status
        if not recorded:
            return self._let_go(step, status, message_id, bound)
        bound.info(
            "step " + status, status=status, reason=reason or None, provider_message_id=message_id
        )
        if self.metrics is not None:
            self.metrics.message_finished(kind=step.kind, status=status)
        return status

    @staticmethod
    def _let_go(step: ClaimedStep, status: str, message_id: str | None, bound: Any) -> str:
        """The step is no longer this daemon's: cancelled meanwhile, or taken over by another
        daemon after this one lost its lock. Nothing more is written or sent for it."""
        bound.warning(
            "step let go: it is no longer this daemon's (cancelled, or taken over after a lost "
            "lock); its outcome here is not recorded",
            outcome=status,
            provider_message_id=message_id,
            step_id=step.id,
        )
        return "let-go"

    def _record(self, outcome: Unrecorded) -> bool:
        return self.state.finish(
            outcome.step,
            outcome.status,
            self.clock.now(),
            recipient=outcome.recipient,
            message_id=outcome.message_id,
            reason=outcome.reason,
            cap_key=outcome.cap_key,
        )

    def _hand_back(self, step_id: int) -> None:
        """Make a claimed step due again; if even that write fails, the next dispatch does it."""
        now = self.clock.now()
        try:
            self.state.release_if_claimed(step_id, now, due_at=now)
        except SQLAlchemyError:
            with self._backlog_lock:
                self.stranded.add(step_id)

    def _write_backlog(self) -> bool:
        """Write what the database refused earlier; False (and logged) while it still refuses."""
        with self._backlog_lock:
            outcomes = list(self.unrecorded.values())
            stranded = sorted(self.stranded)
        if not outcomes and not stranded:
            return True
        try:
            for outcome in outcomes:
                recorded = self._record(outcome)
                with self._backlog_lock:
                    self.unrecorded.pop(outcome.step.id, None)
                if not recorded:
                    self._let_go(outcome.step, outcome.status, outcome.message_id, log)
                    continue
                log.info(
                    "step " + outcome.status + " recorded after the database recovered",
                    order_id=outcome.step.order_id,
                    sequence=outcome.step.sequence,
                    step=outcome.step.step,
                    status=outcome.status,
                    provider_message_id=outcome.message_id,
                )
                if self.metrics is not None:
                    self.metrics.message_finished(kind=outcome.step.kind, status=outcome.status)
            for step_id in stranded:
                now = self.clock.now()
                self.state.release_if_claimed(step_id, now, due_at=now)
                with self._backlog_lock:
                    self.stranded.discard(step_id)
        except SQLAlchemyError as exc:
            with self._backlog_lock:
                waiting = len(self.unrecorded) + len(self.stranded)
            log.error(
                "the database still refuses writes; nothing new is sent until it accepts them",
                problem=database_problem(exc),
                steps_waiting=waiting,
            )
            return False
        return True

    def _after_crash(self, step: ClaimedStep, bound: Any) -> str:
        """Retry a step that crashed before sending; one that crashed while sending may have
        gone out, so it becomes ``uncertain`` (if even that write fails, the step stays in
        ``sending`` and the next start marks it)."""
        now = self.clock.now()
        try:
            if step.attempts >= MAX_ATTEMPTS and self.state.finish(
                step,
                "failed",
                now,
                recipient=None,
                reason=f"gave up after {step.attempts} attempts that ended in an "
                "unexpected error (see the daemon's log)",
                held=("claimed",),
            ):
                return "failed"
            if self.state.release_if_claimed(step.id, now, due_at=now + RETRY_LATER):
                return "error"
            if not self.state.finish(
                step,
                "uncertain",
                now,
                recipient=None,
                reason="an unexpected error happened while sending; it may or may not have "
                "gone out, so it will not be sent again automatically",
                held=("sending",),
            ):
                return self._let_go(step, "uncertain", None, bound)
        except Exception:
            bound.exception("could not record the crashed step; the next start will")
        return "uncertain"

    def _retry_later(self, step: ClaimedStep, reason: str, bound: Any) -> str:
        if step.attempts >= MAX_ATTEMPTS:
            return self._finish(
                step,
                "failed",
                None,
                bound=bound,
                reason=f"gave up after {step.attempts} attempts: {reason}",
            )
        self.state.release(step.id, self.clock.now(), due_at=self.clock.now() + RETRY_LATER)
        bound.warning("step postponed", reason=reason, attempt=step.attempts)
        return "postponed"

    def _pause(self, reason: str) -> None:
        self.paused_until = self.clock.now() + AUTH_PAUSE
        self.paused_reason = reason
        log.error(
            "PAUSED: a credential was refused; nothing is sent until it is fixed",
            reason=reason,
            retry_at=self.paused_until.isoformat(),
        )
