"""Money as the customer reads it: ``Rp 150.000`` in Indonesia, ``RM150.00`` in Malaysia."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency

# Currencies whose minor unit exists on paper but is never written on a price tag.
_WHOLE_NUMBER_CURRENCIES = frozenset({"IDR", "VND", "JPY", "KRW", "CLP", "ISK", "HUF"})

LOCALE_FOR_LANGUAGE = {"en": "en", "id": "id_ID", "ms": "ms_MY"}


def to_decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def format_money(amount: object, currency: str, language: str) -> str:
    locale = LOCALE_FOR_LANGUAGE.get(language, language)
    value = to_decimal(amount)
    code = (currency or "USD").upper()
    if code in _WHOLE_NUMBER_CURRENCIES:
        return format_currency(value, code, locale=locale, format="¤ #,##0", currency_digits=False)
    return format_currency(value, code, locale=locale)
