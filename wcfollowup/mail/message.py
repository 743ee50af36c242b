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
    # e.g. List-Unsubscribe / List-Unsubscribe-Post (RFC 8058), so mail apps show "Unsubscribe".
    headers: dict[str, str] = field(default_factory=dict)
    # A SendGrid unsubscribe group: SendGrid hosts the link and suppresses the address itself.
    asm_group_id: int | None = None
