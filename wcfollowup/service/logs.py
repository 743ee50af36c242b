"""Structured logs: JSON for journald, readable on a terminal, secrets never included.

Every line goes through one redacting pipeline: wcfollowup's own structlog events, and records
of stdlib loggers (uvicorn, APScheduler, urllib3, Python ``warnings``), which a root handler
renders with structlog's ``ProcessorFormatter``. Without that handler such records fall to
Python's last-resort handler and reach the journal as raw, unredacted text.

The redaction processor walks every value of every event, so a secret cannot slip out through
an exception message, an object's repr or a URL someone decided to log; the list of secrets
is the process-wide one in ``wcfollowup.common.redact``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from wcfollowup.common.redact import redact
from wcfollowup.common.redact import register_secrets as _register

# Libraries whose INFO/DEBUG lines are noise or carry request details (and keys): only their
# warnings and errors are logged. uvicorn's start-up chatter repeats what the daemon logs.
QUIET_LOGGERS = ("python_http_client", "urllib3", "requests", "apscheduler", "uvicorn")


class SecretRedactor:
    """A structlog processor: every string (and every object, as its text) redacted."""

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in list(event.items()):
            event[key] = self._clean(value)
        return event

    def _clean(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        # An exception or any other object would be rendered by its repr, unredacted.
        return redact(str(value))


_redactor = SecretRedactor()


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler this module installs (found again, and replaced, on reconfiguration).

    It writes to whatever ``sys.stderr`` is at the time of the record, so a replaced stderr
    (a test's capture, a closed terminal) never leaves it writing to a closed file.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(*, json: bool | None = None, level: int = logging.INFO) -> SecretRedactor:
    """Configure structlog and the stdlib root logger once; both print through the redactor."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            _redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(renderer, timestamper, level)
    return _redactor


def _route_stdlib_logging(renderer: Any, timestamper: Any, level: int) -> None:
    handler = _OurHandler()
    handler.setLevel(level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                timestamper,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Lower the root level only: a test's caplog may already have set it lower.
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    for name in QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        quiet.setLevel(max(level, logging.WARNING))
        # uvicorn's default logging config (any uvicorn started in this process without
        # log_config=None) gives its loggers their own raw stderr handler and stops them
        # propagating: they would bypass redaction.
        for child in (quiet, *_children(name)):
            child.handlers.clear()
            child.propagate = True
    # warnings.warn(...) becomes a record of the "py.warnings" logger, so it is redacted and
    # rendered like every other line instead of printed raw to stderr. Off first: something
    # (a test runner's catch_warnings) may have put back its own showwarning since last time,
    # and captureWarnings(True) alone would then do nothing.
    logging.captureWarnings(False)
    logging.captureWarnings(True)


def _children(name: str) -> list[logging.Logger]:
    prefix = name + "."
    return [
        logger
        for key, logger in logging.Logger.manager.loggerDict.items()
        if key.startswith(prefix) and isinstance(logger, logging.Logger)
    ]


def register_secrets(secrets: Iterable[str]) -> None:
    """Kept for callers of the old API: the list lives in ``wcfollowup.common.redact``."""
    _register(secrets)
