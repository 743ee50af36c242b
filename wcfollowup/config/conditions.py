"""Conditions as store owners write them, validated into a small tree.

A condition is a mapping; each key is one test and a mapping with several keys means *all* of
them. ``all: [...]``, ``any: [...]`` and ``not: {...}`` combine them, and a plain list means
``all``. Evaluating the tree against an order lives in :mod:`wcfollowup.core.conditions`.

One model with every test as an optional field (rather than a union of small models) keeps
pydantic's error locations exact: a typo in a condition name is an unknown key at its own line,
with "did you mean", and a bad value is reported at the value.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from wcfollowup.config.base import _Model
from wcfollowup.config.fields import WholeNumber
from wcfollowup.config.messages import invalid

# --- amounts --------------------------------------------------------------------------------

_GROUPED = re.compile(r"\d{1,3}(?:[.,]\d{3})+")


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise invalid("amount", "expected an amount like 150000, got {value}", value)
    written = str(getattr(value, "written", value)).strip()
    if isinstance(value, str | float) and _GROUPED.fullmatch(written):
        plain = re.sub(r"[.,]", "", written)
        raise invalid(
            "amount_grouped",
            "{value} is ambiguous; write the amount without thousands separators, like {plain}",
            written,
            plain=plain,
        )
    try:
        amount = Decimal(written) if isinstance(value, str | float) else Decimal(value)
    except InvalidOperation:
        raise invalid(
            "amount",
            "{value} is not an amount; write digits only, like 150000 or 49.90 "
            "(no currency symbol, no thousands separators)",
            value,
        ) from None
    if not amount.is_finite() or amount < 0:
        raise invalid("amount", "{value} is not an amount; write 0 or more", value)
    return amount


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "examples": [150000]}),
]
"""An order total in the order's currency, as a Decimal; ``150.000`` is refused as ambiguous."""

# --- lists of words -------------------------------------------------------------------------


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def _word(value: Any) -> str:
    """A code, slug, SKU or method id: compared without regard to case or surrounding spaces."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid("word", "expected a name or number, got {value}", value)
    text = str(value).strip().lower()
    if not text:
        raise invalid("empty", "must not be empty", value)
    return text


Word = Annotated[str, BeforeValidator(_word)]


def _words(value: Any) -> Any:
    items = _as_list(value)
    if not items:
        raise invalid("empty_list", "the list is empty; name at least one", value)
    return items


Words = Annotated[frozenset[Word], BeforeValidator(_words)]
"""One word or a list of them; stored lower-cased."""


# --- countries ------------------------------------------------------------------------------


def _country(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid("country", "expected a two-letter country code like ID, got {value}", value)
    code = value.strip().upper()
    if re.fullmatch(r"[A-Z]{2}", code):
        return code
    suggestion = _country_code_for(value.strip())
    hint = f"; did you mean {suggestion}?" if suggestion else " like ID, MY or SG"
    raise invalid("country", "{value} is not a two-letter country code{hint}", value, hint=hint)


def _country_code_for(name: str) -> str | None:
    """``Indonesia`` -> ``ID``, via Babel's territory names (English, Indonesian, Malay)."""
    from babel import Locale

    wanted = name.lower()
    for language in ("en", "id", "ms"):
        for code, territory in Locale.parse(language).territories.items():
            if len(code) == 2 and territory.lower() == wanted:
                return str(code)
    return None


Countries = Annotated[frozenset[Annotated[str, BeforeValidator(_country)]], BeforeValidator(_words)]

# --- product / SKU / category matches ---------------------------------------------------------


def _positive_id(value: Any) -> Any:
    if isinstance(value, bool):
        raise invalid("product_id", "expected a product id (a whole number), got {value}", value)
    return value


ProductId = Annotated[WholeNumber, BeforeValidator(_positive_id), Field(ge=1)]


def _match_shape(value: Any) -> Any:
    """``11`` or ``[11, 12]`` mean ``{any: [...]}``; a mapping is validated as written."""
    if isinstance(value, dict):
        for key in ("any", "all"):
            if key in value and isinstance(value[key], list) and not value[key]:
                raise invalid(
                    "empty_list", "the list is empty; name at least one", value[key], at=(key,)
                )
            if key in value and not isinstance(value[key], list | tuple | frozenset | set):
                value = {**value, key: [value[key]]}
        return value
    if isinstance(value, list | tuple | set | frozenset) and not value:
        raise invalid("empty_list", "the list is empty; name at least one", value)
    return {"any": _as_list(value)}


class _Match(_Model):
    def __repr_args__(self) -> Any:
        return [(name, value) for name, value in super().__repr_args__() if value is not None]

    def _parts(self) -> tuple[frozenset[Any] | None, frozenset[Any] | None]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _something(self) -> _Match:
        any_of, all_of = self._parts()
        if any_of is None and all_of is None:
            raise invalid("match_empty", "write 'any: [...]' or 'all: [...]'", "")
        return self


class ProductMatch(_Match):
    """Product or variation ids: ``any`` (at least one is in the order) and/or ``all``."""

    any_of: frozenset[ProductId] | None = Field(None, alias="any")
    all_of: frozenset[ProductId] | None = Field(None, alias="all")

    def _parts(self) -> tuple[frozenset[Any] | None, frozenset[Any] | None]:
        return self.any_of, self.all_of


class TextMatch(_Match):
    """SKUs or category slugs/ids, lower-cased: ``any`` and/or ``all``."""

    any_of: frozenset[Word] | None = Field(None, alias="any")
    all_of: frozenset[Word] | None = Field(None, alias="all")

    def _parts(self) -> tuple[frozenset[Any] | None, frozenset[Any] | None]:
        return self.any_of, self.all_of


Products = Annotated[ProductMatch, BeforeValidator(_match_shape)]
Texts = Annotated[TextMatch, BeforeValidator(_match_shape)]

# --- coupons and meta -----------------------------------------------------------------------

_YES: Final = frozenset({"true", "yes", "y", "on"})
_NO: Final = frozenset({"false", "no", "n", "off"})


def _coupon_used(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _YES | _NO:
        return value.strip().lower() in _YES
    if isinstance(value, bool):
        return value
    return _words(value)


CouponUsed = Annotated[bool | frozenset[Word], BeforeValidator(_coupon_used)]
"""``true`` (any coupon), ``false`` (none), or codes (one of them), lower-cased."""


def _meta_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise invalid(
            "meta_bool",
            "{value} is ambiguous here; write the exact text the order stores, in quotes, "
            "like 'yes' or '1'",
            value,
        )
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float):
        return str(getattr(value, "written", value))
    raise invalid("meta_value", "expected a text or number, got {value}", value)


MetaValue = Annotated[str | None, BeforeValidator(_meta_value)]


def _meta(value: Any) -> Any:
    if isinstance(value, dict) and not value:
        raise invalid("empty_meta", "write at least one 'key: value' line", value)
    return value


# --- the tree -------------------------------------------------------------------------------

CONDITION_HINT: Final = (
    "write at least one condition, like 'total_at_least: 150000' or 'country: ID'"
)


class Condition(_Model):
    """One node: every test that is set must hold (a missing order field makes a test false).

    ``all_of`` / ``any_of`` / ``not_`` are written ``all`` / ``any`` / ``not`` in YAML.
    """

    IS_CONDITION: ClassVar[bool] = True
    SYNONYMS: ClassVar[dict[str, str]] = {
        "and": "all", "or": "any", "none": "not",
        "min_total": "total_at_least", "total_min": "total_at_least",
        "minimum_total": "total_at_least", "total_over": "total_at_least",
        "max_total": "total_at_most", "total_max": "total_at_most",
        "maximum_total": "total_at_most", "total_under": "total_at_most",
        "product": "products", "product_ids": "products", "sku": "skus",
        "category": "categories", "countries": "country", "billing_country": "country",
        "payment": "payment_method", "payment_methods": "payment_method",
        "coupon": "coupon_used", "coupons": "coupon_used", "coupon_code": "coupon_used",
        "first_order": "customer", "repeat_customer": "customer",
        "order_meta": "meta", "meta_data": "meta",
    }  # fmt: skip

    all_of: tuple[Condition, ...] | None = Field(None, alias="all")
    any_of: tuple[Condition, ...] | None = Field(None, alias="any")
    not_: Condition | None = Field(None, alias="not")
    total_at_least: Amount | None = None
    total_at_most: Amount | None = None
    products: Products | None = None
    skus: Texts | None = None
    categories: Texts | None = None
    customer: Literal["first", "repeat"] | None = None
    country: Countries | None = None
    payment_method: Words | None = None
    coupon_used: CouponUsed | None = None
    meta: Annotated[dict[str, MetaValue], BeforeValidator(_meta)] | None = None
    survey_score_at_least: Annotated[WholeNumber, Field(ge=1, le=5)] | None = None
    survey_score_at_most: Annotated[WholeNumber, Field(ge=1, le=5)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, list | tuple):
            return {"all": list(data)}
        if isinstance(data, str):
            raise invalid(
                "condition_text",
                "{value} is not a condition; write it as 'name: value', like "
                "'country: ID' or 'customer: repeat'",
                data,
            )
        if isinstance(data, dict):
            for key in ("all", "any"):
                if isinstance(data.get(key), list) and not data[key]:
                    raise invalid(
                        "empty_list",
                        "the list is empty; write at least one condition below '" + key + "'",
                        data[key],
                        at=(key,),
                    )
            if not data:
                raise invalid("condition_empty", CONDITION_HINT, data)
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.tests():
            raise invalid("condition_empty", CONDITION_HINT, "")
        return self

    def __repr_args__(self) -> Any:
        """Only the tests that are set: a condition tree stays readable in logs and reprs."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def tests(self) -> list[str]:
        """The YAML names of the tests set on this node, in declaration order."""
        return [
            field.alias or name
            for name, field in type(self).model_fields.items()
            if getattr(self, name) is not None
        ]


def walk(condition: Condition) -> list[Condition]:
    """Every node of the tree, depth first, the root first."""
    found = [condition]
    for child in (*(condition.all_of or ()), *(condition.any_of or ())):
        found.extend(walk(child))
    if condition.not_ is not None:
        found.extend(walk(condition.not_))
    return found
