"""Survey answers: the first score for a survey step wins, and it goes in the message log.

The web listener records answers here; the dispatcher reads an order's score to decide guards
such as ``only_if: {survey_score_at_least: 4}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from wcfollowup.core.answers import SurveyAnswer
from wcfollowup.db.message_log import log_line
from wcfollowup.db.schema import survey_responses
from wcfollowup.db.state import StateStore

MAX_COMMENT = 2000


@dataclass(frozen=True, slots=True)
class SurveyResponse:
    order_id: int
    email: str
    score: int
    comment: str
    answered_at: datetime


class SurveyBook:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def record_survey_score(
        self, step_id: int, order_id: int, score: int, at: datetime
    ) -> SurveyAnswer:
        """Keep the first score for this survey; a replayed or second link changes nothing."""
        if not 1 <= score <= 5:
            raise ValueError(f"a survey score is 1 to 5, not {score}")
        try:
            with self.state.tx() as conn:
                existing = conn.execute(
                    select(survey_responses.c.score).where(survey_responses.c.step_id == step_id)
                ).first()
                if existing is not None:
                    return SurveyAnswer(recorded=False, score=int(existing[0]))
                row = self.state.step_row(conn, step_id)
                if row is None or row.order_id != order_id:
                    raise LookupError(f"no survey step {step_id} for order {order_id}")
                conn.execute(
                    insert(survey_responses).values(
                        step_id=step_id,
                        store_id=row.store_id,
                        order_id=order_id,
                        email=row.email,
                        score=score,
                        answered_at=at,
                    )
                )
                log_line(conn, row, "answered", at, reason=f"survey score {score}/5")
        except IntegrityError:  # a concurrent click on another score won the race
            with self.state.tx() as conn:
                winner = conn.execute(
                    select(survey_responses.c.score).where(survey_responses.c.step_id == step_id)
                ).scalar_one()
            return SurveyAnswer(recorded=False, score=int(winner))
        return SurveyAnswer(recorded=True, score=score)

    def add_survey_comment(self, step_id: int, comment: str, at: datetime) -> bool:
        """Store the optional comment once, after a score; an empty comment is not stored."""
        text = comment.strip()[:MAX_COMMENT]
        if not text:
            return False
        with self.state.tx() as conn:
            changed = conn.execute(
                update(survey_responses)
                .where(
                    survey_responses.c.step_id == step_id,
                    survey_responses.c.comment.is_(None),
                )
                .values(comment=text, commented_at=at)
            ).rowcount
            if changed:
                row = self.state.step_row(conn, step_id)
                if row is not None:
                    log_line(conn, row, "commented", at, reason=text[:200])
        return bool(changed)

    def unsubscribe(self, email: str, source: str, at: datetime) -> int:
        return self.state.unsubscribe(email, source, at)

    def response_for_order(self, store_id: int, order_id: int) -> SurveyResponse | None:
        """The order's latest survey answer: what guards and owner alerts read."""
        with self.state.tx() as conn:
            row = conn.execute(
                select(survey_responses)
                .where(
                    survey_responses.c.store_id == store_id,
                    survey_responses.c.order_id == order_id,
                )
                .order_by(survey_responses.c.answered_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return SurveyResponse(
            order_id=row.order_id,
            email=row.email,
            score=int(row.score),
            comment=row.comment or "",
            answered_at=row.answered_at,
        )
