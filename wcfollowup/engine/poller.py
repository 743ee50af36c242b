"""Find orders that changed since the durable cursor and enrol or cancel accordingly.

Paging is by keyset on ``date_modified_gmt`` (``orderby=modified&order=asc``): each request asks
for orders modified after the last timestamp seen minus one second. Unlike page numbers, this
cannot skip an order when another order is modified mid-scan (the modified one moves to the end
and shows up later). Only when a whole page shares one second does it fall back to page numbers.
Each poll starts ``overlap`` before the cursor so that orders committed late by the store are
still seen; everything done for an order is idempotent, so seeing it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from wcfollowup.clock import Clock
from wcfollowup.config import SequenceConfig
from wcfollowup.core.orders import EXIT_STATUSES, OrderSnapshot, format_wc_gmt, parse_wc_gmt
from wcfollowup.core.planning import plans_for
from wcfollowup.db.state import StateStore, StoreState
from wcfollowup.woo.gateway import WooGateway

# Statuses the poll asks for: completions enrol, the others cancel what is pending.
POLL_STATUSES = ",".join(["completed", *sorted(EXIT_STATUSES - {"trash"})])
# Just what enrolment needs; dispatch re-reads the full order before acting.
POLL_FIELDS = "id,number,status,date_modified_gmt,date_completed_gmt,billing.email"
ONE_SECOND = timedelta(seconds=1)

log = structlog.get_logger("wcfollowup.poll")


@dataclass(frozen=True, slots=True)
class PollResult:
    requests: int
    orders_seen: int
    enrolled: int
    cancelled: int
    cursor: datetime


class Poller:
    def __init__(
        self,
        gateway: WooGateway,
        state: StateStore,
        sequences: Sequence[SequenceConfig],
        clock: Clock,
        *,
        overlap: timedelta,
        page_size: int = 100,
    ) -> None:
        self.gateway = gateway
        self.state = state
        self.sequences = list(sequences)
        self.clock = clock
        self.overlap = overlap
        self.page_size = page_size
        self._probed = False
        # (order id, date_modified_gmt) handled recently: spares the database the overlap.
        self._recent: dict[tuple[int, datetime], datetime] = {}

    def poll(self) -> PollResult:
        store, requests = self._store()
        after = store.cursor_gmt - self.overlap
        cursor = store.cursor_gmt
        page = 1
        seen = enrolled = cancelled = 0
        while True:
            result = self.gateway.list_orders(
                {
                    "status": POLL_STATUSES,
                    "modified_after": format_wc_gmt(after),
                    "dates_are_gmt": "true",
                    "orderby": "modified",
                    "order": "asc",
                    "per_page": self.page_size,
                    "page": page,
                    "_fields": POLL_FIELDS,
                }
            )
            requests += 1
            for item in result.items:
                outcome = self._handle(store, item)
                if outcome is None:
                    continue
                seen += 1
                enrolled += outcome[0]
                cancelled += outcome[1]
            if len(result.items) < self.page_size or not result.items:
                break
            last = parse_wc_gmt(result.items[-1].get("date_modified_gmt"))
            if last is not None and last - ONE_SECOND > after:
                after, page = last - ONE_SECOND, 1
                # Everything up to the second before `last` is done: a crash resumes here.
                cursor = max(cursor, after)
                self.state.advance_cursor(store.id, cursor, self.clock.now())
            else:
                page += 1
        cursor = max([cursor, *(ts for ts in self._recent.values())])
        self.state.advance_cursor(store.id, cursor, self.clock.now())
        self._forget_before(cursor - self.overlap - ONE_SECOND)
        return PollResult(requests, seen, enrolled, cancelled, cursor)

    def ensure_store(self) -> StoreState:
        return self._store()[0]

    def _store(self) -> tuple[StoreState, int]:
        """The store's durable state; on first sight, history before now is left alone."""
        state = self.state.store_state(self.gateway.url)
        requests = 0
        if state is None or not self._probed:
            server_now = self.gateway.probe(self.clock.now())
            requests += 1
            self._probed = True
            if state is None:
                baseline = (server_now or self.clock.now()).replace(microsecond=0)
                state = self.state.create_store(self.gateway.url, baseline, self.clock.now())
                log.info(
                    "store first seen; earlier orders are history and will not be mailed",
                    store=self.gateway.url,
                    baseline=baseline.isoformat(),
                )
        return state, requests

    def _handle(self, store: StoreState, item: dict[str, object]) -> tuple[int, int] | None:
        try:
            order = OrderSnapshot.from_wc(item)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "order skipped: unreadable data from the store",
                order_id=item.get("id"),
                error=str(exc),
            )
            return None
        key = (order.id, order.modified_gmt)
        if key in self._recent:
            return None
        now = self.clock.now()
        enrolled = cancelled = 0
        if order.status == "completed":
            for plan in plans_for(order, self.sequences, store.baseline_gmt):
                if self.state.enroll(store.id, plan, now):
                    enrolled += 1
                    log.info(
                        "order enrolled",
                        order_id=order.id,
                        sequence=plan.sequence,
                        steps=[s.step for s in plan.steps],
                    )
        elif order.status in EXIT_STATUSES:
            cancelled = self.state.cancel_open_steps(
                store.id, order.id, f"order is {order.status}", now
            )
            if cancelled:
                log.info(
                    "pending follow-ups cancelled",
                    order_id=order.id,
                    status=order.status,
                    steps=cancelled,
                )
        self._recent[key] = order.modified_gmt
        return enrolled, cancelled

    def _forget_before(self, limit: datetime) -> None:
        self._recent = {k: ts for k, ts in self._recent.items() if ts >= limit}
