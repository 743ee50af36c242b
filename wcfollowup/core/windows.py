"""Send windows: when a step due at some instant may actually go out, and in whose time zone.

Pure: instants in, instants out (aware UTC). Wall-clock arithmetic happens in the window's time
zone so "09:00" means nine in the morning there, including on days when the clocks change:

* a start time that does not exist that day (skipped by a spring-forward jump) opens at the
  first instant after the jump;
* a start time that happens twice (autumn fall-back) opens at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

from wcfollowup.config.schedule import SendWindow

__all__ = ["customer_timezone", "is_open", "next_opening"]


def is_open(when: datetime, window: SendWindow | None, tz: tzinfo) -> bool:
    """Whether the aware instant ``when`` falls inside ``window`` on ``tz``'s wall clock."""
    if window is None:
        return True
    local = _aware(when).astimezone(tz)
    return window.contains(local.weekday(), local.time().replace(tzinfo=None))


def next_opening(when: datetime, window: SendWindow | None, tz: tzinfo) -> datetime:
    """``when`` if it is inside the window (or there is none), else the window's next start.

    Always returns an aware UTC datetime. A naive ``when`` is taken to be UTC.
    """
    if window is None and when.tzinfo is UTC:  # the usual case, once per planned step
        return when
    instant = _aware(when).astimezone(UTC)
    if is_open(instant, window, tz):
        return instant
    assert window is not None  # is_open() is True without a window
    today = instant.astimezone(tz).date()
    # Eight days: today (if the start is still ahead) plus a full week.
    for offset in range(8):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opening = _wall_to_utc(day, window.start, tz)
        if opening > instant:
            return opening
    raise AssertionError("a send window always opens within a week")  # pragma: no cover


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _wall_to_utc(day: date, clock: time, tz: tzinfo) -> datetime:
    """The first instant whose wall-clock time in ``tz`` on ``day`` is at or after ``clock``."""
    wall = datetime.combine(day, clock)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _local_naive(first, tz) == wall:
        return first  # exists (the first occurrence if it happens twice)
    # ``clock`` falls in a gap (clocks jumped forward over it). fold=1 interprets it with the
    # offset after the jump, which lands *before* the gap; fold=0 lands after it. The opening is
    # the jump itself: the first instant in between whose wall time is at or after ``clock``.
    low = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(first.timestamp())
    low, high = min(low, high), max(low, high)
    while high - low > 1:
        middle = (low + high) // 2
        if _local_naive(datetime.fromtimestamp(middle, UTC), tz) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _local_naive(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


# --- the customer's time zone -----------------------------------------------------------------

# Indonesia has three zones. WooCommerce's state codes for Indonesia (i18n/states.php) are two
# letters; everything not listed here is on Western Indonesia Time (WIB, Asia/Jakarta).
_INDONESIA: Final[dict[str, str]] = {
    # WIB, but with IANA's own name for West and Central Kalimantan (same offset as Jakarta).
    "KB": "Asia/Pontianak",  # Kalimantan Barat
    "KT": "Asia/Pontianak",  # Kalimantan Tengah
    # WITA, Central Indonesia Time (UTC+8).
    "BA": "Asia/Makassar",  # Bali
    "NB": "Asia/Makassar",  # Nusa Tenggara Barat
    "NT": "Asia/Makassar",  # Nusa Tenggara Timur
    "KS": "Asia/Makassar",  # Kalimantan Selatan
    "KI": "Asia/Makassar",  # Kalimantan Timur
    "KU": "Asia/Makassar",  # Kalimantan Utara
    "SA": "Asia/Makassar",  # Sulawesi Utara
    "ST": "Asia/Makassar",  # Sulawesi Tengah
    "SG": "Asia/Makassar",  # Sulawesi Tenggara
    "SR": "Asia/Makassar",  # Sulawesi Barat
    "SN": "Asia/Makassar",  # Sulawesi Selatan
    "GO": "Asia/Makassar",  # Gorontalo
    # WIT, Eastern Indonesia Time (UTC+9).
    "MA": "Asia/Jayapura",  # Maluku
    "MU": "Asia/Jayapura",  # Maluku Utara
    "PA": "Asia/Jayapura",  # Papua
    "PB": "Asia/Jayapura",  # Papua Barat
    # The 2022 Papuan provinces, for stores whose state list already has them.
    "PD": "Asia/Jayapura",  # Papua Barat Daya
    "PE": "Asia/Jayapura",  # Papua Pegunungan
    "PS": "Asia/Jayapura",  # Papua Selatan
    "PT": "Asia/Jayapura",  # Papua Tengah
}

# Some checkout plugins store the province name instead of the code.
_INDONESIA_NAMES: Final[dict[str, str]] = {
    "bali": "BA", "nusa tenggara barat": "NB", "ntb": "NB", "nusa tenggara timur": "NT",
    "ntt": "NT", "kalimantan barat": "KB", "kalimantan tengah": "KT",
    "kalimantan selatan": "KS", "kalimantan timur": "KI", "kalimantan utara": "KU",
    "sulawesi utara": "SA", "sulawesi tengah": "ST", "sulawesi tenggara": "SG",
    "sulawesi barat": "SR", "sulawesi selatan": "SN", "gorontalo": "GO", "maluku": "MA",
    "maluku utara": "MU", "papua": "PA", "papua barat": "PB", "papua barat daya": "PD",
    "papua pegunungan": "PE", "papua selatan": "PS", "papua tengah": "PT",
}  # fmt: skip

# Australia's WooCommerce state codes.
_AUSTRALIA: Final[dict[str, str]] = {
    "ACT": "Australia/Sydney", "NSW": "Australia/Sydney", "VIC": "Australia/Melbourne",
    "QLD": "Australia/Brisbane", "SA": "Australia/Adelaide", "WA": "Australia/Perth",
    "TAS": "Australia/Hobart", "NT": "Australia/Darwin",
}  # fmt: skip

# One zone is right (or right enough for "not at 3 a.m.") for the whole country.
_COUNTRY: Final[dict[str, str]] = {
    "ID": "Asia/Jakarta",
    "MY": "Asia/Kuala_Lumpur",  # Sabah and Sarawak share the offset
    "SG": "Asia/Singapore",
    "BN": "Asia/Brunei",
    "TH": "Asia/Bangkok",
    "VN": "Asia/Ho_Chi_Minh",
    "PH": "Asia/Manila",
    "KH": "Asia/Phnom_Penh",
    "LA": "Asia/Vientiane",
    "MM": "Asia/Yangon",
    "TL": "Asia/Dili",
    "HK": "Asia/Hong_Kong",
    "MO": "Asia/Macau",
    "TW": "Asia/Taipei",
    "CN": "Asia/Shanghai",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "IN": "Asia/Kolkata",
    "BD": "Asia/Dhaka",
    "LK": "Asia/Colombo",
    "PK": "Asia/Karachi",
    "AE": "Asia/Dubai",
    "SA": "Asia/Riyadh",
    "QA": "Asia/Qatar",
    "NZ": "Pacific/Auckland",
    "AU": "Australia/Sydney",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "NL": "Europe/Amsterdam",
    "DE": "Europe/Berlin",
    "FR": "Europe/Paris",
    "BE": "Europe/Brussels",
    "AT": "Europe/Vienna",
    "CH": "Europe/Zurich",
    "IT": "Europe/Rome",
    "ES": "Europe/Madrid",
}


def customer_timezone(country: str, state: str, fallback: tzinfo) -> tzinfo:
    """The customer's zone from the billing country and state; ``fallback`` when unknown.

    Country and state are WooCommerce codes (``ID``/``BA``), compared case-insensitively.
    Countries spanning several zones are resolved by state where it matters to the shops this
    serves (Indonesia, Australia); others use their main zone.
    """
    code = (country or "").strip().upper()
    region = (state or "").strip()
    name: str | None = None
    if code == "ID":
        key = region.upper()
        if key not in _INDONESIA:
            key = _INDONESIA_NAMES.get(" ".join(region.lower().split()), key)
        name = _INDONESIA.get(key, _COUNTRY["ID"])
    elif code == "AU":
        name = _AUSTRALIA.get(region.upper(), _COUNTRY["AU"])
    else:
        name = _COUNTRY.get(code)
    return ZoneInfo(name) if name is not None else fallback
