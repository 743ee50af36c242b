"""The SQL adapter: every read and write of durable state goes through ``StateStore``.

Each method is one transaction, so the engine never holds a transaction open across a network
call. On SQLite a single daemon is the only writer; WAL lets ``wcfollowup log`` read meanwhile.

``StateStore`` is composed of one part per concern, each in its own module and each a
``StateBase`` (engine, dialect, daemon lock, owner token):

- ``stores.Stores``: the stores and their poll cursors;
- ``enrolments.Enrolments``: enrolling orders, once per customer, re-anchoring on delivery;
- ``cancellation.Cancellation``: cancelling an order's open steps, unsubscribes;
- ``outbox.Outbox``: claims, the fenced move to ``sending``, outcomes, crash recovery;
- ``message_log.MessageLog``: reading the log and the queue's size.

The parts share no state beyond ``StateBase`` and call each other only through the functions
of ``message_log`` (``step_rows``, ``finish_step``, ``log_line``), so each one reads alone.
This module also re-exports the names other code imports from ``wcfollowup.db.state``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from wcfollowup.db.backlog import BACKLOG_PRAGMAS, RESTORED_PRAGMAS, BacklogWriter
from wcfollowup.db.cancellation import OPEN_STATES, Cancellation
from wcfollowup.db.connection import (
    DatabaseUnavailable,
    StateBase,
    _sqlite_pragmas,
    _sqlite_value,
    database_problem,
    make_engine,
)
from wcfollowup.db.enrolments import (
    BULK_ROWS,
    ENROLLMENT_COLUMNS,
    LARGEST_STORED_ID,
    SQLITE_MAX_PARAMETERS,
    STEP_COLUMNS,
    DeliveryStep,
    Enrolments,
    PreparedEnrolments,
    UnstorableOrder,
    check_storable,
)
from wcfollowup.db.message_log import FINAL_STATES, MessageLog, MessageRow
from wcfollowup.db.outbox import (
    CAP_LOCK_CLASS,
    HELD_STATES,
    CapHold,
    ClaimedStep,
    Clearance,
    Outbox,
)
from wcfollowup.db.stores import Stores, StoreState

__all__ = [
    "BACKLOG_PRAGMAS",
    "BULK_ROWS",
    "CAP_LOCK_CLASS",
    "ENROLLMENT_COLUMNS",
    "FINAL_STATES",
    "HELD_STATES",
    "LARGEST_STORED_ID",
    "OPEN_STATES",
    "RESTORED_PRAGMAS",
    "SQLITE_MAX_PARAMETERS",
    "STEP_COLUMNS",
    "BacklogWriter",
    "CapHold",
    "ClaimedStep",
    "Clearance",
    "DatabaseUnavailable",
    "DeliveryStep",
    "MessageRow",
    "PreparedEnrolments",
    "StateBase",
    "StateStore",
    "StoreState",
    "UnstorableOrder",
    "_sqlite_pragmas",
    "_sqlite_value",
    "check_storable",
    "database_problem",
    "make_engine",
]


class StateStore(Stores, Enrolments, Cancellation, Outbox, MessageLog):
    """One database, one daemon run: ``StateStore(url)`` opens (and migrates) it."""

    @contextmanager
    def backlog_writer(self) -> Iterator[BacklogWriter]:
        """A poll's enrolment writes, on one connection that skips key checks (see
        ``backlog``)."""
        writer = BacklogWriter(self)
        try:
            yield writer
        finally:
            writer.close()
