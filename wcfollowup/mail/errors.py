"""Mail failures, sorted by whether sending again could mail the customer twice."""

from __future__ import annotations


class MailError(Exception):
    """Base class; messages never contain the API key."""


class MailRejected(MailError):
    """A definite 4xx: the provider refused this message. Sending it again would fail again."""


class MailAuthError(MailError):
    """401/403: the API key is wrong or lacks the Mail Send permission. Pause and shout."""


class MailUnavailable(MailError):
    """The provider certainly did not accept the message (refused connection, 429, 5xx)."""


class MailUncertain(MailError):
    """The request may have reached the provider (timeout, dropped connection): never resend."""
