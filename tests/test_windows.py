"""Send windows: the next opening across nights, weekends and clock changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcfollowup.config import SendWindow
from wcfollowup.core.windows import customer_timezone, is_open, next_opening

JAKARTA = ZoneInfo("Asia/Jakarta")
BERLIN = ZoneInfo("Europe/Berlin")
MON_SAT = SendWindow.model_validate({"days": "mon-sat", "hours": "09:00-20:00"})


def local(tz: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=tz)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("when", "opening"),
    [
        ((2026, 11, 23, 10, 0), (2026, 11, 23, 10, 0)),  # Monday 10:00: inside
        ((2026, 11, 23, 9, 0), (2026, 11, 23, 9, 0)),  # the start is inside
        ((2026, 11, 23, 20, 0), (2026, 11, 24, 9, 0)),  # the end is outside
        ((2026, 11, 23, 3, 0), (2026, 11, 23, 9, 0)),  # 3 a.m.: later today
        ((2026, 11, 23, 23, 59), (2026, 11, 24, 9, 0)),  # late: tomorrow
        ((2026, 11, 28, 21, 0), (2026, 11, 30, 9, 0)),  # Saturday night: over Sunday
        ((2026, 11, 29, 12, 0), (2026, 11, 30, 9, 0)),  # Sunday noon
    ],
)
def test_next_opening_in_jakarta(when: tuple[int, ...], opening: tuple[int, ...]) -> None:
    found = next_opening(local(JAKARTA, *when), MON_SAT, JAKARTA)
    assert found == local(JAKARTA, *opening)
    assert found.tzinfo is UTC


def test_no_window_returns_when_in_utc() -> None:
    when = local(JAKARTA, 2026, 11, 23, 3, 0)
    assert next_opening(when, None, JAKARTA) == when
    assert next_opening(when, None, JAKARTA).tzinfo is UTC
    assert next_opening(datetime(2026, 1, 1), None, JAKARTA) == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_window_to_midnight_and_a_single_day() -> None:
    late = SendWindow.model_validate({"days": "fri", "hours": "20:00-24:00"})
    assert is_open(local(JAKARTA, 2026, 11, 27, 23, 59, 59), late, JAKARTA)
    assert next_opening(local(JAKARTA, 2026, 11, 28, 0, 0), late, JAKARTA) == local(
        JAKARTA, 2026, 12, 4, 20, 0
    )


def test_berlin_spring_forward_opens_after_the_jump() -> None:
    window = SendWindow.model_validate({"hours": "02:30-20:00"})
    # 29 March 2026: clocks jump from 02:00 to 03:00; 02:30 does not exist.
    found = next_opening(local(BERLIN, 2026, 3, 29, 1, 0), window, BERLIN)
    assert found == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert found.astimezone(BERLIN).hour == 3


def test_berlin_fall_back_opens_at_the_first_occurrence() -> None:
    window = SendWindow.model_validate({"hours": "02:30-20:00"})
    # 25 October 2026: 02:30 happens twice; the first is 00:30 UTC.
    found = next_opening(datetime(2026, 10, 25, 0, 0, tzinfo=UTC), window, BERLIN)
    assert found == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_berlin_nine_oclock_follows_summer_time() -> None:
    window = SendWindow.model_validate({"hours": "09:00-17:00"})
    winter = next_opening(datetime(2026, 3, 28, 18, 0, tzinfo=UTC), window, BERLIN)
    summer = next_opening(datetime(2026, 3, 29, 18, 0, tzinfo=UTC), window, BERLIN)
    assert winter == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST, the day clocks jump
    assert summer == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


zones = st.sampled_from(
    [
        JAKARTA,
        BERLIN,
        ZoneInfo("America/New_York"),
        ZoneInfo("UTC"),
        ZoneInfo("Australia/Lord_Howe"),
    ]
)
windows = st.builds(
    lambda days, start, length: SendWindow(
        days=frozenset(days),
        hours=(time(start), time(start + length) if start + length < 24 else time.max),
    ),
    st.sets(st.integers(0, 6), min_size=1),
    st.integers(0, 22),
    st.integers(1, 12),
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)


@given(instants, windows, zones)
def test_next_opening_properties(when: datetime, window: SendWindow, tz: ZoneInfo) -> None:
    found = next_opening(when, window, tz)
    assert found.tzinfo is UTC
    assert when <= found <= when + timedelta(days=8)
    assert is_open(found, window, tz)
    if is_open(when, window, tz):
        assert found == when
    else:
        # Nothing in between is open: check a second before the opening.
        assert found - timedelta(seconds=1) < when or not is_open(
            found - timedelta(seconds=1), window, tz
        )
    assert next_opening(found, window, tz) == found  # idempotent


@pytest.mark.parametrize(
    ("country", "state", "zone"),
    [
        ("ID", "JK", "Asia/Jakarta"),
        ("ID", "SS", "Asia/Jakarta"),  # Sumatera Selatan, not Sulawesi
        ("ID", "KB", "Asia/Pontianak"),
        ("ID", "BA", "Asia/Makassar"),
        ("id", "nb", "Asia/Makassar"),
        ("ID", "NT", "Asia/Makassar"),
        ("ID", "KS", "Asia/Makassar"),
        ("ID", "KI", "Asia/Makassar"),
        ("ID", "KU", "Asia/Makassar"),
        ("ID", "SN", "Asia/Makassar"),
        ("ID", "ST", "Asia/Makassar"),
        ("ID", "SG", "Asia/Makassar"),
        ("ID", "SA", "Asia/Makassar"),
        ("ID", "SR", "Asia/Makassar"),
        ("ID", "GO", "Asia/Makassar"),
        ("ID", "MA", "Asia/Jayapura"),
        ("ID", "MU", "Asia/Jayapura"),
        ("ID", "PA", "Asia/Jayapura"),
        ("ID", "PB", "Asia/Jayapura"),
        ("ID", "Papua Barat", "Asia/Jayapura"),
        ("ID", "", "Asia/Jakarta"),
        ("MY", "SBH", "Asia/Kuala_Lumpur"),
        ("SG", "", "Asia/Singapore"),
        ("AU", "WA", "Australia/Perth"),
        ("AU", "", "Australia/Sydney"),
        ("TH", "", "Asia/Bangkok"),
    ],
)
def test_customer_timezone(country: str, state: str, zone: str) -> None:
    assert customer_timezone(country, state, BERLIN) == ZoneInfo(zone)


def test_unknown_country_falls_back() -> None:
    assert customer_timezone("ZZ", "", BERLIN) is BERLIN
    assert customer_timezone("", "", JAKARTA) is JAKARTA
