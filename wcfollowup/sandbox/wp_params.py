"""How WordPress reads a request: PHP's ``$_GET``, REST argument validation, dates, ``_fields``.

These are the places where a real server is looser or stranger than the docs (repeated
parameters, last value wins; dotted ``_fields`` that silently drop arrays; offset-bearing dates
converted to site-local time), so they are reproduced here on purpose, not tidied up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote, unquote_plus

PhpValue = str | dict[str, str]


def php_query(raw_query: str) -> dict[str, PhpValue]:
    """Parse a query string like PHP fills ``$_GET``: repeated keys keep the last value,
    ``key[]``/``key[sub]`` become arrays, and ``.``/space in a key's base become ``_``."""
    params: dict[str, PhpValue] = {}
    for part in raw_query.split("&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition("=")
        key = unquote_plus(raw_key).lstrip(" ")
        value = unquote_plus(raw_value)
        if not key:
            continue
        bracket = key.find("[")
        if bracket > 0 and key.endswith("]"):
            base = key[:bracket].replace(".", "_").replace(" ", "_")
            sub = key[bracket + 1 : key.find("]", bracket)]
            current = params.get(base)
            array = current if isinstance(current, dict) else {}
            if sub == "":
                numeric = [int(k) for k in array if k.isdigit()]
                sub = str(max(numeric) + 1 if numeric else 0)
            array[sub] = value
            params[base] = array
        else:
            params[key.replace(".", "_").replace(" ", "_")] = value
    return params


def flatten(params: dict[str, PhpValue]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, dict):
            pairs.extend((f"{key}[{sub}]", item) for sub, item in value.items())
        else:
            pairs.append((key, value))
    return pairs


def echo_query(pairs: list[tuple[str, str]]) -> str:
    """Re-encode parameters the way WordPress writes them into ``Link`` headers.

    ``+`` is left raw, as observed on the real server (an OAuth signature's ``+`` arrives as a
    space when the link is followed, which WooCommerce then turns back into ``+``).
    """
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='+')}" for k, v in pairs)


def as_list(value: PhpValue | None) -> list[str]:
    """A WP "array" argument: a JSON-style array, or a comma/space separated string."""
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.values())
    return [item for item in re.split(r"[\s,]+", value) if item]


# -- validation errors ---------------------------------------------------------------------------


@dataclass
class ParamErrors:
    """Collects every bad argument, as WordPress reports them all in one 400."""

    problems: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, name: str, code: str, message: str) -> None:
        self.problems.setdefault(name, (code, message))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def body(self) -> dict[str, Any]:
        names = ", ".join(self.problems)
        return {
            "code": "rest_invalid_param",
            "message": f"Invalid parameter(s): {names}",
            "data": {
                "status": 400,
                "params": {name: message for name, (_, message) in self.problems.items()},
                "details": {
                    name: {"code": code, "message": message, "data": None}
                    for name, (code, message) in self.problems.items()
                },
            },
        }


def wp_list(items: list[str]) -> str:
    """WordPress' ``%l`` list formatting: "a, b, and c"."""
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f", and {items[-1]}"


def read_int(
    params: dict[str, PhpValue],
    name: str,
    default: int,
    errors: ParamErrors,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw.strip()):
        errors.add(name, "rest_invalid_type", f"{name} is not of type integer.")
        return default
    value = int(raw)
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        errors.add(
            name,
            "rest_out_of_bounds",
            f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)",
        )
    elif minimum is not None and value < minimum:
        errors.add(name, "rest_out_of_bounds", f"{name} must be greater than or equal to {minimum}")
    return value


def read_bool(params: dict[str, PhpValue], name: str, errors: ParamErrors) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if isinstance(raw, str) and raw.lower() in ("true", "1", "false", "0", ""):
        return raw.lower() in ("true", "1")
    errors.add(name, "rest_invalid_type", f"{name} is not of type boolean.")
    return False


def read_enum(
    params: dict[str, PhpValue], name: str, allowed: list[str], default: str, errors: ParamErrors
) -> str:
    raw = params.get(name)
    if raw is None:
        return default
    if isinstance(raw, str) and raw in allowed:
        return raw
    errors.add(name, "rest_not_in_enum", f"{name} is not one of {wp_list(allowed)}.")
    return default


def read_int_list(params: dict[str, PhpValue], name: str, errors: ParamErrors) -> list[int] | None:
    if name not in params:
        return None
    values: list[int] = []
    for position, item in enumerate(as_list(params[name])):
        if not re.fullmatch(r"\d+", item):
            errors.add(name, "rest_invalid_type", f"{name}[{position}] is not of type integer.")
            return None
        values.append(int(item))
    return values


# -- dates ---------------------------------------------------------------------------------------

_WP_DATE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_wp_date(value: str) -> datetime | None:
    """``rest_parse_date``: full date-time only; returns naive (no offset) or aware."""
    match = _WP_DATE.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        parsed = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    offset = match.group(7)
    if offset is None:
        return parsed
    if offset in ("Z", "z"):
        return parsed.replace(tzinfo=UTC)
    digits = offset[1:].replace(":", "")
    shift = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return parsed.replace(tzinfo=timezone(shift if offset[0] == "+" else -shift))


def date_bound(value: datetime, dates_are_gmt: bool, site_tz: tzinfo) -> int:
    """The instant (epoch seconds) WooCommerce 6.6 actually compares a date filter against.

    WordPress first turns an offset-bearing value into site-local wall time. Without
    ``dates_are_gmt`` that wall time is compared with the local column (right instant); with it,
    the *local* wall time is compared with the GMT column — the shift in FACTS.md §5.
    """
    wall = value.astimezone(site_tz).replace(tzinfo=None) if value.tzinfo else value
    if dates_are_gmt:
        return int(wall.replace(tzinfo=UTC).timestamp())
    return int(wall.replace(tzinfo=site_tz).timestamp())


# -- _fields -------------------------------------------------------------------------------------

FieldTree = dict[str, Any]  # name -> True (whole value) or a nested FieldTree


def parse_fields(value: PhpValue | None) -> FieldTree | None:
    names = as_list(value)
    if not names:
        return None
    tree: FieldTree = {}
    for name in names:
        node = tree
        parts = name.split(".")
        for depth, part in enumerate(parts):
            if node.get(part) is True:
                break
            if depth == len(parts) - 1:
                node[part] = True
            else:
                node = node.setdefault(part, {})
    return tree


def filter_fields(data: dict[str, Any], tree: FieldTree) -> dict[str, Any]:
    """Keep requested keys in the object's own order; a dotted path into an array drops it."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        wanted = tree.get(key)
        if wanted is None:
            continue
        if wanted is True:
            kept[key] = value
        elif isinstance(value, dict):
            kept[key] = filter_fields(value, wanted)
    return kept
