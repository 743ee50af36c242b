"""One daemon per database, for now: a second one would claim the same steps.

SQLite: an exclusive ``flock`` on a file next to the database, released by the kernel when the
process dies (so a SIGKILL never leaves a stale lock). PostgreSQL: a session advisory lock on a
dedicated connection, released when that connection closes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

ADVISORY_KEY = 0x77636675  # "wcfu"


class AlreadyRunning(Exception):
    pass


class DaemonLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._file: Any = None
        self._connection: Any = None

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
            return
        connection = self.engine.connect()
        locked = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
        ).scalar()
        connection.commit()
        if not locked:
            connection.close()
            raise AlreadyRunning(
                "another wcfollowup is already running on this PostgreSQL database; "
                "stop it first or point this one at another database.url"
            )
        self._connection = connection

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
