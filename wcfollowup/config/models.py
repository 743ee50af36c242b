"""The shape of ``config.yaml``: what the engine may rely on once a config has loaded.

Every model forbids unknown keys (a typo must never silently fall back to a default) and is
frozen (a reload builds a new config; nothing mutates a running one). Step and sequence models are
deliberately plain so later kinds (coupon, survey), conditions and anchors can be added as new
fields or as a discriminated union on ``kind`` without touching the loader.

This module holds the whole ``Config`` and the checks that span its sections; the sections
themselves are in ``config.settings`` (store, mail, web, database, privacy, delivery) and
``config.sequences`` (sequences and steps), and are importable from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from wcfollowup.config.base import _Model
from wcfollowup.config.fields import ConfigPath
from wcfollowup.config.messages import invalid
from wcfollowup.config.schedule import SendWindow
from wcfollowup.config.sequences import (
    CouponConfig,
    SequenceConfig,
    StepConfig,
    raise_on_duplicates,
)
from wcfollowup.config.settings import (
    DatabaseConfig,
    DeliveryConfig,
    DispatchConfig,
    HttpConfig,
    PollConfig,
    PrivacyConfig,
    SendGridConfig,
    StoreConfig,
    TrackingConfig,
)

__all__ = [
    "SOURCE_PATH",
    "Config",
    "CouponConfig",
    "DatabaseConfig",
    "DeliveryConfig",
    "DispatchConfig",
    "HttpConfig",
    "PollConfig",
    "PrivacyConfig",
    "SendGridConfig",
    "SequenceConfig",
    "StepConfig",
    "StoreConfig",
    "TrackingConfig",
]

SOURCE_PATH = "source_path"
"""Validation-context key: the file the config was loaded from."""


class Config(_Model):
    store: StoreConfig
    sendgrid: SendGridConfig
    database: DatabaseConfig
    poll: PollConfig = PollConfig()
    dispatch: DispatchConfig = DispatchConfig()
    http: HttpConfig | None = None
    templates_dir: ConfigPath | None = None
    delivery: DeliveryConfig | None = None
    send_window: SendWindow | None = None
    privacy: PrivacyConfig = PrivacyConfig()
    sequences: Annotated[list[SequenceConfig], Field(min_length=1)]

    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("sequences")
    @classmethod
    def _unique_sequences(cls, sequences: list[SequenceConfig]) -> list[SequenceConfig]:
        raise_on_duplicates([sequence.name for sequence in sequences], "sequence")
        return sequences

    @model_validator(mode="after")
    def _delivery_is_known(self) -> Self:
        for seq_index, sequence in enumerate(self.sequences):
            for step_index, step in enumerate(sequence.steps):
                if step.anchor == "delivered" and self.delivery is None:
                    raise invalid(
                        "delivery_missing",
                        "step '{step}' waits for delivery, but the config has no 'delivery' "
                        "section saying how delivery is known; add one (see "
                        "config.example.yaml), or count from completion: after: 3d",
                        "",
                        at=("sequences", seq_index, "steps", step_index, "after"),
                        step=step.name,
                    )
        return self

    @model_validator(mode="after")
    def _links_are_served(self) -> Self:
        if self.http is not None:
            return self
        for seq_index, sequence in enumerate(self.sequences):
            for step_index, step in enumerate(sequence.steps):
                if step.kind == "survey":
                    raise invalid(
                        "http_missing",
                        "step '{step}' sends survey links, which wcfollowup serves itself: add an "
                        "'http' section with public_url (see config.example.yaml)",
                        "",
                        at=("sequences", seq_index, "steps", step_index, "kind"),
                        step=step.name,
                    )
        if self.sendgrid.unsubscribe_group_id is None:
            raise invalid(
                "unsubscribe_missing",
                "every email carries an unsubscribe link: add an 'http' section with public_url "
                "(wcfollowup serves the link), or set sendgrid.unsubscribe_group_id",
                "",
                at=("sendgrid",),
            )
        return self

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
