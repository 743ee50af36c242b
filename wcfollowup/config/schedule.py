"""When a step may go out: send windows (days and hours) and per-customer frequency caps.

Store owners write ``window: {days: mon-sat, hours: "09:00-20:00", timezone: customer}`` and
``cap: {max: 1, per: 30d}``. The spellings accepted for days are generous (``mon-fri``,
``sat,sun``, ``weekdays``, ``daily``, a list, English, Indonesian or Malay day names) because a
wrong guess here means an email at the wrong time; anything else is refused with an example.
"""

from __future__ import annotations

import difflib
import re
from datetime import time, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

from wcfollowup.config.base import _Model
from wcfollowup.config.durations import Duration, at_least
from wcfollowup.config.fields import Slug, WholeNumber
from wcfollowup.config.messages import invalid

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Index = ``datetime.weekday()``: 0 is Monday, 6 is Sunday."""

_DAY_WORDS: Final[dict[str, int]] = {
    # English
    **{name: index for index, name in enumerate(DAY_NAMES)},
    "monday": 0, "tues": 1, "tuesday": 1, "wednesday": 2, "thur": 3, "thurs": 3,
    "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
    # Bahasa Indonesia
    "senin": 0, "selasa": 1, "rabu": 2, "kamis": 3, "jumat": 4, "jum'at": 4, "sabtu": 5,
    "minggu": 6,
    # Bahasa Melayu
    "isnin": 0, "khamis": 3, "jumaat": 4, "ahad": 6,
}  # fmt: skip

_DAY_GROUPS: Final[dict[str, frozenset[int]]] = {
    "daily": frozenset(range(7)),
    "every day": frozenset(range(7)),
    "everyday": frozenset(range(7)),
    "all": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekday": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "weekend": frozenset({5, 6}),
    "setiap hari": frozenset(range(7)),
    "hari kerja": frozenset(range(5)),
}

DAYS_HINT: Final = "write days like mon-fri, mon-sat, sat,sun, daily or a list [mon, wed]"
HOURS_HINT: Final = 'write hours like "09:00-20:00" (24-hour clock, start before end)'

END_OF_DAY: Final = time.max
"""``24:00`` as an end: the window runs to midnight."""


class DaysError(ValueError):
    """A day spelling that could not be read; the message names the word and a fix."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def _day(word: str) -> int:
    key = word.strip().lower().rstrip(".")
    if key in _DAY_WORDS:
        return _DAY_WORDS[key]
    close = difflib.get_close_matches(key, list(_DAY_WORDS), n=1, cutoff=0.6)
    hint = f"; did you mean '{DAY_NAMES[_DAY_WORDS[close[0]]]}'?" if close else ""
    raise DaysError(f"'{word.strip()}' is not a day{hint}")


def _days_in(text: str) -> frozenset[int]:
    """``mon-fri`` / ``sat,sun`` / ``fri-mon`` (wraps over the weekend) / ``daily``."""
    key = " ".join(text.strip().lower().split())
    if key in _DAY_GROUPS:
        return _DAY_GROUPS[key]
    found: set[int] = set()
    for part in re.split(r"[,\s]+", key.replace(" - ", "-").replace("–", "-")):
        if not part:
            continue
        if part in _DAY_GROUPS:
            found |= _DAY_GROUPS[part]
        elif "-" in part:
            first, _, last = part.partition("-")
            start, end = _day(first), _day(last)
            found.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
        else:
            found.add(_day(part))
    if not found:
        raise DaysError("no days are given")
    return frozenset(found)


def parse_days(value: object) -> frozenset[int]:
    """Turn what an owner wrote for ``days`` into weekday numbers (0 = Monday)."""
    if isinstance(value, str):
        return _days_in(value)
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            raise DaysError("the list of days is empty")
        found: set[int] = set()
        for index, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
                found.add(item)  # code-built: already weekday numbers
                continue
            if not isinstance(item, str):
                raise DaysError("each day must be a name like mon", index)
            try:
                found |= _days_in(item)
            except DaysError as error:
                raise DaysError(str(error), index) from None
        return frozenset(found)
    raise DaysError("")


def format_days(days: frozenset[int]) -> str:
    """``frozenset({0,1,2,3,4,5})`` -> ``mon-sat``; used in messages and dumps."""
    if days == frozenset(range(7)):
        return "daily"
    ordered = sorted(days)
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}"
        for run in runs
    )


def _validate_days(value: Any) -> frozenset[int]:
    try:
        return parse_days(value)
    except DaysError as error:
        reason = f" ({error})" if str(error) else ""
        if error.index is not None and isinstance(value, list | tuple):
            _, _, hint = str(error).partition("; ")
            reason = f" ({hint})" if hint else ""
            raise invalid(
                "days",
                "{value} is not a day{value_reason}; " + DAYS_HINT,
                value[error.index],
                at=(error.index,),
                value_reason=reason,
            ) from None
        raise invalid(
            "days",
            "{value} is not a list of days{value_reason}; " + DAYS_HINT,
            value,
            value_reason=reason,
        ) from None


Days = Annotated[
    frozenset[int],
    PlainValidator(_validate_days),
    PlainSerializer(format_days, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "examples": ["mon-fri", "mon-sat", "sat,sun", "daily", ["mon", "wed"]],
        }
    ),
]

_CLOCK = re.compile(r"(\d{1,2})(?:[:.](\d{2}))?")


def _clock(text: str, *, end: bool) -> time:
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"'{text.strip()}' is not a time of day")
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if end and (hour, minute) == (24, 0):
        return END_OF_DAY
    if hour > 23 or minute > 59:
        raise ValueError(f"'{text.strip()}' is not a time of day")
    return time(hour, minute)


def parse_hours(value: object) -> tuple[time, time]:
    """``"09:00-20:00"`` -> ``(time(9), time(20))``; ``24:00`` as the end means midnight."""
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(part, time) for part in value)
    ):
        start, end = value
    elif isinstance(value, str):
        parts = re.split(r"\s*(?:-|–|to|sampai|hingga)\s*", value.strip(), maxsplit=1)
        if len(parts) != 2:
            raise ValueError("")
        start, end = _clock(parts[0], end=False), _clock(parts[1], end=True)
    else:
        raise ValueError("")
    if end <= start:
        raise ValueError(
            "the end must be after the start; a window cannot run past midnight, "
            "so split it or use 24:00 as the end"
        )
    return start, end


def format_hours(hours: tuple[time, time]) -> str:
    start, end = hours
    shown_end = "24:00" if end == END_OF_DAY else end.strftime("%H:%M")
    return f"{start.strftime('%H:%M')}-{shown_end}"


def _validate_hours(value: Any) -> tuple[time, time]:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 habits: 09:00-20:00 unquoted is text, but 9:00 alone may become a number.
        raise invalid("hours", "{value} is not a time range; " + HOURS_HINT, value)
    try:
        return parse_hours(value)
    except ValueError as error:
        reason = f" ({error})" if str(error) else ""
        raise invalid(
            "hours",
            "{value} is not a time range{value_reason}; " + HOURS_HINT,
            value,
            value_reason=reason,
        ) from None


Hours = Annotated[
    tuple[time, time],
    PlainValidator(_validate_hours),
    PlainSerializer(format_hours, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["09:00-20:00"]}),
]


class SendWindow(_Model):
    """Days and hours when a step may go out; a step due outside waits for the next opening.

    ``days`` are weekday numbers (0 = Monday .. 6 = Sunday); ``hours`` is ``(start, end)`` with
    ``start <= t < end`` inside (``end`` may be ``time.max``, i.e. 24:00); ``timezone`` says
    whose clock: the store's or the customer's (from the billing address).
    """

    days: Days = frozenset(range(7))
    hours: Hours = (time(0), END_OF_DAY)
    timezone: Literal["store", "customer"] = "store"

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise invalid(
                "window",
                "{value} is not a send window; write 'always' or a mapping like "
                '{days: mon-sat, hours: "09:00-20:00"}',
                data,
            )
        if isinstance(data, dict) and ("start" in data or "end" in data) and "hours" not in data:
            # Code may build a window from start/end times.
            data = dict(data)
            data["hours"] = (data.pop("start", time(0)), data.pop("end", END_OF_DAY))
        return data

    @property
    def start(self) -> time:
        return self.hours[0]

    @property
    def end(self) -> time:
        """The first moment outside the window; ``time.max`` means midnight (24:00)."""
        return self.hours[1]

    def contains(self, weekday: int, clock: time) -> bool:
        """Whether local ``weekday`` (0 = Monday) at local wall-clock ``clock`` is inside."""
        if weekday not in self.days or clock < self.start:
            return False
        return self.end == END_OF_DAY or clock < self.end

    def describe(self) -> str:
        return f"{format_days(self.days)} {format_hours(self.hours)} ({self.timezone} time)"


def _per(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("ever", "forever", "lifetime"):
        return None
    return value


class FrequencyCap(_Model):
    """At most ``max`` messages per customer within ``per`` (None: ever).

    Messages with the same ``key`` count together; the engine uses the step's template when no
    key is given, so "one review request per 30 days" spans every sequence that sends one.
    """

    max: Annotated[WholeNumber, Field(ge=1)] = 1
    per: Annotated[Duration, at_least(timedelta(minutes=1))] | None = None
    key: Slug | None = None

    @model_validator(mode="before")
    @classmethod
    def _ever(cls, data: Any) -> Any:
        if isinstance(data, dict) and "per" in data:
            data = {**data, "per": _per(data["per"])}
        return data
