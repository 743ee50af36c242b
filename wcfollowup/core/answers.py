"""What recording a survey answer did: shared by the link listener and the state store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SurveyAnswer:
    """``recorded`` is False when the step already had a score; ``score`` is the one kept."""

    recorded: bool
    score: int
