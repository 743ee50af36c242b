"""Structured logs: JSON for journald, readable on a terminal, secrets never included.

The redaction processor walks every value of every event, so a secret cannot slip out through
an exception message or a URL someone decided to log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from wcfollowup.redact import redact


class SecretRedactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(s for s in secrets if s)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in list(event.items()):
            event[key] = self._clean(value)
        return event

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.secrets)
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        return value


_redactor = SecretRedactor()


def configure_logging(*, json: bool | None = None, level: int = logging.INFO) -> SecretRedactor:
    """Configure structlog once; returns the redactor so secrets can be registered later."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Third-party loggers that would print request details (and keys) at DEBUG.
    for name in ("python_http_client", "urllib3", "requests", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return _redactor


def register_secrets(secrets: Iterable[str]) -> None:
    _redactor.secrets = tuple({*_redactor.secrets, *(s for s in secrets if s)})
