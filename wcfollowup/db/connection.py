"""The database a ``StateStore`` works on: its engine, the errors an owner is told about, and
what every part of the store shares (``StateBase``).

Kept apart from the tables' SQL so each part of ``StateStore`` (stores, enrolments, outbox,
message log) sees just the engine, its dialect, this run's owner token and one-transaction
helper, and so the SQLite pragmas and the driver's time format have one home.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from wcfollowup.db.lock import KEEPALIVES, DaemonLock
from wcfollowup.db.migrate import upgrade


class DatabaseUnavailable(Exception):
    """The database refused a write or a read (locked, full, gone); nothing was half-done."""


def database_problem(exc: BaseException) -> str:
    """What an owner can do about a database error, without SQL or parameters (they can hold
    email addresses)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "locked" in text or "busy" in text:
        return (
            "the database is locked by another program (a backup, an editor, a second "
            "wcfollowup?); retrying until it is released"
        )
    if "full" in text or "no space" in text:
        return (
            "the disk holding the database is full; free some space, wcfollowup retries on its own"
        )
    if "readonly" in text or "read-only" in text:
        return "the database is read-only; check its file permissions and the disk's mount"
    return f"the database could not be used ({type(exc).__name__}); retrying"


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


# Pieces of SQLite time text, for _sqlite_value: "HH:MM:" for each minute of a day, "SS.000000"
# for each second, and "YYYY-MM-DD " for each day met so far (a backlog spans a few hundred).
_MINUTE_TEXT = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_SECOND_TEXT = [f"{s:02d}.000000" for s in range(60)]
_DAY_TEXT: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_FAST_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)  # a float timestamp still counts whole seconds


def _sqlite_value(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage format, so its reads parse what we wrote.

    This runs twice for every order a backlog enrols, on the poll thread, so it is built from
    cached pieces: half the cost of ``isoformat`` on an aware datetime.
    """
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if not _EPOCH <= value < _FAST_UNTIL:
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    day, second_of_day = divmod(int(value.timestamp()), 86_400)
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        prefix = _DAY_TEXT[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + " "
    minute, second = divmod(second_of_day, 60)
    if value.microsecond:
        return f"{prefix}{_MINUTE_TEXT[minute]}{second:02d}.{value.microsecond:06d}"
    return prefix + _MINUTE_TEXT[minute] + _SECOND_TEXT[second]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")  # erased personal data is overwritten on disk
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Keepalives: a connection to a server that vanished fails in about a minute, not hours.
    return create_engine(url, pool_pre_ping=True, connect_args=dict(KEEPALIVES))


class StateBase:
    """What every part of ``StateStore`` shares: the engine and its dialect, the daemon lock,
    this run's owner token for its claims, and one transaction per method."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._lock = DaemonLock(self.engine)
        # This run's owner token for its claims: random, so no other run can ever match it.
        self.owner = secrets.token_hex(16)
        # Frequency-cap decisions take turns (see ``Outbox.mark_sending``).
        self._cap_turn = threading.Lock()
        if migrate:
            upgrade(self.engine)

    def lock(self) -> None:
        """Take the one-daemon-per-database lock; raises ``AlreadyRunning``."""
        self._lock.acquire()

    def verify_lock(self) -> None:
        """Raise ``LockLost`` when this daemon no longer holds its lock."""
        self._lock.verify()

    def close(self) -> None:
        self._lock.release()
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction; for the small books (coupons, surveys) that share this database."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _db_time(self, value: datetime) -> Any:
        """An aware datetime as the driver takes it for a ``UTCDateTime`` column."""
        return _sqlite_value(value) if self.dialect == "sqlite" else _naive_utc(value)
