"""What the SendGrid-compatible sink received, kept in memory for tests and the demo to inspect."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wcfollowup.core.clock import Clock


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    payload: dict[str, Any]
    message_id: str
    received_at: datetime

    @property
    def to(self) -> list[str]:
        return [
            recipient["email"]
            for personalization in self.payload.get("personalizations", [])
            for recipient in personalization.get("to", [])
        ]

    @property
    def subject(self) -> str:
        subject = self.payload.get("subject")
        if isinstance(subject, str) and subject:
            return subject
        for personalization in self.payload.get("personalizations", []):
            if personalization.get("subject"):
                return str(personalization["subject"])
        return ""

    def _content(self, kind: str) -> str:
        for block in self.payload.get("content", []):
            if block.get("type") == kind:
                return str(block.get("value", ""))
        return ""

    @property
    def text(self) -> str:
        return self._content("text/plain")

    @property
    def html(self) -> str:
        return self._content("text/html")

    @property
    def custom_args(self) -> dict[str, Any]:
        merged: dict[str, Any] = dict(self.payload.get("custom_args") or {})
        for personalization in self.payload.get("personalizations", []):
            merged.update(personalization.get("custom_args") or {})
        return merged

    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "received_at": self.received_at.isoformat(),
            "to": self.to,
            "subject": self.subject,
            "custom_args": self.custom_args,
            "categories": self.payload.get("categories", []),
            "text": self.text,
            "html": self.html,
        }


class MailSink:
    """Thread-safe: the server thread appends while the test thread reads."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()

    def record(self, payload: dict[str, Any], message_id: str) -> ReceivedMail:
        mail = ReceivedMail(payload, message_id, self.clock.now())
        with self._lock:
            self._messages.append(mail)
        return mail

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
