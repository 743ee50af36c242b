"""The ``sequences`` of ``config.yaml``: the follow-ups to send, their steps, delays and kinds.

A step's ``after`` may count from completion or delivery (``after: {delivered: 3d}``); its kind
(email, review, survey, coupon) decides what it sends. Sequence and step names must be unique,
and ``duplicate_names`` finds repeats in the raw YAML so that the loader can point at each one.
The settings sections are in ``config.settings``; ``config.models`` puts both together.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wcfollowup.config.base import _Model
from wcfollowup.config.conditions import Amount, Condition
from wcfollowup.config.durations import Duration, at_least, format_duration, validate_duration
from wcfollowup.config.fields import Slug, WholeNumber
from wcfollowup.config.messages import invalid
from wcfollowup.config.schedule import FrequencyCap, SendWindow

Loc = tuple[str | int, ...]

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
        raise_on_duplicates([step.name for step in steps], "step")
        return steps


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


def raise_on_duplicates(names: list[str], what: str) -> None:
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
