"""``--since`` / ``--until`` as owners write them: a store-local date or "the last 7 days"."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from wcfollowup.config.durations import DurationError, parse_duration


class BadTime(ValueError):
    """The owner's ``--since``/``--until`` could not be read; the message says how to write it."""


def parse_point(text: str, now: datetime, tz: tzinfo, *, end: bool = False) -> datetime:
    """A moment as aware UTC: ``7d`` means ``now - 7 days``; ``2026-11-01`` is that day in the
    store's time zone (its start, or with ``end`` its end, so ``--until 2026-11-01`` includes
    the whole day); ``2026-11-01T14:30`` is that minute in store time."""
    value = text.strip()
    if not value:
        raise BadTime("empty time; write a date like 2026-11-01 or a duration like 7d")
    if value[0].isdigit() and "-" in value:
        return _calendar(value, tz, end=end)
    try:
        return now.astimezone(UTC) - parse_duration(value)
    except DurationError as exc:
        raise BadTime(
            f"'{value}' is neither a date (2026-11-01) nor a duration (7d, 12h): {exc}"
        ) from None


def _calendar(value: str, tz: tzinfo, *, end: bool) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            local = datetime.combine(day + timedelta(days=1) if end else day, time(0), tz)
            return local.astimezone(UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadTime(f"'{value}' is not a date; write it as 2026-11-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)
