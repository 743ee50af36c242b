"""Wording shared by validators and the error formatter.

Validators raise :func:`invalid` instead of ``ValueError`` so the formatter can re-render the
message without the offending value when that value is secret or came from the environment:
the template travels with the error, and ``{value}`` is filled in only when it is safe to show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pydantic_core import PydanticCustomError

ERROR_PREFIX = "wcf_"
HIDDEN = "the value"
_MAX_SHOWN = 40


def show(value: object) -> str:
    """Describe a YAML value the way a store owner wrote it, short enough for one line."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {getattr(value, 'written', value)}"
    if isinstance(value, str):
        # A line break or other control character is shown escaped: the message stays one line.
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[: _MAX_SHOWN + 1])
        text = text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"
        return "'" + text.replace("'", "''") + "'" if text else "an empty text ''"
    if isinstance(value, dt.datetime | dt.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, Mapping):
        return "a mapping (key: value lines)"
    if isinstance(value, Sequence | set):
        return "a list"
    return f"a {type(value).__name__}"


def invalid(
    kind: str,
    template: str,
    value: object,
    *,
    at: tuple[str | int, ...] = (),
    **context: str,
) -> PydanticCustomError:
    """Build a validation error whose template may mention the input as ``{value}``.

    ``at`` names the part of a mapping or list value that is wrong (``("delivered",)``); the
    loader points the problem there when that part exists in the file.
    """
    extra: dict[str, object] = {"at": at} if at else {}
    return PydanticCustomError(
        ERROR_PREFIX + kind,
        template,
        {"value": show(value), "template": template, **context, **extra},
    )


def render(template: str, context: Mapping[str, object], *, reveal: bool) -> str:
    """Fill a template from :func:`invalid`, hiding the value unless ``reveal``.

    Context keys starting with ``value_`` are derived from the value (a parser's reason that
    quotes part of it, say) and are hidden along with it.
    """
    text = template
    for key, item in context.items():
        if key in ("template", "value") or not isinstance(item, str):
            continue
        hidden = key.startswith("value_") and not reveal
        text = text.replace("{" + key + "}", "" if hidden else item)
    shown = context.get("value") if reveal else HIDDEN
    return text.replace("{value}", str(shown))
