"""The daemon's web listener: survey and unsubscribe pages, /healthz and /metrics.

This package module holds only the contract with the database (``WebBook``, ``SurveyAnswer``) so
the state store can implement it without importing Starlette or uvicorn; the app lives in
``wcfollowup.web.app`` (``make_app``) and the listener in ``wcfollowup.web.server`` (``WebServer``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from wcfollowup.core.answers import SurveyAnswer

__all__ = ["ONE_CLICK_SOURCE", "UNSUBSCRIBE_SOURCE", "SurveyAnswer", "WebBook"]

# The ``source`` recorded with an unsubscribe, so the log can tell the two routes apart.
UNSUBSCRIBE_SOURCE = "unsubscribe link"
ONE_CLICK_SOURCE = "one-click unsubscribe"


class WebBook(Protocol):
    """What the web pages need from the database (implemented by the state store)."""

    def record_survey_score(
        self, step_id: int, order_id: int, score: int, at: datetime
    ) -> SurveyAnswer:
        """Keep the first score for this survey step; later ones change nothing."""
        ...

    def add_survey_comment(self, step_id: int, comment: str, at: datetime) -> bool:
        """Store the comment once; False if there is no score yet or a comment already."""
        ...

    def unsubscribe(self, email: str, source: str, at: datetime) -> int:
        """Suppress the address and cancel its pending steps; returns how many were cancelled."""
        ...
