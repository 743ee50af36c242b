"""The shape of ``config.yaml``: what the engine may rely on once a config has loaded.

Every model forbids unknown keys (a typo must never silently fall back to a default) and is
frozen (a reload builds a new config; nothing mutates a running one). Step and sequence models are
deliberately plain so later kinds (coupon, survey), conditions and anchors can be added as new
fields or as a discriminated union on ``kind`` without touching the loader.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wcfollowup.config.base import _Model
from wcfollowup.config.conditions import Amount, Condition
from wcfollowup.config.durations import Duration, at_least, format_duration, validate_duration
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
from wcfollowup.config.schedule import FrequencyCap, SendWindow

SOURCE_PATH = "source_path"
"""Validation-context key: the file the config was loaded from."""

Loc = tuple[str | int, ...]


Language = Literal["en", "id", "ms"]
DEFAULT_LANGUAGE_BY_COUNTRY: dict[str, Language] = {"ID": "id", "MY": "ms", "BN": "ms"}


def _country_code(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().upper()
        if len(value) == 2 and value.isalpha():
            return value
    raise invalid("country", "{value} is not a two-letter country code like ID or MY", value)


CountryCode = Annotated[str, BeforeValidator(_country_code)]


class StoreConfig(_Model):
    name: Text
    url: WebUrl
    consumer_key: Secret
    consumer_secret: Secret
    timezone: TimeZoneName
    language: Language = "en"
    # Billing country -> message language; countries not listed get `language`.
    language_by_country: dict[CountryCode, Language] = Field(
        default_factory=lambda: dict(DEFAULT_LANGUAGE_BY_COUNTRY)
    )
    # Who gets owner notifications (a low survey score); default: the sender address.
    owner_email: EmailAddress | None = None
    # A page explaining returns, linked from the thank-you email.
    returns_url: WebUrl | None = None
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
    # A SendGrid unsubscribe group (Suppressions -> Unsubscribe Groups): SendGrid then hosts the
    # unsubscribe link and suppresses the address itself. Without it, wcfollowup serves the link.
    unsubscribe_group_id: Annotated[WholeNumber, Field(ge=1)] | None = None


def _listen_address(value: Any) -> Any:
    if isinstance(value, str):
        host, sep, port = value.strip().rpartition(":")
        host = host.strip("[]")
        if sep and host and port.isdigit() and 0 <= int(port) <= 65535:
            return (host, int(port))
    raise invalid(
        "listen",
        "{value} is not an address to listen on; write HOST:PORT, like 127.0.0.1:8780",
        value,
    )


ListenAddress = Annotated[
    tuple[str, int],
    PlainValidator(_listen_address),
    PlainSerializer(lambda hp: f"{hp[0]}:{hp[1]}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["127.0.0.1:8780"]}),
]


class HttpConfig(_Model):
    """The daemon's small web listener for survey and unsubscribe links."""

    listen: ListenAddress = ("127.0.0.1", 8780)
    # The address customers' links start with, as your reverse proxy publishes the listener,
    # e.g. https://batiksari.co.id/wcf
    public_url: WebUrl
    # Key for signing links. Default: generated on first start into the state folder.
    signing_key: Secret | None = None
    max_body_bytes: Annotated[WholeNumber, Field(ge=1024, le=1_048_576)] = 16_384
    # Connections the listener holds at once (never more than a quarter of the descriptor limit),
    # and the time a client has to send a whole request before it is dropped.
    max_connections: Annotated[WholeNumber, Field(ge=2, le=10_000)] = 100
    request_timeout: Annotated[Duration, at_least(timedelta(seconds=1))] = timedelta(seconds=10)


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


def _forever(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("forever", "never"):
        return None
    return value


MIN_RETENTION = timedelta(weeks=4)
DEFAULT_RETENTION = timedelta(days=730)


class PrivacyConfig(_Model):
    """How long customers' personal data stays in the state database.

    Older finished follow-ups keep their counts (sent, failed, answered, redeemed, scores) but
    lose addresses and survey comments, once a day. ``forever`` turns this off.
    """

    retention: Annotated[
        Annotated[Duration, at_least(MIN_RETENTION)] | None, BeforeValidator(_forever)
    ] = DEFAULT_RETENTION


# --- delivery -------------------------------------------------------------------------------

DEFAULT_TRACKING_META_KEY = "_wc_shipment_tracking_items"
_CORE_STATUSES = frozenset(
    {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed",
     "trash", "checkout-draft", "draft"}
)  # fmt: skip


def _order_status(value: Any) -> Any:
    """``wc-delivered`` (as plugins show it) and ``Delivered`` both mean ``delivered``."""
    if isinstance(value, str):
        value = value.strip().lower().removeprefix("wc-")
        if value in _CORE_STATUSES:
            raise invalid(
                "core_status",
                "'{status}' is a WooCommerce core status; the delivered status must be a "
                "custom one that your store sets when the parcel arrives, such as 'delivered'",
                value,
                status=value,
            )
    return value


class TrackingConfig(_Model):
    """Shipment-tracking meta: delivered = the latest ``date_shipped`` + ``transit``."""

    meta_key: Text = DEFAULT_TRACKING_META_KEY
    transit: Annotated[Duration, at_least(timedelta(hours=1))]


class DeliveryConfig(_Model):
    """How the store tells that a parcel arrived; any combination, the first signal wins."""

    status: Annotated[Slug, BeforeValidator(_order_status)] | None = None
    meta_key: Text | None = None
    tracking: TrackingConfig | None = None
    assume_after: Duration | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if (self.status, self.meta_key, self.tracking, self.assume_after) == (None,) * 4:
            raise invalid(
                "delivery_empty",
                "say how delivery is known: set at least one of 'status', 'meta_key', "
                "'tracking' or 'assume_after' (or remove the 'delivery' section)",
                "",
            )
        return self


# --- steps and sequences --------------------------------------------------------------------

ANCHORS: tuple[str, ...] = ("completed", "delivered")
AFTER_HINT = "write a delay like 30m, or anchor it: {delivered: 3d} or {completed: 1h}"


class _Anchored:
    """``after: {delivered: 3d}`` on its way from the step validator to the ``after`` field."""

    __slots__ = ("anchor", "value")

    def __init__(self, anchor: str, value: object) -> None:
        self.anchor = anchor
        self.value = value


def _after(value: Any) -> timedelta:
    if isinstance(value, _Anchored):
        try:
            return validate_duration(value.value)
        except PydanticCustomError as error:
            context = dict(error.context or {})
            raise PydanticCustomError(
                error.type, error.message_template, {**context, "at": (value.anchor,)}
            ) from None
    if isinstance(value, dict):
        keys = [str(key) for key in value]
        unknown = [key for key in keys if key not in ANCHORS]
        if unknown:
            close = difflib.get_close_matches(unknown[0].lower(), ANCHORS, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else "use 'completed' or 'delivered'"
            raise invalid(
                "anchor",
                "'{key}' is not something to wait for; {hint}",
                unknown[0],
                at=(unknown[0],),
                key=unknown[0],
                hint=hint,
            )
        if len(keys) != 1:
            raise invalid("anchor", "choose one anchor; " + AFTER_HINT, value)
    if isinstance(value, list):
        raise invalid("duration", "{value} is not a delay; " + AFTER_HINT, value)
    return validate_duration(value)


After = Annotated[
    timedelta,
    PlainValidator(_after),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "examples": ["30m", "3d"]},
                {
                    "type": "object",
                    "properties": {
                        "completed": {"type": "string"},
                        "delivered": {"type": "string"},
                    },
                    "minProperties": 1,
                    "maxProperties": 1,
                },
            ]
        }
    ),
]

WINDOW_ALWAYS = "always"


StepKind = Literal["email", "review", "survey", "coupon"]
DEFAULT_TEMPLATE: dict[str, str] = {
    "review": "review-request",
    "survey": "survey",
    "coupon": "coupon",
}


def _coupon_prefix(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().upper()
        if 1 <= len(text) <= 12 and text.replace("-", "").isalnum() and text.isascii():
            return text
    raise invalid(
        "coupon_prefix",
        "{value} is not a coupon prefix; use 1 to 12 letters, digits or dashes, like TERIMAKASIH",
        value,
    )


class CouponConfig(_Model):
    """A personal coupon created in the store through ``POST /wc/v3/coupons``."""

    discount_type: Literal["percent", "fixed_cart", "fixed_product"] = "percent"
    amount: Amount
    expires_in: Annotated[Duration, at_least(timedelta(days=1))] = timedelta(days=30)
    minimum_spend: Amount | None = None
    products: list[Annotated[WholeNumber, Field(ge=1)]] = Field(default_factory=list)
    categories: list[Annotated[WholeNumber, Field(ge=1)]] = Field(default_factory=list)
    exclude_sale_items: bool = False
    free_shipping: bool = False
    prefix: Annotated[str, BeforeValidator(_coupon_prefix)] = "THANKS"

    @model_validator(mode="after")
    def _sane_amount(self) -> Self:
        if self.amount <= 0:
            raise invalid("coupon_amount", "the coupon amount must be more than 0", "")
        if self.discount_type == "percent" and self.amount > 100:
            raise invalid(
                "coupon_amount",
                "a percent coupon cannot give more than 100% off (amount: {amount})",
                "",
                at=("amount",),
                amount=str(self.amount),
            )
        return self


class StepConfig(_Model):
    """One follow-up. ``after`` counts from ``anchor``: order completion or delivery.

    Kinds: ``email`` sends ``template``; ``review`` asks for a review of each product not yet
    reviewed; ``survey`` sends one-click rating links; ``coupon`` creates a personal coupon in
    the store and emails it. ``to: owner`` sends to the shop owner instead of the customer.

    Window: a step's own ``window`` replaces the config's ``send_window``; ``window: always``
    (``window_always=True``) sends whenever due. Use :meth:`effective_window`.
    """

    name: Slug
    kind: StepKind = "email"
    to: Literal["customer", "owner"] = "customer"
    after: After = timedelta(0)
    anchor: Literal["completed", "delivered"] = "completed"
    template: Slug = ""
    # Survey links stop working after this long.
    expires_in: Annotated[Duration, at_least(timedelta(hours=1))] = timedelta(days=30)
    coupon: CouponConfig | None = None
    window: SendWindow | None = None
    window_always: bool = False
    cap: FrequencyCap | None = None
    skip_if: Condition | None = None
    only_if: Condition | None = None

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        after = data.get("after")
        if isinstance(after, dict) and len(after) == 1:
            anchor, delay = next(iter(after.items()))
            if anchor in ANCHORS:
                written = data.get("anchor")
                if written is not None and written != anchor:
                    raise invalid(
                        "anchor_conflict",
                        "'anchor: {written}' contradicts 'after: {{{anchor}: ...}}'; keep one",
                        written,
                        written=str(written),
                        anchor=anchor,
                    )
                data["after"] = _Anchored(anchor, delay)
                data["anchor"] = anchor
        window = data.get("window")
        if isinstance(window, str) and window.strip().lower() == WINDOW_ALWAYS:
            data.pop("window")
            data["window_always"] = True
        return data

    @model_validator(mode="after")
    def _kind_needs(self) -> Self:
        if not self.template:
            default = DEFAULT_TEMPLATE.get(self.kind)
            if default is None:
                raise invalid(
                    "template_missing",
                    "an email step needs a template, e.g. template: thank-you",
                    "",
                    at=("template",),
                )
            object.__setattr__(self, "template", default)
        if self.kind == "coupon" and self.coupon is None:
            raise invalid(
                "coupon_missing",
                "a coupon step needs a 'coupon' section, at least: coupon: {amount: 10}",
                "",
                at=("coupon",),
            )
        if self.kind != "coupon" and self.coupon is not None:
            raise invalid(
                "coupon_kind",
                "'coupon' settings only apply to a step with kind: coupon",
                "",
                at=("coupon",),
            )
        if self.to == "owner" and self.kind != "email":
            raise invalid(
                "owner_kind",
                "only an email step can go to the owner ('to: owner' with kind: {step_kind})",
                "",
                at=("to",),
                step_kind=self.kind,
            )
        return self

    @model_validator(mode="after")
    def _window_choice(self) -> Self:
        if self.window_always and self.window is not None:
            raise invalid(
                "window_conflict", "a step cannot have both a window and 'window: always'", ""
            )
        return self

    def effective_window(self, default: SendWindow | None) -> SendWindow | None:
        """The window this step waits for: its own, none (``always``), or the default."""
        if self.window_always:
            return None
        return self.window if self.window is not None else default


class SequenceConfig(_Model):
    name: Slug
    trigger: Literal["order_completed"] = "order_completed"
    conditions: Condition | None = None
    once_per_customer: bool = False
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
        _raise_on_duplicates([sequence.name for sequence in sequences], "sequence")
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


def _name_of(item: Any) -> object:
    return item.get("name") if isinstance(item, dict) else None
