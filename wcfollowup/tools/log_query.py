"""Read the message log with the owner's filters, and follow it as new lines arrive."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine, Select, func, select

from wcfollowup.common.redact import redact
from wcfollowup.db.schema import messages
from wcfollowup.db.state import MessageRow

FOLLOW_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class LogFilter:
    order: int | None = None
    email: str | None = None
    sequence: str | None = None
    step: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[tuple[object, ...]]) -> Select[tuple[object, ...]]:
        c = messages.c
        if self.order is not None:
            query = query.where(c.order_id == self.order)
        if self.email:
            query = query.where(func.lower(c.recipient) == self.email.strip().lower())
        if self.sequence:
            query = query.where(c.sequence == self.sequence)
        if self.step:
            query = query.where(c.step == self.step)
        if self.status:
            query = query.where(c.status == self.status.strip().lower())
        if self.since is not None:
            query = query.where(c.at >= self.since)
        if self.until is not None:
            query = query.where(c.at < self.until)
        return query


def read_log(
    engine: Engine, where: LogFilter, *, limit: int | None = None, after_id: int = 0
) -> list[MessageRow]:
    """Matching lines oldest first; with ``limit``, the *latest* that many (what an owner
    checking "what just happened" wants), still printed oldest first."""
    query = where.apply(select(messages))
    if after_id:
        query = query.where(messages.c.id > after_id)
    if limit is not None:
        query = query.order_by(messages.c.id.desc()).limit(limit)
    else:
        query = query.order_by(messages.c.id)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    found = [MessageRow.from_row(r) for r in rows]
    return sorted(found, key=lambda row: row.id) if limit is not None else found


def count_log(engine: Engine, where: LogFilter) -> int:
    """How many lines match, so a paged table can say how many it left out."""
    matching = where.apply(select(messages.c.id)).subquery()
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(matching)).scalar_one())


def follow_log(
    engine: Engine,
    where: LogFilter,
    emit: Callable[[Sequence[MessageRow]], None],
    *,
    after_id: int,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> int:
    """Poll for lines newer than ``after_id`` every second until interrupted (or ``rounds``
    polls, for tests); returns the id of the last line emitted.

    Lines are found by id, not time: the daemon's clock and this process's may disagree,
    and ids only grow.
    """
    done = 0
    while rounds is None or done < rounds:
        fresh = read_log(engine, where, after_id=after_id)
        if fresh:
            emit(fresh)
            after_id = fresh[-1].id
        done += 1
        if rounds is None or done < rounds:
            sleep(FOLLOW_EVERY)
    return after_id


def redact_reasons(rows: Sequence[MessageRow]) -> list[MessageRow]:
    """The rows with any secret masked in their reason: rows written before reasons were
    redacted on the way in may still hold one, and the owner's output must not show it."""
    return [replace(row, reason=redact(row.reason)) for row in rows]
