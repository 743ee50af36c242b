"""One rule for "is this a usable email address", shared by config checks and dispatch.

Syntax only: deliverability is SendGrid's business, and a DNS lookup per order would slow the
queue. ``test_environment`` admits the reserved ``.test`` domain that the sandbox (like the real
WooCommerce capture it copies) uses; no real customer address ends in ``.test``.
"""

from __future__ import annotations


def normalize_email(raw: str) -> str | None:
    """The normalized address, or None when it cannot be mailed."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(
            raw.strip(), check_deliverability=False, test_environment=True
        ).normalized
    except EmailNotValidError:
        return None
