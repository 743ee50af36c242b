"""Page through the store's orders once, for the tools that look back over a period.

Pages are numbered and ordered by id, which edits to an order do not reorder; the total comes
from ``X-WP-Total`` on the first page, for the progress bar. The daemon's keyset scan exists for
a durable cursor; a one-off look back does not need one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from wcfollowup.config import Config
from wcfollowup.core.orders import format_wc_gmt
from wcfollowup.woo.gateway import WooGateway

PAGE_SIZE = 100

# Called with (orders seen so far, total the store announced).
Progress = Callable[[int, int], None]


def make_gateway(config: Config) -> WooGateway:
    store = config.store
    return WooGateway(
        store.url,
        store.consumer_key.get_secret_value(),
        store.consumer_secret.get_secret_value(),
        timeout=store.request_timeout.total_seconds(),
        verify=store.verify_tls,
    )


def scan_orders(
    gateway: WooGateway,
    *,
    statuses: str,
    fields: str,
    modified_after: datetime | None = None,
    created_after: datetime | None = None,
    progress: Progress | None = None,
) -> Iterator[dict[str, Any]]:
    """Every order in ``statuses`` changed (or created) after the given time, oldest id first.

    Dates go as naive UTC with ``dates_are_gmt=true``: an offset would be shifted by the
    store's own UTC offset (FACTS.md §5).
    """
    params: dict[str, Any] = {
        "status": statuses,
        "dates_are_gmt": "true",
        "orderby": "id",
        "order": "asc",
        "per_page": PAGE_SIZE,
        "_fields": fields,
    }
    if modified_after is not None:
        params["modified_after"] = format_wc_gmt(modified_after)
    if created_after is not None:
        params["after"] = format_wc_gmt(created_after)
    page_number, seen, total = 1, 0, 0
    while True:
        page = gateway.list_orders({**params, "page": page_number})
        if page_number == 1:
            total = page.total
        for item in page.items:
            seen += 1
            yield item
        if progress is not None:
            progress(seen, max(total, seen))
        if len(page.items) < PAGE_SIZE or page_number >= page.total_pages:
            return
        page_number += 1
