"""Reusable field types: each one owns its validation and the sentence it says when it fails.

Keeping them out of ``models.py`` lets later step kinds (coupon, survey) and richer sequences
reuse the same spellings and messages without copying validators around.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
)

from wcfollowup.config.messages import invalid


class Sensitive:
    """Marks a field whose value must never be echoed in a message (like a SecretStr)."""


SENSITIVE: Final = Sensitive()

# --- plain text -----------------------------------------------------------------------------


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


Text = Annotated[str, BeforeValidator(_strip), Field(min_length=1)]
"""Non-empty text with surrounding spaces removed (YAML keeps trailing spaces in quotes)."""

Secret = Annotated[SecretStr, BeforeValidator(_strip), Field(min_length=1)]
"""A key or password: hidden in repr/str, never echoed in errors, surrounding spaces removed."""


def _whole_number(value: Any) -> Any:
    # pydantic would quietly turn ``true`` into 1; a store owner never means that.
    if isinstance(value, bool):
        raise invalid("whole_number", "expected a whole number, got {value}", value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]

# --- slugs ----------------------------------------------------------------------------------

SLUG_PATTERN: Final = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_SLUG = re.compile(SLUG_PATTERN)


def slugify(text: str) -> str:
    """The slug a store owner most likely meant: ``Thank You!`` -> ``thank-you``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _check_slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        example = slugify(value) or "thank-you"
        raise invalid(
            "slug",
            "{value} is not a valid name; use lowercase letters, digits and dashes, "
            "like '{example}'",
            value,
            example=example,
        )
    return value


Slug = Annotated[str, AfterValidator(_check_slug)]
"""An identifier that appears in the database and in SendGrid categories, so it must stay plain."""

# --- URLs -----------------------------------------------------------------------------------


def _check_web_url(value: str) -> str:
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() for ch in text)
        or (port is not None and not 0 < port < 65536)
    ):
        raise invalid("url", "{value} is not a URL; write it like https://shop.example.com", value)
    if parts.username is not None or parts.password is not None:
        # Never echo: the text contains a password.
        raise invalid(
            "url_credentials",
            "the URL must not contain a user name or password; put the keys in their own fields",
            "",
        )
    if parts.query or parts.fragment:
        raise invalid(
            "url_query",
            "{value} must not contain '?…' or '#…'; write only the address, "
            "like https://shop.example.com",
            value,
        )
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}".rstrip("/")


WebUrl = Annotated[
    str,
    AfterValidator(_check_web_url),
    WithJsonSchema({"type": "string", "format": "uri", "examples": ["https://shop.example.com"]}),
]
"""An http(s) base URL without query or fragment, stored without a trailing slash."""

_DB_URL = re.compile(r"^[a-z][a-z0-9]*(\+[a-z0-9_]+)?://.+$")


def _check_database_url(value: str) -> str:
    if not _DB_URL.match(value.strip()):
        raise invalid(
            "database_url",
            "the value is not a database URL; write it like "
            "postgresql+psycopg://USER:PASSWORD@HOST/DBNAME",
            "",
        )
    return value.strip()


DatabaseUrl = Annotated[str, AfterValidator(_check_database_url), SENSITIVE]
"""A SQLAlchemy URL; it usually embeds a password, so it is treated as sensitive."""

# --- email ----------------------------------------------------------------------------------


def _check_email(value: str) -> str:
    # Imported here: email_validator compiles large regexes at import (~60 ms on a small VPS).
    from email_validator import EmailNotValidError

    from wcfollowup.common.emails import checked_email

    try:
        return checked_email(value)
    except EmailNotValidError as error:
        reason = str(error).rstrip(".")
        raise invalid(
            "email",
            "{value} is not a valid email address{value_reason}",
            value,
            value_reason=f" ({reason[:1].lower()}{reason[1:]})",
        ) from None


EmailAddress = Annotated[
    str, AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})
]

# --- time zones -----------------------------------------------------------------------------

# Names people in the target markets write instead of an IANA zone.
_ZONE_ALIASES: Final = {
    "wib": "Asia/Jakarta",
    "wita": "Asia/Makassar",
    "wit": "Asia/Jayapura",
    "myt": "Asia/Kuala_Lumpur",
    "sgt": "Asia/Singapore",
    "jakarta": "Asia/Jakarta",
    "kuala lumpur": "Asia/Kuala_Lumpur",
    "gmt+7": "Asia/Jakarta",
    "utc+7": "Asia/Jakarta",
    "gmt+8": "Asia/Kuala_Lumpur",
    "utc+8": "Asia/Kuala_Lumpur",
}


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@functools.cache
def _zones_by_city() -> dict[str, str]:
    """``"jakarta" -> "Asia/Jakarta"``; regional names win over legacy aliases like "Singapore"."""
    cities: dict[str, str] = {}
    for zone in sorted(_zone_names(), key=lambda zone: "/" not in zone):
        cities.setdefault(zone.lower().rsplit("/", 1)[-1], zone)
    return cities


def suggest_time_zones(name: str) -> list[str]:
    """Close IANA names for a misspelt or informal zone, best first."""
    alias = _ZONE_ALIASES.get(name.strip().lower())
    if alias:
        return [alias]
    key = name.strip().lower().replace(" ", "_")
    cities = _zones_by_city()
    lowered = {zone.lower(): zone for zone in _zone_names()}
    if key in lowered:
        return [lowered[key]]
    if key in cities:
        return [cities[key]]
    close = [lowered[zone] for zone in _closest(key, list(lowered), cutoff=0.6)]
    if not close:
        close = [cities[city] for city in _closest(key, list(cities), cutoff=0.7)]
    canonical = [cities.get(zone.lower(), zone) if "/" not in zone else zone for zone in close]
    return list(dict.fromkeys(canonical))


def _closest(word: str, candidates: list[str], cutoff: float) -> list[str]:
    """Like difflib.get_close_matches, but drops matches clearly worse than the best one."""
    scored = sorted(
        ((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in candidates),
        reverse=True,
    )
    best = scored[0][0] if scored else 0.0
    return [c for score, c in scored[:3] if score >= max(cutoff, best - 0.05)]


def _check_time_zone(value: str) -> str:
    name = value.strip()
    try:
        if name and not name.startswith("/") and ".." not in name:
            zoneinfo.ZoneInfo(name)
            return name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    suggestions = suggest_time_zones(name)
    hint = (
        "did you mean " + " or ".join(f"'{zone}'" for zone in suggestions) + "?"
        if suggestions
        else "use a name like 'Asia/Jakarta' or 'Asia/Kuala_Lumpur'"
    )
    raise invalid("time_zone", "{value} is not a known time zone; {hint}", value, hint=hint)


TimeZoneName = Annotated[str, AfterValidator(_check_time_zone), WithJsonSchema({"type": "string"})]
"""An IANA time zone name such as ``Asia/Jakarta``."""

# --- paths ----------------------------------------------------------------------------------

BASE_DIR: Final = "base_dir"
"""Validation-context key: the directory relative paths are resolved against."""


def _resolve(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    base = (info.context or {}).get(BASE_DIR)
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return Path(os.path.normpath(path)) if path.is_absolute() else path


def _non_empty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise invalid("empty", "must not be empty", value)
    return value.strip() if isinstance(value, str) else value


ConfigPath = Annotated[Path, BeforeValidator(_non_empty_path), AfterValidator(_resolve)]
"""A file or directory path; relative paths are relative to the config file's directory."""

_TRUE_WORDS: Final = frozenset({"true", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"false", "no", "off"})


def _verify_tls(value: Any, info: ValidationInfo) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        word = value.strip().lower()
        if word in _TRUE_WORDS | _FALSE_WORDS:
            return word in _TRUE_WORDS
        path = _resolve(Path(value.strip()), info)
        _check_ca_bundle(path)
        return str(path)
    raise invalid(
        "verify_tls",
        "expected true, false or the path of a CA bundle file, got {value}",
        value,
    )


def _check_ca_bundle(path: Path) -> None:
    """The CA bundle must load now: a missing or broken one would fail every request of
    ``run`` (once with a traceback) after ``check`` had said OK."""
    import ssl

    if path.is_dir():
        return
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except FileNotFoundError:
        problem = "does not exist"
    except PermissionError:
        problem = "cannot be read by this user"
    except (ssl.SSLError, OSError, ValueError):
        problem = "holds no certificate in PEM format"
    else:
        return
    raise invalid(
        "verify_tls",
        "{path} {problem}; give the store's CA bundle (a PEM file with -----BEGIN "
        "CERTIFICATE-----), or true to trust the system's certificate authorities",
        str(path),
        path=str(path),
        problem=problem,
    )


TlsVerify = Annotated[
    bool | str,
    PlainValidator(_verify_tls),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string"}]}),
]
"""``true``/``false``, or a CA bundle path for stores with a private certificate authority."""
