"""The stores a database serves (``stores``): each one's baseline and poll cursor.

Apart from the enrolments and the outbox because nothing else touches this table, and the
poller (which decides when a cursor may move) only needs these three calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from wcfollowup.db.connection import StateBase
from wcfollowup.db.schema import stores


@dataclass(frozen=True, slots=True)
class StoreState:
    id: int
    url: str
    baseline_gmt: datetime
    cursor_gmt: datetime


class Stores(StateBase):
    """``StateStore``'s part for the ``stores`` table."""

    def store_state(self, url: str) -> StoreState | None:
        with self._tx() as conn:
            row = conn.execute(select(stores).where(stores.c.url == url)).mappings().first()
        if row is None:
            return None
        return StoreState(row["id"], row["url"], row["baseline_gmt"], row["cursor_gmt"])

    def create_store(self, url: str, baseline: datetime, now: datetime) -> StoreState:
        with self._tx() as conn:
            store_id = conn.execute(
                insert(stores).values(
                    url=url, baseline_gmt=baseline, cursor_gmt=baseline, created_at=now
                )
            ).inserted_primary_key
        assert store_id is not None
        return StoreState(int(store_id[0]), url, baseline, baseline)

    def advance_cursor(self, store_id: int, cursor: datetime, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                update(stores)
                .where(stores.c.id == store_id)
                .values(cursor_gmt=cursor, last_poll_at=now)
            )
