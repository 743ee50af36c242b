"""One rule for "is this a usable email address", shared by config checks and dispatch.

Syntax only: deliverability is SendGrid's business, and a DNS lookup per order would slow the
queue. ``test_environment`` admits the reserved ``.test`` domain that the sandbox (like the real
WooCommerce capture it copies) uses; no real customer address ends in ``.test``.
"""

from __future__ import annotations


def checked_email(raw: str) -> str:
    """The normalized address; raises ``email_validator.EmailNotValidError`` saying why not.

    The config's addresses (``owner_email``, ``from_email``) pass this same rule, so an owner
    can use any address a customer may have.
    """
    from email_validator import validate_email

    return str(
        validate_email(raw.strip(), check_deliverability=False, test_environment=True).normalized
    )


def normalize_email(raw: str) -> str | None:
    """The normalized address, or None when it cannot be mailed."""
    from email_validator import EmailNotValidError

    try:
        return checked_email(raw)
    except EmailNotValidError:
        return None
