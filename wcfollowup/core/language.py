"""Which language a customer's email is written in.

A shop in Jakarta also sells to Kuala Lumpur: the billing country is the best signal we have of
what the customer reads, and the owner maps countries to languages in the config. Owner
notifications do not come through here; they use the store's own language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["DEFAULT_LANGUAGE_BY_COUNTRY", "SUPPORTED_LANGUAGES", "language_for"]

SUPPORTED_LANGUAGES: Final = ("en", "id", "ms")

# Brunei reads Malay; Singapore is left to the store default (English is the safer guess there).
DEFAULT_LANGUAGE_BY_COUNTRY: Final[Mapping[str, str]] = {"ID": "id", "MY": "ms", "BN": "ms"}


def language_for(order: Mapping[str, Any], default: str, by_country: Mapping[str, str]) -> str:
    """The message language for ``order``: its billing country's language, else ``default``.

    Forgiving by design: an order without billing data, or with a country that is not a string,
    simply gets the default rather than failing the step.
    """
    billing = order.get("billing") if isinstance(order, Mapping) else None
    country = billing.get("country") if isinstance(billing, Mapping) else None
    if not isinstance(country, str):
        return default
    return by_country.get(country.strip().upper(), default)
