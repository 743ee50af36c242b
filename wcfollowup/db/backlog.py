"""A poll's backlog writes: enrolment batches on one connection of their own (``BacklogWriter``).

Apart from ``Enrolments`` because this connection is set up differently (SQLite's key checks
off, see below) and must be put back as it was before it returns to the pool.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from wcfollowup.core.planning import Enrollment
from wcfollowup.db.enrolments import Enrolments, PreparedEnrolments

# SQLite checks each step's enrollment_id and store_id, and each enrolment's store_id, as it
# inserts them: about a tenth of the backlog's insert cost. The writer made those references
# itself (the store row, and the enrolments it inserted a moment before in the same
# transaction), so its own connection skips the checks for the poll; every other connection,
# and PostgreSQL, keeps them. (A larger page cache helped while enrollments had a customer
# index, filled in random order; since migration 0004 every index a backlog fills grows at its
# end, and the default 2 MB cache stores 100,000 enrolments as fast as 16 MB did.)
BACKLOG_PRAGMAS = ("foreign_keys=OFF",)
RESTORED_PRAGMAS = ("foreign_keys=ON",)


class BacklogWriter:
    """Enrolment batches of one poll, one transaction each, all on one connection.

    Used from a single thread (the poll's write-behind thread); opened on the first batch.
    """

    def __init__(self, state: Enrolments) -> None:
        self._state = state
        self._conn: Connection | None = None

    def enroll(self, prepared: PreparedEnrolments) -> list[Enrollment]:
        """Store prepared enrolments in one transaction, as ``StateStore.enroll_many`` does."""
        if not prepared.plans:
            return []
        conn = self._connection()
        with conn.begin():
            return self._state._enroll_in(conn, prepared)

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._state.engine.connect()
            self._pragmas(self._conn, *BACKLOG_PRAGMAS)
        return self._conn

    def _pragmas(self, conn: Connection, *pragmas: str) -> None:
        if self._state.dialect == "sqlite":
            for pragma in pragmas:
                conn.exec_driver_sql(f"PRAGMA {pragma}")
            conn.commit()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            self._pragmas(conn, *RESTORED_PRAGMAS)
        except SQLAlchemyError:  # the database went away: drop this connection
            conn.invalidate()
        finally:
            conn.close()
