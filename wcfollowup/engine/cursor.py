"""Where a poll reads from: the keyset scan over ``date_modified_gmt`` and the cursor's bound.

Paging is by keyset on ``date_modified_gmt`` (``orderby=modified&order=asc``): each request
asks for orders modified after the last page's final second minus one, excluding the orders
already seen in that second. Unlike page numbers this cannot skip an order when another order
is modified mid-scan (the modified one moves to the end and shows up later), and it repeats
nothing, so N changed orders cost ceil(N/100) requests plus the last short page. When more
orders share one second than an ``exclude`` list should carry, it falls back to page numbers
inside that second.

The cursor never passes the store's own clock (the ``Date`` header of its answers; ours when it
sends none) plus ``FUTURE_TOLERANCE``. An order whose ``date_modified_gmt`` lies in the future
(an importer, a plugin, a mistyped server clock) is enrolled like any other and logged, but it
cannot carry the cursor along: a cursor in 2099 would ask only for orders modified after 2099,
and every order after it would be lost without a sound.

Kept apart from the poller, which decides when the cursor moves, and from what is done with
each order (``engine.enrol``): this module only knows how to walk the store's order list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wcfollowup.core.clock import Clock
from wcfollowup.core.orders import format_wc_gmt, parse_wc_gmt

ONE_SECOND = timedelta(seconds=1)
MAX_EXCLUDE = 300
# How far past the store's clock the cursor may go. At most the default overlap, so that the
# next poll (which starts ``overlap`` before the cursor) still starts before the store's "now".
FUTURE_TOLERANCE = timedelta(minutes=1)


def modified_text(item: object) -> object:
    return item.get("date_modified_gmt") if isinstance(item, dict) else None


def excludable_id(item: object) -> int | None:
    """An order's id as the ``exclude`` parameter takes it; None when it is not a number."""
    value = item.get("id") if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        order_id = int(value)
    except ValueError:
        return None
    return order_id if 0 < order_id < 2**64 else None


@dataclass
class Scan:
    """Where a keyset scan stands: the next request's ``modified_after``, exclusions, page."""

    after: datetime
    exclude: list[int] = field(default_factory=list)
    page: int = 1
    done: bool = False

    def advance(self, items: Sequence[dict[str, Any]], page_size: int) -> datetime | None:
        """Move past a page; return the new resume point when the keyset moved forward."""
        if len(items) < page_size:
            self.done = True
            return None
        # A page may hold an unreadable order (not an object, no date, an id that is not a
        # number): it is skipped when handled, and must not stop the scan here either.
        last_raw = modified_text(items[-1])
        last = parse_wc_gmt(last_raw)
        if last is None:
            self.page += 1
            return None
        # The store writes every timestamp the same way: comparing the text is enough.
        same_second = [
            order_id
            for item in items
            if modified_text(item) == last_raw and (order_id := excludable_id(item)) is not None
        ]
        if last - ONE_SECOND > self.after:
            self.after, self.exclude, self.page = last - ONE_SECOND, same_second, 1
            return self.after
        if self.page == 1 and len(self.exclude) + len(same_second) <= MAX_EXCLUDE:
            self.exclude = sorted({*self.exclude, *same_second})
        else:
            self.page += 1
        return None

    def params(self, statuses: str, fields: str, page_size: int) -> dict[str, Any]:
        """The next request's query: ``statuses`` and ``fields`` as the poll asks for them."""
        params: dict[str, Any] = {
            "status": statuses,
            "modified_after": format_wc_gmt(self.after),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "per_page": page_size,
            "page": self.page,
            "_fields": fields,
        }
        if self.exclude:
            params["exclude"] = ",".join(str(i) for i in self.exclude)
        return params


class StoreClock:
    """The store's clock at its latest answer (its ``Date`` header; ours when it sends none).

    Kept from one poll to the next: a cursor stored by the previous poll is bounded by the clock
    of that poll's answers, so checking it against that clock at the start of a poll flags only
    a cursor that was wrong (one stored before this bound existed).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._latest: datetime | None = None

    def saw(self, server_time: datetime | None) -> None:
        """The store answered, saying it was ``server_time`` (None: it did not say)."""
        self._latest = server_time or self.clock.now()

    def now(self) -> datetime:
        """The store's clock at its latest answer; our own clock before any answer."""
        return self._latest or self.clock.now()

    def bounded(self, cursor: datetime, overlap: timedelta) -> datetime:
        """``cursor``, but never past the store's clock plus ``FUTURE_TOLERANCE``."""
        return min(cursor, self.now() + min(FUTURE_TOLERANCE, overlap))

    def future(self) -> datetime:
        """An order modified after this is modified in the future by the store's clock."""
        return self.now() + FUTURE_TOLERANCE
