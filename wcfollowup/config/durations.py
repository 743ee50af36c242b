"""Durations as store owners write them: ``30s``, ``30m``, ``2h``, ``3d``, ``1w`` or ``1h30m``.

One parser and one annotated type, so every delay in the config (poll interval, step delays and,
later, delivery offsets and send windows) accepts and rejects exactly the same spellings. A bare
number is refused on purpose: ``after: 30`` could mean seconds, minutes or days, and guessing
wrong sends an email at the wrong time. The only exception is ``0``, which means the same in
every unit.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema

from wcfollowup.config.messages import invalid

UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
_PART = re.compile(r"(\d+)([a-zA-Z]+)")
_SHAPE = re.compile(r"(?:\d+[a-zA-Z]+)+")
UNIT_NAMES = "s=seconds, m=minutes, h=hours, d=days, w=weeks"
FORMAT_HINT = f"write a whole number and a unit, like 30s, 30m, 2h, 3d or 1w ({UNIT_NAMES})"
_WORDS = {
    "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "day": "d", "days": "d", "week": "w", "weeks": "w",
    "detik": "s", "menit": "m", "minit": "m", "jam": "h", "hari": "d", "minggu": "w",
}  # fmt: skip


class DurationError(ValueError):
    """Raised by :func:`parse_duration`; the message is written for a store owner."""


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``/``30m``/``2h``/``3d``/``1w``/``1h30m`` (or ``0``) into a timedelta."""
    compact = text.strip()
    if compact == "0":
        return timedelta(0)
    if not _SHAPE.fullmatch(compact):
        raise DurationError(_suggest(compact))
    total = timedelta(0)
    seen: list[str] = []
    order = list(UNITS)
    for number, unit in _PART.findall(compact):
        if unit not in UNITS:
            word = _WORDS.get(unit.lower()) or (unit.lower() if unit.lower() in UNITS else None)
            hint = f"; did you mean {number}{word}?" if word else ""
            raise DurationError(f"unknown unit '{unit}'{hint}")
        if unit in seen:
            raise DurationError(f"the unit '{unit}' appears twice")
        if seen and order.index(unit) < order.index(seen[-1]):
            raise DurationError("write the largest unit first, like 1h30m")
        seen.append(unit)
        try:
            total += int(number) * UNITS[unit]
        except OverflowError:
            raise DurationError("far too long") from None
    return total


def _suggest(text: str) -> str:
    """Turn a near miss like ``3 days`` or ``1.5h`` into a concrete fix, or return ``""``."""
    match = re.fullmatch(r"(\d+)\s*([a-zA-Z]+)", text)
    if match:
        number, word = match.group(1), match.group(2).lower()
        unit = _WORDS.get(word) or (word if word in UNITS else None)
        if unit:
            return f"did you mean {number}{unit}?"
    match = re.fullmatch(r"(\d*\.\d+)\s*([smhdw])", text)
    if match:
        exact = float(match.group(1)) * UNITS[match.group(2)]
        if exact.total_seconds() >= 1:
            return f"use whole numbers: {format_duration(exact)} instead of {text}"
    return ""


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`, used in messages and when dumping to YAML/JSON."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in UNITS.items():
        count, seconds = divmod(seconds, int(size.total_seconds()))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def validate_duration(value: Any) -> timedelta:
    """Validate one duration as written in YAML; raises a pydantic error for the owner."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid("duration", "{value} is not a duration; " + FORMAT_HINT, value)
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise invalid(
            "duration",
            "{value} has no unit; write it like {example} (" + UNIT_NAMES + ")",
            value,
            example=f"{value}s, {value}m, {value}h or {value}d",
        )
    try:
        return parse_duration(value)
    except DurationError as error:
        reason = f" ({error})" if str(error) else ""
        raise invalid(
            "duration",
            "{value} is not a duration{value_reason}; " + FORMAT_HINT,
            value,
            value_reason=reason,
        ) from None


Duration = Annotated[
    timedelta,
    PlainValidator(validate_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(0|(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?)$",
            "examples": ["30s", "30m", "2h", "3d", "1w", "1h30m"],
        }
    ),
]
"""A delay written like ``30m``; use it for every duration in the config."""


def at_least(minimum: timedelta) -> AfterValidator:
    """A lower bound for a :data:`Duration`, reported in the same units the owner writes."""

    def check(value: timedelta) -> timedelta:
        if value < minimum:
            raise invalid(
                "duration_too_short",
                "{shown} is too short; the minimum is {minimum}",
                value,
                shown=format_duration(value),
                minimum=format_duration(minimum),
            )
        return value

    return AfterValidator(check)
