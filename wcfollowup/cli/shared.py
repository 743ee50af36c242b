"""What every command shares: the ``--config``/``--json``/``--since`` options, loading the
config, opening the state database, parsing owner times, and turning a failure into one line
on stderr plus its exit code.

Kept here, not in each command module, so that every command fails the same way (the exit
codes are documented for cron and systemd) and a new command cannot invent its own. Heavy
imports stay inside the functions: this module is imported for ``--help``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from wcfollowup.service.exit_codes import ExitCode, exit_code_for

if TYPE_CHECKING:
    from wcfollowup.config import Config
    from wcfollowup.db.state import StateStore

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path to the YAML config.", envvar="WCFOLLOWUP_CONFIG"),
]
SinceHelp = "A date in store time (2026-11-01) or a duration meaning the last N (7d, 12h)."
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def load_or_exit(path: Path) -> Config:
    """The config, or every problem on stderr and exit code 2: nothing starts half-configured."""
    from wcfollowup.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(str(problem), file=sys.stderr)
        print(f"{len(error.problems)} problem(s) in {path}; nothing was started.", file=sys.stderr)
        raise typer.Exit(ExitCode.CONFIG) from None


def fail(problem: BaseException, code: ExitCode) -> NoReturn:
    """One line on stderr (cron mails it) and a distinct exit code; never a traceback."""
    from wcfollowup.common.redact import redact

    print(f"error: {redact(str(problem))}", file=sys.stderr)
    raise typer.Exit(code)


def open_state(cfg: Config) -> StateStore:
    """The state database, or one clear message and exit code 9 when it cannot be used."""
    from wcfollowup.db.opening import StateUnavailable
    from wcfollowup.db.opening import open_state as open_store

    try:
        return open_store(cfg)
    except StateUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(ExitCode.DATABASE_UNAVAILABLE) from None


def current_time() -> datetime:
    """The real time, for commands that stamp what they change or read "the last 7d"."""
    from wcfollowup.core.clock import SystemClock

    return SystemClock().now()


def time_point(
    text: str | None, at: datetime, cfg: Config, *, end: bool = False
) -> datetime | None:
    """An owner's ``--since``/``--until`` in store time; a bad one is a usage error (exit 2)."""
    from wcfollowup.tools.timespec import BadTime, parse_point

    if text is None:
        return None
    try:
        return parse_point(text, at, cfg.store.tz, end=end)
    except BadTime as exc:
        raise typer.BadParameter(str(exc)) from None


def store_failed(exc: Exception) -> NoReturn:
    """The store could not be read: the exit code says why (keys, certificate, down)."""
    from wcfollowup.common.redact import redact

    print(f"error: the store could not be read: {redact(str(exc))}", file=sys.stderr)
    raise typer.Exit(exit_code_for(exc))
