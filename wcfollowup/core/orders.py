"""What the engine needs to know about a WooCommerce order, parsed once at the edge.

WooCommerce sends ``*_gmt`` timestamps as naive ISO strings (no ``Z``, no offset) that are UTC.
Parsing them in one place keeps "naive means UTC" from leaking anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wcfollowup.core.shapes import text as _text

# Statuses after which nothing more should be sent for an order.
EXIT_STATUSES = frozenset({"refunded", "cancelled", "failed", "trash"})


def parse_wc_gmt(value: object) -> datetime | None:
    """Parse a WooCommerce ``*_gmt`` field; ``None``, empty or unreadable means "not set".

    A plugin that writes garbage into a date must not cost the order: the caller decides
    whether a missing date matters (an order without ``date_modified_gmt`` cannot be polled).
    """
    if not value or not isinstance(value, str):
        return None
    try:
        if len(value) == 19:  # the usual "YYYY-MM-DDTHH:MM:SS": six times faster than .replace()
            return datetime.fromisoformat(value + "+00:00")
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_wc_gmt(value: datetime) -> str:
    """Format for ``modified_after`` with ``dates_are_gmt=true``: naive UTC, whole seconds.

    A ``Z`` or offset here is silently shifted by the store's UTC offset (FACTS.md §5).
    """
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


# Not frozen, on purpose: a backlog poll builds one per order, and a frozen dataclass's
# __init__ (object.__setattr__ per field) costs five times a plain one. Treat it as read-only.
@dataclass(slots=True)
class OrderSnapshot:
    id: int
    number: str
    status: str
    modified_gmt: datetime
    completed_gmt: datetime | None
    email: str
    country: str = ""
    state: str = ""
    # Who the customer is for caps and "once per customer": the lower-cased email.
    customer_key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.customer_key and self.email:
            self.customer_key = self.email.strip().lower()

    @classmethod
    def from_wc(cls, data: dict[str, Any]) -> OrderSnapshot:
        modified = parse_wc_gmt(data.get("date_modified_gmt"))
        if modified is None:
            raise ValueError(f"order {data.get('id')!r} has no date_modified_gmt")
        # This runs for every order of a backlog: the usual types are checked exactly first
        # (an ABC or union isinstance() costs more than the rest of a line).
        billing = data.get("billing")
        if type(billing) is not dict and not isinstance(billing, Mapping):
            billing = {}  # null, or a plugin's string: no address known
        order_id = data["id"]
        if type(order_id) is not int and (
            isinstance(order_id, bool) or not isinstance(order_id, int | str)
        ):
            raise ValueError(f"order id {order_id!r} is not a number")
        number, status = data.get("number"), data.get("status")
        email, country, state = billing.get("email"), billing.get("country"), billing.get("state")
        email = email.strip() if type(email) is str else _text(email)
        return cls(
            id=order_id if type(order_id) is int else int(order_id),
            number=(number.strip() if type(number) is str else _text(number)) or str(int(order_id)),
            status=status.strip() if type(status) is str else _text(status),
            modified_gmt=modified,
            completed_gmt=parse_wc_gmt(data.get("date_completed_gmt")),
            email=email,
            country=(country.strip() if type(country) is str else _text(country)).upper(),
            state=(state.strip() if type(state) is str else _text(state)).upper(),
            customer_key=email.lower(),
        )
