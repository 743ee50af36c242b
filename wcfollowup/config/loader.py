"""``load_config``: file in, validated :class:`Config` or every problem at once out.

Reads one file and the given environment mapping; no network. Its one side effect: the secrets
of a valid config join the process-wide redaction list (``wcfollowup.common.redact``), so every log
line, message row and page redacts them from the moment they exist in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from wcfollowup.common.redact import register_secrets
from wcfollowup.config.errors import (
    ConfigError,
    ConfigProblem,
    Loc,
    closest_key,
    describe,
    format_location,
    is_sensitive,
    known_keys,
)
from wcfollowup.config.fields import BASE_DIR
from wcfollowup.config.models import SOURCE_PATH, Config
from wcfollowup.config.sequences import DUPLICATE_NAME_ERROR, duplicate_names
from wcfollowup.config.yaml_source import Document, Position, read_document

EXTENSION = "x-"


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load and validate ``path``; ``${VAR}`` references are filled from ``env`` (os.environ).

    Raises :class:`ConfigError` listing every problem, sorted by line, for any bad input.
    """
    file = os.fspath(path)
    source = Path(file).absolute()
    document = read_document(Path(file), os.environ if env is None else env)
    problems = list(document.problems)
    # Top-level keys starting with "x-" are a parking place for &anchors shared by sequences.
    data = {key: value for key, value in document.data.items() if not key.startswith(EXTENSION)}
    try:
        config = Config.model_validate(data, context={BASE_DIR: source.parent, SOURCE_PATH: source})
    except ValidationError as error:
        problems.extend(_translate(file, document, error))
        problems.extend(
            _make(file, document.mark_for(loc).value, loc, message)
            for loc, message in duplicate_names(document.data)
        )
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    register_secrets(secrets_of(config))
    return config


def secrets_of(config: Config) -> list[str]:
    """Every secret a config holds: API keys, the link-signing key, a database password."""
    store, mail = config.store, config.sendgrid
    found = [
        store.consumer_key.get_secret_value(),
        store.consumer_secret.get_secret_value(),
        mail.api_key.get_secret_value(),
    ]
    if config.http is not None and config.http.signing_key is not None:
        found.append(config.http.signing_key.get_secret_value())
    if config.database.url is not None:
        try:
            password = urlsplit(config.database.url).password
        except ValueError:
            password = None
        if password:
            found.extend({password, unquote(password)})
    return found


def _translate(file: str, document: Document, error: ValidationError) -> list[ConfigProblem]:
    located = [
        (details, _data_loc(details, document.data))
        for details in error.errors(include_url=False)
        if details["type"] != DUPLICATE_NAME_ERROR  # duplicate_names() reports them precisely
    ]
    # "unknown key 'consumer_secrt'; did you mean 'consumer_secret'?" already says it all;
    # a second "missing required key 'consumer_secret'" would only add noise.
    misspelt = {
        (loc[:-1], closest_key(loc[-1], known_keys(Config, loc[:-1])))
        for details, loc in located
        if details["type"] == "extra_forbidden"
    }
    problems: list[ConfigProblem] = []
    for details, loc in located:
        loc = _refine(details, loc, document.data)
        unresolved = any(loc[:end] in document.unresolved for end in range(len(loc) + 1))
        if unresolved and details["type"] != "extra_forbidden":
            continue  # already reported: the value could not be read or expanded
        if details["type"] == "missing" and (loc[:-1], loc[-1]) in misspelt:
            continue
        problems.append(_problem(file, document, details, loc))
    return problems


def _data_loc(details: ErrorDetails, data: Any) -> Loc:
    """Keep only the parts of pydantic's ``loc`` that name keys/indexes in the data.

    Validators and unions (later: step kinds) add parts such as ``function-after[...]`` or a
    tag name; they mean nothing to someone reading the YAML.
    """
    raw: Loc = tuple(details["loc"])
    kept: list[str | int] = []
    node: Any = data
    for position, part in enumerate(raw):
        last = position == len(raw) - 1
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            kept.append(part)
            node = node[part]
        elif last and details["type"] == "missing":
            kept.append(part)
    return tuple(kept)


def _refine(details: ErrorDetails, loc: Loc, data: Any) -> Loc:
    """Follow an error's ``at`` hint (see :func:`messages.invalid`) deeper into the data.

    A validator that sees a whole mapping (``after: {delivered: 3x}``) can say which part of it
    is wrong, so the problem points at ``3x`` rather than at ``after``.
    """
    at = (details.get("ctx") or {}).get("at")
    if not isinstance(at, tuple) or not at:
        return loc
    node: Any = data
    for part in loc:
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (node[part] if isinstance(node, list) and isinstance(part, int) else None)
        )
    refined = list(loc)
    for part in at:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        else:
            break
        refined.append(part)
    return tuple(refined)


def _problem(file: str, document: Document, details: ErrorDetails, loc: Loc) -> ConfigProblem:
    kind = details["type"]
    mark = document.mark_for(loc)
    reveal = not mark.env_vars and not is_sensitive(Config, loc)
    message = describe(details, Config, loc, reveal=reveal)
    if mark.env_vars and loc in document.marks and kind not in ("missing", "extra_forbidden"):
        names = ", ".join(dict.fromkeys(mark.env_vars))
        message += f" (the value comes from environment variable {names})"
    if kind == "missing":
        parent = document.mark_for(loc[:-1])
        position = parent.key or parent.value
        return _make(file, position, loc[:-1], message)
    if kind == "extra_forbidden":
        return _make(file, mark.key or mark.value, loc[:-1], message)
    position = mark.value if mark.scalar else (mark.key or mark.value)
    return _make(file, position, loc, message)


def _make(file: str, position: Position, loc: Loc, message: str) -> ConfigProblem:
    return ConfigProblem(file, position.line, position.column, format_location(loc), message)
