"""The shape of ``config.yaml``: what the engine may rely on once a config has loaded.

Every model forbids unknown keys (a typo must never silently fall back to a default) and is
frozen (a reload builds a new config; nothing mutates a running one). Step and sequence models are
deliberately plain so later kinds (coupon, survey), conditions and anchors can be added as new
fields or as a discriminated union on ``kind`` without touching the loader.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wcfollowup.config.durations import Duration, at_least
from wcfollowup.config.fields import (
    ConfigPath,
    DatabaseUrl,
    EmailAddress,
    Secret,
    Slug,
    Text,
    TimeZoneName,
    TlsVerify,
    WebUrl,
    WholeNumber,
)
from wcfollowup.config.messages import invalid

SOURCE_PATH = "source_path"
"""Validation-context key: the file the config was loaded from."""

Loc = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        """``poll:`` with every line below commented out is YAML null: treat it as "not set"."""
        if not isinstance(data, dict):
            return data
        return {
            key: value
            for key, value in data.items()
            if not (value is None and key in cls.model_fields and not _required(cls, key))
        }


class StoreConfig(_Model):
    name: Text
    url: WebUrl
    consumer_key: Secret
    consumer_secret: Secret
    timezone: TimeZoneName
    language: Literal["en", "id", "ms"] = "en"
    request_timeout: Annotated[Duration, at_least(timedelta(seconds=1))] = timedelta(seconds=30)
    verify_tls: TlsVerify = True

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SendGridConfig(_Model):
    api_key: Secret
    host: WebUrl = "https://api.sendgrid.com"
    from_email: EmailAddress
    from_name: Text | None = None
    request_timeout: Annotated[Duration, at_least(timedelta(seconds=1))] = timedelta(seconds=15)


class DatabaseConfig(_Model):
    path: ConfigPath | None = None
    url: Annotated[DatabaseUrl | None, Field(repr=False)] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.path is None) == (self.url is None):
            which = "both are set" if self.path is not None else "neither is set"
            raise invalid(
                "database_choice",
                "set exactly one of 'path' (a SQLite file, e.g. /var/lib/wcfollowup/state.db) "
                "or 'url' (e.g. postgresql+psycopg://USER:PASSWORD@HOST/DBNAME); {which}",
                "",
                which=which,
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.url is not None:
            return self.url
        assert self.path is not None  # guaranteed by _exactly_one
        return f"sqlite:///{os.path.abspath(self.path)}"


class PollConfig(_Model):
    interval: Annotated[Duration, at_least(timedelta(seconds=5))] = timedelta(seconds=60)
    overlap: Duration = timedelta(minutes=2)
    page_size: Annotated[WholeNumber, Field(ge=1, le=100)] = 100


class DispatchConfig(_Model):
    interval: Annotated[Duration, at_least(timedelta(seconds=1))] = timedelta(seconds=10)
    batch_size: Annotated[WholeNumber, Field(ge=1, le=1000)] = 50
    workers: Annotated[WholeNumber, Field(ge=1, le=64)] = 4


class StepConfig(_Model):
    name: Slug
    kind: Literal["email"] = "email"
    after: Duration = timedelta(0)
    template: Slug


class SequenceConfig(_Model):
    name: Slug
    trigger: Literal["order_completed"] = "order_completed"
    steps: Annotated[list[StepConfig], Field(min_length=1)]

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[StepConfig]) -> list[StepConfig]:
        _raise_on_duplicates([step.name for step in steps], "step")
        return steps


class Config(_Model):
    store: StoreConfig
    sendgrid: SendGridConfig
    database: DatabaseConfig
    poll: PollConfig = PollConfig()
    dispatch: DispatchConfig = DispatchConfig()
    templates_dir: ConfigPath | None = None
    sequences: Annotated[list[SequenceConfig], Field(min_length=1)]

    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("sequences")
    @classmethod
    def _unique_sequences(cls, sequences: list[SequenceConfig]) -> list[SequenceConfig]:
        _raise_on_duplicates([sequence.name for sequence in sequences], "sequence")
        return sequences

    @model_validator(mode="after")
    def _remember_source(self, info: ValidationInfo) -> Self:
        source = (info.context or {}).get(SOURCE_PATH)
        if source is not None:
            self._source_path = Path(source)
        return self

    @property
    def source_path(self) -> Path:
        """The file this config came from; ``<in-memory>`` for a config built in code.

        A placeholder rather than an exception keeps a SIGHUP reload of a code-built config a
        reported "file not found" instead of a crash.
        """
        return self._source_path if self._source_path is not None else Path("<in-memory>")


# --- unique names -----------------------------------------------------------------------------


def _duplicates(names: Sequence[object]) -> list[tuple[int, int]]:
    """``(index, index of first use)`` for every name that repeats an earlier one."""
    first: dict[object, int] = {}
    found: list[tuple[int, int]] = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in first:
            found.append((index, first[name]))
        else:
            first[name] = index
    return found


def _raise_on_duplicates(names: list[str], what: str) -> None:
    found = _duplicates(names)
    if found:
        index, earlier = found[0]
        raise invalid(
            "duplicate_name",
            "{what} name '{name}' is used by #{earlier} and #{index}; names must be unique",
            "",
            what=what,
            name=names[index],
            earlier=str(earlier + 1),
            index=str(index + 1),
        )


DUPLICATE_NAME_ERROR = "wcf_duplicate_name"


def duplicate_names(data: object) -> list[tuple[Loc, str]]:
    """Find repeated sequence and step names in raw YAML data, each with its exact location.

    The model validators above only run once a whole list validates, so a config with a typo
    *and* a repeated name would otherwise need two rounds of fixing. The loader calls this on the
    raw data to report both at once, and drops the validators' coarser errors.
    """
    problems: list[tuple[Loc, str]] = []
    sequences = data.get("sequences") if isinstance(data, dict) else None
    if not isinstance(sequences, list):
        return problems
    names = [_name_of(item) for item in sequences]
    for index, earlier in _duplicates(names):
        problems.append(
            (
                ("sequences", index, "name"),
                f"sequence name '{names[index]}' is already used by sequences[{earlier}]; "
                "sequence names must be unique",
            )
        )
    for seq_index, sequence in enumerate(sequences):
        steps = sequence.get("steps") if isinstance(sequence, dict) else None
        if not isinstance(steps, list):
            continue
        step_names = [_name_of(step) for step in steps]
        for index, earlier in _duplicates(step_names):
            problems.append(
                (
                    ("sequences", seq_index, "steps", index, "name"),
                    f"step name '{step_names[index]}' is already used by "
                    f"sequences[{seq_index}].steps[{earlier}]; "
                    "step names must be unique within a sequence",
                )
            )
    return problems


def _required(model: type[BaseModel], key: str) -> bool:
    return model.model_fields[key].is_required()


def _name_of(item: Any) -> object:
    return item.get("name") if isinstance(item, dict) else None
