"""One daemon per database: a second one would claim the same steps.

SQLite: an exclusive ``flock`` on a file next to the database, released by the kernel when the
process dies (so a SIGKILL never leaves a stale lock). PostgreSQL: a session advisory lock on a
dedicated connection (its own, outside the pool, with TCP keepalives), released when that
connection's session ends, whether we close it, the server restarts, or an administrator ends
the backend (``pg_terminate_backend``).

A lock taken once and never looked at again is not enough on PostgreSQL: the session can end
under a running daemon, and a second daemon then gets the lock while the first one still sends.
So ``verify`` asks the server, on the dedicated connection, whether this very session still
holds the lock; ``StateStore.claim_due`` calls it before every claim batch, and a daemon whose
lock is gone (``LockLost``) claims nothing more and exits (see ``EXIT_LOCK_LOST``). The steps it
had already claimed are fenced by their owner token (``steps.claimed_by``), so whatever it was
doing when the lock went can no longer overwrite the new owner's work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

ADVISORY_KEY = 0x77636675  # "wcfu": the advisory lock class; the schema picks the lock in it

EXIT_LOCK_LOST = 75
"""Exit code of a daemon that lost its lock (EX_TEMPFAIL): systemd restarts it, and the new
process either takes the lock again or finds another daemon holding it (exit code 4)."""

# libpq keepalives on the lock's connection: a dead peer or a silent network cut is noticed in
# about a minute instead of the kernel's two hours, so ``verify`` reports it promptly.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


class AlreadyRunning(Exception):
    pass


class LockLost(Exception):
    """The one-daemon lock is no longer ours: stop claiming, finish nothing new, exit."""


def schema_lock_key(schema: str) -> int:
    """The advisory lock of one schema: two databases' daemons (or two schemas of one
    database, as the tests use) never wait for each other. Positive, so ``pg_locks.objid``
    (an unsigned oid) shows the same number."""
    return zlib.crc32(schema.encode("utf-8")) & 0x7FFFFFFF


class DaemonLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._file: Any = None
        self._path: Path | None = None
        self._lock_engine: Engine | None = None
        self._connection: Any = None
        self._key: int | None = None
        self._lost: str | None = None

    def acquire(self) -> None:
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:"):
                return
            path = Path(database + ".lock")
            handle = path.open("a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise AlreadyRunning(
                    f"another wcfollowup (pid {holder}) is already running on {database}; "
                    "stop it first (systemctl stop wcfollowup) or point this one at another "
                    "database.path"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            self._file = handle
            self._path = path
            return
        # Its own engine without a pool: this connection is never handed to anyone else, and a
        # broken one is never silently replaced by a fresh session that holds nothing.
        self._lock_engine = create_engine(url, poolclass=NullPool, connect_args=KEEPALIVES)
        connection = self._lock_engine.connect()
        schema = str(connection.execute(text("SELECT current_schema()")).scalar() or "")
        key = schema_lock_key(schema)
        locked = connection.execute(
            text("SELECT pg_try_advisory_lock(:cls, :key)"), {"cls": ADVISORY_KEY, "key": key}
        ).scalar()
        connection.commit()
        if not locked:
            connection.close()
            self._lock_engine.dispose()
            self._lock_engine = None
            raise AlreadyRunning(
                "another wcfollowup is already running on this PostgreSQL database; "
                "stop it first or point this one at another database.url"
            )
        self._connection = connection
        self._key = key

    def verify(self) -> None:
        """Raise ``LockLost`` unless this process still holds the lock (cheap: one query).

        Without a lock taken (a tool, a test, an in-memory database) there is nothing to lose.
        Once lost, always lost: a new session would not be the one the claims were made under.
        """
        if self._lost is not None:
            raise LockLost(self._lost)
        if self._file is not None and self._path is not None:
            try:
                same = os.stat(self._path).st_ino == os.fstat(self._file.fileno()).st_ino
            except OSError:
                same = False
            if not same:
                self._lost = f"the lock file {self._path} was removed or replaced"
                raise LockLost(self._lost)
            return
        if self._connection is None:
            return
        try:
            held = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND classid::bigint = :cls "
                    "AND objid::bigint = :key AND objsubid = 2"
                ),
                {"cls": ADVISORY_KEY, "key": self._key},
            ).scalar()
            self._connection.commit()
        except SQLAlchemyError as exc:
            held = 0
            problem = f"its connection failed ({type(exc).__name__})"
        else:
            problem = "the server no longer holds it for this daemon"
        if not held:
            self._lost = f"the PostgreSQL lock was lost: {problem}"
            raise LockLost(self._lost)

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
            self._path = None
        if self._connection is not None:
            # A session that is gone already took its lock with it.
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
        if self._lock_engine is not None:
            self._lock_engine.dispose()
            self._lock_engine = None
