"""An email ready to send, independent of the provider."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    to_email: str
    to_name: str
    subject: str
    text: str
    html: str
    categories: tuple[str, ...] = ()
    custom_args: dict[str, str] = field(default_factory=dict)
