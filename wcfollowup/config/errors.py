"""Problems as a store owner reads them: ``file:line:col: where: what to do``.

This is the only place that turns pydantic's error dictionaries into sentences, and the only place
that decides whether an input value may be echoed: never for secrets, sensitive fields or values
that came from environment variables.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from wcfollowup.config.base import yaml_fields, yaml_key
from wcfollowup.config.fields import Sensitive
from wcfollowup.config.messages import ERROR_PREFIX, render, show

Loc = tuple[str | int, ...]

FILE_LOCATION = "(file)"
TOP_LEVEL = "(top level)"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int
    column: int
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.location}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file; ``str()`` lists them one per line."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = sorted(
            problems, key=lambda p: (p.line, p.column, p.location, p.message)
        )
        super().__init__("\n".join(str(problem) for problem in self.problems))


def file_problem(file: str, message: str, line: int = 1, column: int = 1) -> ConfigProblem:
    return ConfigProblem(file, line, column, FILE_LOCATION, message)


def format_location(loc: Loc) -> str:
    """``("sequences", 0, "steps", 1, "after")`` -> ``sequences[0].steps[1].after``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or TOP_LEVEL


# --- walking the models along an error location -----------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside ``X | None``, ``list[X]`` and ``Annotated[X, ...]``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, frozenset, set):
        return [
            inner
            for arg in typing.get_args(annotation)
            if arg is not Ellipsis
            for inner in _unwrap(arg)
        ]
    return [annotation]


def _is_sensitive_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = typing.get_args(annotation)
        return any(isinstance(m, Sensitive) for m in metadata) or _is_sensitive_annotation(inner)
    if origin is not None:
        return any(_is_sensitive_annotation(arg) for arg in typing.get_args(annotation))
    return annotation is SecretStr


def _field_path(model: type[BaseModel], loc: Loc) -> tuple[list[type[BaseModel]], FieldInfo | None]:
    """The models met along ``loc`` (the last one owns the final key) and the final field."""
    models: list[type[BaseModel]] = [model]
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        owner = next((m for m in models if part in yaml_fields(m)), None)
        if owner is None:
            return models, None
        field = yaml_fields(owner)[part]
        models = [
            t for t in _unwrap(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)
        ]
    return models, field


def is_sensitive(model: type[BaseModel], loc: Loc) -> bool:
    _, field = _field_path(model, loc)
    if field is None:
        return False
    return any(isinstance(m, Sensitive) for m in field.metadata) or _is_sensitive_annotation(
        field.annotation
    )


def known_keys(model: type[BaseModel], parent: Loc) -> list[str]:
    models, _ = _field_path(model, parent)
    return [yaml_key(name, field) for m in models for name, field in m.model_fields.items()]


def _condition_synonyms(model: type[BaseModel], parent: Loc) -> Mapping[str, str] | None:
    """The condition model's synonym table if ``parent`` is a condition, else None."""
    models, _ = _field_path(model, parent)
    for found in models:
        if getattr(found, "IS_CONDITION", False):
            synonyms: Mapping[str, str] = getattr(found, "SYNONYMS", {})
            return synonyms
    return None


def unknown_condition_message(
    key: str | int, candidates: Sequence[str], synonyms: Mapping[str, str] | None = None
) -> str:
    close = (synonyms or {}).get(str(key).lower()) or closest_key(key, candidates)
    if close:
        return f"unknown condition '{key}'; did you mean '{close}'?"
    return f"unknown condition '{key}'; the conditions are: {', '.join(candidates)}"


# --- one pydantic error -> one sentence ---------------------------------------------------------


def _kind(value: object) -> str:
    """Describe a value without revealing it."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str | SecretStr):
        return "text"
    return show(value)


def _needs_quotes(value: object) -> bool:
    return not isinstance(value, str | Mapping | list) and value is not None


def closest_key(key: str | int, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(str(key), candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_message(key: str | int, candidates: Sequence[str]) -> str:
    close = closest_key(key, candidates)
    if close:
        return f"unknown key '{key}'; did you mean '{close}'?"
    return f"unknown key '{key}'; the keys allowed here are: {', '.join(candidates)}"


def describe(error: ErrorDetails, model: type[BaseModel], loc: Loc, *, reveal: bool) -> str:
    """The sentence for one pydantic error; ``reveal`` says whether the input may be echoed."""
    kind = error["type"]
    value = error.get("input")
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = show(value) if reveal else _kind(value)
    if kind.startswith(ERROR_PREFIX) and "template" in ctx:
        return render(str(ctx["template"]), ctx, reveal=reveal)
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "extra_forbidden":
        synonyms = _condition_synonyms(model, loc[:-1])
        if synonyms is not None:
            return unknown_condition_message(loc[-1], known_keys(model, loc[:-1]), synonyms)
        return unknown_key_message(loc[-1], known_keys(model, loc[:-1]))
    if kind == "string_type":
        quote = "; put it in quotes" if _needs_quotes(value) else ""
        return f"expected text, got {got}{quote}"
    if kind in ("string_too_short", "too_short") and isinstance(value, str | SecretStr):
        return "must not be empty"
    if kind == "too_short":
        what = str(loc[-1]).removesuffix("s") if loc and isinstance(loc[-1], str) else "item"
        return f"needs at least one {what}; it is empty"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the listed values')}, got {got}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}, got {got}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}, got {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (indented 'key: value' lines), got {got}"
    if kind == "list_type":
        return f"expected a list (lines starting with '- '), got {got}"
    if kind == "path_type":
        return f"expected a file path, got {got}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
