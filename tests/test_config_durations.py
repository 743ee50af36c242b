"""Durations: one spelling everywhere, and a refusal that says exactly what to write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from wcfollowup.config.durations import (
    Duration,
    DurationError,
    format_duration,
    parse_duration,
)


class Holder(BaseModel):
    after: Duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        (" 2h ", timedelta(hours=2)),
    ],
)
def test_parse_duration_accepts_the_documented_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("3 days", "did you mean 3d?"),
        ("3 hari", "did you mean 3d?"),
        ("3x", "unknown unit 'x'"),
        ("30M", "unknown unit 'M'; did you mean 30m?"),
        ("1.5h", "use whole numbers: 1h30m instead of 1.5h"),
        ("1m1h", "largest unit first"),
        ("1m1m", "the unit 'm' appears twice"),
        ("-5m", ""),
        ("", ""),
        ("soon", ""),
        ("99999999999999999w", "far too long"),
    ],
)
def test_parse_duration_refuses_other_spellings_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert str(caught.value) == reason or (reason and reason in str(caught.value))


@pytest.mark.parametrize("text", ["30s", "30m", "2h", "3d", "1w", "1h30m", "1w1d1s", "0s"])
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


def test_a_bare_number_is_refused_with_the_expected_format() -> None:
    with pytest.raises(ValidationError) as caught:
        Holder(after=30)  # type: ignore[arg-type]
    message = caught.value.errors()[0]["msg"]
    assert message.startswith("the number 30 has no unit")
    assert "30s, 30m, 30h or 30d" in message


def test_zero_needs_no_unit_because_it_means_the_same_in_every_unit() -> None:
    assert Holder(after=0).after == timedelta(0)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, 1.5, ["30m"], None])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Holder(after=value)  # type: ignore[arg-type]
    assert "is not a duration" in caught.value.errors()[0]["msg"]


def test_timedeltas_pass_through_and_dump_as_text_in_json() -> None:
    holder = Holder(after=timedelta(minutes=90))
    assert holder.model_dump() == {"after": timedelta(minutes=90)}
    assert holder.model_dump(mode="json") == {"after": "1h30m"}
    assert Holder.model_json_schema()["properties"]["after"]["type"] == "string"
