"""Whether a due step may go out now: its send window, ``only_if``/``skip_if``, its frequency cap.

The dispatcher asks these questions of a claimed step after re-reading its order and before
composing anything (a coupon is never made for a step that would be held or skipped). Kept
apart from the dispatcher, whose job is the order of writes that keeps "never twice" true: this
module only answers, and writes nothing. The cap asked here is a first look; the final word is
``StateStore.mark_sending``, which counts the messages in flight in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wcfollowup.config import Config, StepConfig
from wcfollowup.core.conditions import describe, evaluate, explain, needs_survey
from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.planning import Timing, window_timezone
from wcfollowup.core.windows import next_opening
from wcfollowup.db.state import CapHold, StateStore
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.engine.facts import FactsSource


class StepChecks:
    """The window, condition and cap checks of the steps of one config."""

    def __init__(
        self, config: Config, state: StateStore, surveys: SurveyBook, facts: FactsSource
    ) -> None:
        self.config = config
        self.state = state
        self.surveys = surveys
        self.facts = facts

    def window_opening(self, step: StepConfig, order: dict[str, Any], now: datetime) -> datetime:
        """A retried or late step still respects its window: no emails at 3 a.m."""
        window = step.effective_window(self.config.send_window)
        if window is None:
            return now
        snapshot = OrderSnapshot.from_wc(order)
        timing = Timing(store_tz=self.config.store.tz, default_window=self.config.send_window)
        return next_opening(now, window, window_timezone(window, snapshot, timing))

    def guard(
        self, step: StepConfig, order: dict[str, Any], store_id: int, order_id: int
    ) -> str | None:
        """``only_if`` / ``skip_if`` against the order as it is now; a reason if it blocks."""
        if step.only_if is None and step.skip_if is None:
            return None
        score = None
        if needs_survey(step.only_if) or needs_survey(step.skip_if):
            response = self.surveys.response_for_order(store_id, order_id)
            score = response.score if response is not None else None
        facts = self.facts.facts(order, [step.only_if, step.skip_if], survey_score=score)
        if step.only_if is not None and not evaluate(step.only_if, facts):
            return f"only_if not met: {explain(step.only_if, facts)}"
        if step.skip_if is not None and evaluate(step.skip_if, facts):
            return f"skip_if met: {describe(step.skip_if)}"
        return None

    @staticmethod
    def cap_key(step: StepConfig) -> str:
        if step.cap is not None and step.cap.key:
            return step.cap.key
        return step.template

    def capped(self, step: StepConfig, recipient: str, cap_key: str, now: datetime) -> str | None:
        cap = step.cap
        if cap is None:
            return None
        since = now - cap.per if cap.per is not None else None
        sent = self.state.sent_count(recipient, cap_key, since)
        if sent < cap.max:
            return None
        return self.cap_reason(step, cap_key, sent)

    @staticmethod
    def cap_hold(step: StepConfig, recipient: str, cap_key: str, now: datetime) -> CapHold:
        """What ``mark_sending`` counts and holds for a customer's message of this step."""
        if step.cap is None:
            return CapHold(recipient, cap_key)
        per = step.cap.per
        since = now - per if per is not None else None
        return CapHold(recipient, cap_key, step.cap.max, since)

    @staticmethod
    def cap_reason(step: StepConfig, cap_key: str, used: int) -> str:
        """Sent, or being sent right now by another worker: both count against the cap."""
        assert step.cap is not None
        per = step.cap.per
        period = f"in the last {per}" if per is not None else "ever"
        return (
            f"frequency cap: {used} '{cap_key}' message(s) already sent (or being sent) to this "
            f"address {period}"
        )
