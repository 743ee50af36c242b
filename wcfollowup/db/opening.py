"""Open the state database at start-up, and say plainly what to do when that fails.

A database that cannot be opened (a damaged or foreign file, no write permission on it or its
folder, a full disk, a lock held by another program, PostgreSQL refusing the connection) used to
end in a 130-line traceback. Every command that opens the state goes through :func:`open_state`
instead: on failure it raises :class:`StateUnavailable`, whose message names the database and
the fix, and the command prints that one message and exits with code 9 (``exit_codes``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from wcfollowup.db.lock import AlreadyRunning
from wcfollowup.db.state import StateStore

if TYPE_CHECKING:
    from wcfollowup.config import Config

# (words in SQLite's message, what it means for the owner and what to do)
_SQLITE_ADVICE: Final = (
    (
        "file is not a database",
        "is not a SQLite database (another file is at this path, or it is encrypted)",
        "point database.path at the right file, or move this one aside to start a new one",
    ),
    (
        "malformed",
        "is damaged (corrupt)",
        "restore it from a backup, or salvage it with: sqlite3 {path} .recover | sqlite3 "
        "{path}.recovered (then use the recovered file)",
    ),
    (
        "readonly",
        "cannot be written",
        "give the user wcfollowup runs as write access to {path} and its folder {folder} (SQLite "
        "writes {name}-wal and {name}-shm next to it)",
    ),
    (
        "unable to open",
        "cannot be opened",
        "check that the folder {folder} exists and that the user wcfollowup runs as may write "
        "in it",
    ),
    (
        "disk is full",
        "cannot be written: the disk is full",
        "free space on the disk that holds {folder}",
    ),
    (
        "locked",
        "is locked by another program",
        "close whatever holds it (a backup, a sqlite3 shell) and start again",
    ),
    (
        "disk i/o error",
        "cannot be read or written (a disk I/O error)",
        "check the disk that holds {folder} (dmesg), then restore from a backup if needed",
    ),
)


FAULTS: Final = (SQLAlchemyError, sqlite3.Error, OSError)


class StateUnavailable(Exception):
    """The state database cannot be opened; the message names it and says what to do."""


def open_state(config: Config, *, daemon: bool = False) -> StateStore:
    """The state store for ``config``, migrated.

    ``daemon``: also take the one-daemon lock and make sure the database can be written, so a
    read-only file fails here, not in the middle of the first poll. (The owner's read-only
    commands, such as ``log``, still work on a database they may only read.)

    Raises :class:`StateUnavailable` for any database fault; ``AlreadyRunning`` (another
    daemon holds the lock) passes through unchanged.
    """
    try:
        state = StateStore(config.database.sqlalchemy_url)
    except FAULTS as exc:
        raise StateUnavailable(describe(config, exc)) from exc
    if not daemon:
        return state
    try:
        state.lock()
        _check_writable(state)
    except AlreadyRunning:
        state.close()
        raise
    except FAULTS as exc:
        state.close()
        raise StateUnavailable(describe(config, exc)) from exc
    return state


def _check_writable(state: StateStore) -> None:
    """Rewrite one row and roll back: SQLite refuses at once if the file is read-only.

    (DML, not DDL: Python's sqlite3 commits DDL outside the transaction.)
    """
    if state.dialect != "sqlite":
        return
    with state.engine.connect() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
        conn.rollback()


def describe(config: Config, exc: BaseException) -> str:
    """One message for the owner: which database, what is wrong, what to do."""
    problem = _first_line(exc)
    if config.database.path is None:
        shown = make_url(config.database.sqlalchemy_url).render_as_string(hide_password=True)
        return (
            f"the state database {shown} cannot be used: {problem}. Check that PostgreSQL is "
            "running and reachable, and the user, password and database name in database.url."
        )
    path = Path(config.database.sqlalchemy_url.removeprefix("sqlite:///"))
    lowered = problem.lower()
    if isinstance(exc, PermissionError) or "permission denied" in lowered:
        lowered = "readonly"
    for words, meaning, fix in _SQLITE_ADVICE:
        if words in lowered:
            todo = fix.format(path=path, folder=path.parent, name=path.name)
            return f"the state database {path} {meaning} ({problem}): {todo}."
    return f"the state database {path} cannot be used ({problem})."


def _first_line(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and background link."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__
