"""The settings sections of ``config.yaml``: store, SendGrid, web listener, database, privacy.

Also how the poller and the dispatcher pace themselves and how delivery is known. These are the
sections that say where things are and how the daemon behaves; what it sends, and when, is in
``config.sequences``. Kept apart so that each file reads as one part of the config.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from wcfollowup.config.base import _Model
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
