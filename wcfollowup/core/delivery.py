"""When an order's parcel arrived, from whatever signal the store owner declared.

Pure and forgiving: an order is whatever JSON the store returned, possibly trimmed by ``_fields``
or broken by a plugin, so nothing here raises; an unreadable signal is simply no signal.

Signals (any combination; the earliest found wins):

* ``status``: the order has the custom status -> its ``date_modified_gmt`` (the best the REST API
  tells about when the status changed);
* ``meta_key``: an order meta value that is a date (ISO 8601; without an offset it is store-local
  time; a bare date means the start of that day), unix seconds (or milliseconds), or a yes-flag
  (``yes``, ``1``, ``true``, ``delivered``...) -> the date, or ``date_modified_gmt`` for a flag;
* ``tracking``: shipment-tracking items -> the latest ``date_shipped`` plus the transit time
  (an estimate, possibly in the future).

``assume_after`` is *not* a signal: it is the engine's fallback when no signal ever comes (see
:func:`assumed_delivered_at`), so it never hides a real delivery date.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final

from wcfollowup.config.models import DeliveryConfig

__all__ = [
    "assumed_delivered_at",
    "delivered_at",
    "delivery_fields",
    "delivery_statuses",
    "parse_moment",
]

_YES: Final = frozenset({"yes", "y", "1", "true", "on", "delivered", "ya", "sudah", "done"})
_UNIX_MIN: Final = 100_000_000  # 1973: smaller numbers are flags (0/1), not timestamps
_UNIX_MS_MIN: Final = 100_000_000_000  # beyond year 5000 in seconds: it is milliseconds
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def delivered_at(
    order: Mapping[str, Any], delivery: DeliveryConfig, store_tz: tzinfo
) -> datetime | None:
    """The earliest delivery signal on ``order`` as aware UTC, or None if there is none yet."""
    if not isinstance(order, Mapping):
        return None
    found: list[datetime] = []
    modified = _gmt(order.get("date_modified_gmt"))
    if delivery.status is not None:
        status = order.get("status")
        if (
            isinstance(status, str)
            and status.strip().lower().removeprefix("wc-") == (delivery.status)
            and modified is not None
        ):
            found.append(modified)
    if delivery.meta_key is not None:
        for value in _meta_values(order, delivery.meta_key):
            moment = parse_moment(value, store_tz)
            if moment is not None:
                found.append(moment)
            elif _is_yes(value) and modified is not None:
                found.append(modified)
    if delivery.tracking is not None:
        shipped = [
            moment
            for value in _meta_values(order, delivery.tracking.meta_key)
            for moment in _shipped_dates(value, store_tz)
        ]
        if shipped:
            arrival = _plus(max(shipped), delivery.tracking.transit)
            if arrival is not None:
                found.append(arrival)
    return min(found) if found else None


def assumed_delivered_at(order: Mapping[str, Any], delivery: DeliveryConfig) -> datetime | None:
    """Completion + ``assume_after`` (the fallback), or None when not configured or unknown."""
    if delivery.assume_after is None or not isinstance(order, Mapping):
        return None
    completed = _gmt(order.get("date_completed_gmt")) or _gmt(order.get("date_modified_gmt"))
    return _plus(completed, delivery.assume_after) if completed is not None else None


def _plus(moment: datetime, delay: timedelta) -> datetime | None:
    try:
        return moment + delay
    except OverflowError:  # a plugin wrote year 9999
        return None


def delivery_fields(delivery: DeliveryConfig | None) -> frozenset[str]:
    """The ``_fields`` the poll must ask for so :func:`delivered_at` can see the signals."""
    if delivery is None:
        return frozenset()
    fields: set[str] = {"date_modified_gmt"}
    if delivery.status is not None:
        fields.add("status")
    if delivery.meta_key is not None or delivery.tracking is not None:
        fields.add("meta_data")
    if delivery.assume_after is not None:
        fields.add("date_completed_gmt")
    return frozenset(fields)


def delivery_statuses(delivery: DeliveryConfig | None) -> frozenset[str]:
    """Order statuses the poll must ask for besides its own, e.g. ``{"delivered"}``."""
    if delivery is None or delivery.status is None:
        return frozenset()
    return frozenset({delivery.status})


# --- reading values ---------------------------------------------------------------------------


def parse_moment(value: object, store_tz: tzinfo) -> datetime | None:
    """A date from meta: ISO 8601 (store-local if naive), a date, or unix seconds/ms."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_unix(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _NUMBER.fullmatch(text):
        return _from_unix(float(text))
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), time(0))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=store_tz)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _from_unix(number: float) -> datetime | None:
    if number != number or number < _UNIX_MIN:  # NaN, or a 0/1 flag
        return None
    if number >= _UNIX_MS_MIN:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _is_yes(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _YES


def _gmt(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _meta_values(order: Mapping[str, Any], key: str) -> Iterator[object]:
    meta = order.get("meta_data")
    if not isinstance(meta, list):
        return
    for entry in meta:
        if isinstance(entry, Mapping) and entry.get("key") == key:
            yield entry.get("value")


def _shipped_dates(value: object, store_tz: tzinfo) -> Iterator[datetime]:
    """``date_shipped`` of every tracking item (a list of dicts, or one dict)."""
    items = [value] if isinstance(value, Mapping) else value if isinstance(value, list) else []
    for item in items:
        if isinstance(item, Mapping):
            moment = parse_moment(item.get("date_shipped"), store_tz)
            if moment is not None:
                yield moment
