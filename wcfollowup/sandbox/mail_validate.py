"""The checks SendGrid's v3 Mail Send makes before it accepts a message (HTTP 400 otherwise).

SendGrid reports every problem it finds in one ``errors`` array, each with the offending
``field`` and a ``help`` link, so the sandbox does the same rather than stopping at the first.
"""

from __future__ import annotations

import re
from typing import Any

HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_EMAIL = re.compile(r"^[^@\s\"<>,;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")

MSG_NO_PERSONALIZATIONS = (
    "The personalizations field is required and must have at least one personalization."
)
MSG_NO_TO = (
    "The to array is required for all personalization objects, and must have at least "
    "one email object with a valid email address."
)
MSG_TO_EMAIL = (
    "Each email address in the personalization block should be a valid address. "
    "Does not contain a valid address."
)
MSG_FROM = (
    "The from object must be provided for every email send. It is an object that requires "
    "the email parameter, but may also contain a name parameter.  e.g. "
    '{"email" : "example@example.com"}  or {"email" : "example@example.com", '
    '"name" : "Example Recipient"}.'
)
MSG_FROM_EMAIL = "The from email does not contain a valid address."
MSG_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a "
    "template with a subject defined or if every personalization has a subject defined."
)
MSG_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. There "
    "must be at least one defined content block. We typically suggest both text/plain "
    "and text/html blocks are included, but only one block is required."
)
MSG_CONTENT_VALUE = "The content value must be a string at least one character in length."
MSG_CONTENT_TYPE = "The content type must be a string at least one character in length."
MSG_CONTENT_ORDER = (
    "If present, text/plain content must be first, followed by text/html, "
    "followed by any other content."
)
MSG_SANDBOX_BOOL = "Invalid type. Expected: boolean, given: {given}."


def valid_email(value: object) -> bool:
    return isinstance(value, str) and bool(_EMAIL.match(value))


def _error(message: str, field: str | None, anchor: str) -> dict[str, Any]:
    return {"message": message, "field": field, "help": f"{HELP}#{anchor}"}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), "unknown")


def validate(payload: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    has_template = bool(payload.get("template_id"))

    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(MSG_NO_PERSONALIZATIONS, "personalizations", "message.personalizations")
        )
        personalizations = []
    for index, item in enumerate(personalizations):
        recipients = item.get("to") if isinstance(item, dict) else None
        if not isinstance(recipients, list) or not recipients:
            errors.append(
                _error(MSG_NO_TO, f"personalizations.{index}.to", "message.personalizations.to")
            )
            continue
        for position, recipient in enumerate(recipients):
            email = recipient.get("email") if isinstance(recipient, dict) else None
            if not valid_email(email):
                errors.append(
                    _error(
                        MSG_TO_EMAIL,
                        f"personalizations.{index}.to.{position}.email",
                        "message.personalizations.to",
                    )
                )

    sender = payload.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(_error(MSG_FROM, "from.email", "message.from"))
    elif not valid_email(sender.get("email")):
        errors.append(_error(MSG_FROM_EMAIL, "from.email", "message.from"))

    subject = payload.get("subject")
    every_personalization_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and isinstance(p.get("subject"), str) and p["subject"]
        for p in personalizations
    )
    if (
        not has_template
        and not (isinstance(subject, str) and subject)
        and not every_personalization_has_subject
    ):
        errors.append(_error(MSG_SUBJECT, "subject", "message.subject"))

    content = payload.get("content")
    if not has_template and (not isinstance(content, list) or not content):
        errors.append(_error(MSG_CONTENT, "content", "message.content"))
    elif isinstance(content, list):
        types: list[str] = []
        for index, block in enumerate(content):
            block = block if isinstance(block, dict) else {}
            kind, value = block.get("type"), block.get("value")
            if not isinstance(kind, str) or not kind:
                errors.append(
                    _error(MSG_CONTENT_TYPE, f"content.{index}.type", "message.content.type")
                )
            else:
                types.append(kind)
            if not isinstance(value, str) or not value:
                errors.append(
                    _error(MSG_CONTENT_VALUE, f"content.{index}.value", "message.content.value")
                )
        expected = [t for t in ("text/plain", "text/html") if t in types]
        if types[: len(expected)] != expected:
            errors.append(_error(MSG_CONTENT_ORDER, "content", "message.content"))

    settings = payload.get("mail_settings")
    sandbox = settings.get("sandbox_mode") if isinstance(settings, dict) else None
    if (
        isinstance(sandbox, dict)
        and "enable" in sandbox
        and not isinstance(sandbox["enable"], bool)
    ):
        errors.append(
            _error(
                MSG_SANDBOX_BOOL.format(given=_json_type(sandbox["enable"])),
                "mail_settings.sandbox_mode.enable",
                "message.mail_settings.sandbox_mode.enable",
            )
        )
    return errors


def sandbox_mode(payload: dict[str, Any]) -> bool:
    settings = payload.get("mail_settings")
    sandbox = settings.get("sandbox_mode") if isinstance(settings, dict) else None
    return isinstance(sandbox, dict) and sandbox.get("enable") is True
