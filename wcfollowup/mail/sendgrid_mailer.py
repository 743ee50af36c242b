"""Sends through SendGrid v3 Mail Send with the official ``sendgrid`` client.

SendGrid has no idempotency key, so the line between "certainly not sent" (safe to retry) and
"maybe sent" (must not retry) is drawn here, once: refused connections, 429 and 5xx are retried
with tenacity; a timeout or a dropped connection after the request went out is ``MailUncertain``.
The client has no timeout by default and logs the Authorization header at DEBUG; both are fixed
here.
"""

from __future__ import annotations

import http.client
import logging
import sys
import time
import types
import urllib.error
from collections.abc import Callable
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from wcfollowup.common.redact import redact, register_secrets
from wcfollowup.mail.errors import MailAuthError, MailRejected, MailUnavailable, MailUncertain
from wcfollowup.mail.message import OutgoingEmail

# python-http-client logs request headers, including "Authorization: Bearer <key>", at DEBUG.
logging.getLogger("python_http_client").setLevel(logging.WARNING)
logging.getLogger("python_http_client.client").setLevel(logging.WARNING)


def _provider_reason(exc: Any) -> str:
    try:
        body = exc.to_dict
        errors = body.get("errors") or []
        parts = [
            f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
            for e in errors
        ]
        if parts:
            return "; ".join(parts)
    except Exception:  # a non-JSON error body; fall back to the status line
        pass
    return f"HTTP {getattr(exc, 'status_code', '?')}"


def _client_class() -> Any:
    """``sendgrid.SendGridAPIClient``, without the event-webhook helper the package pulls in.

    ``sendgrid/__init__`` star-imports ``helpers.eventwebhook``, which loads cryptography's
    OpenSSL bindings (about 8 MB resident for the daemon's whole life) to verify webhook
    signatures, something a sender never does. An empty stand-in module is registered first
    unless the real one is already loaded; Mail Send is unaffected.
    """
    name = "sendgrid.helpers.eventwebhook"
    if name not in sys.modules:
        sys.modules[name] = types.ModuleType(name, "not loaded by wcfollowup (unused)")
    from sendgrid import SendGridAPIClient

    return SendGridAPIClient


def ascii_address(address: str) -> str:
    """The address as SendGrid accepts it: an internationalised domain in its ASCII (IDNA,
    "punycode") form, ``budi@bücher.example`` -> ``budi@xn--bcher-kva.example``.

    Customers may register with such domains and mail servers route them by the ASCII name;
    SendGrid rejects the Unicode form. The local part is left as it is (email-validator's
    UTS-46 mapping is used for the domain, as when the address was validated).
    """
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return address  # SendGrid says what is wrong with it
    return f"{local}@{checked.ascii_domain}"


class SendGridMailer:
    def __init__(
        self,
        api_key: str,
        *,
        from_email: str,
        from_name: str | None = None,
        host: str = "https://api.sendgrid.com",
        timeout: float = 15.0,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        SendGridAPIClient = _client_class()

        self._client = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        self._client.client.timeout = timeout
        # Error texts are redacted against the process-wide list: make sure it has the key.
        register_secrets([api_key])
        # The last time SendGrid refused the key; ``run --once`` exits non-zero on it.
        self.refused: MailAuthError | None = None
        self._from = {
            "email": ascii_address(from_email),
            **({"name": from_name} if from_name else {}),
        }
        self._attempts = attempts
        self._sleep = sleep

    def payload(self, email: OutgoingEmail) -> dict[str, Any]:
        recipient = {"email": ascii_address(email.to_email)}
        # SendGrid refuses ';' and ',' in display names.
        name = email.to_name.replace(";", " ").replace(",", " ").strip()
        if name:
            recipient["name"] = name
        body: dict[str, Any] = {
            "personalizations": [{"to": [recipient]}],
            "from": self._from,
            "subject": email.subject,
            "content": [
                {"type": "text/plain", "value": email.text},
                {"type": "text/html", "value": email.html},
            ],
        }
        if email.categories:
            body["categories"] = list(email.categories)[:10]
        if email.custom_args:
            body["custom_args"] = {k: str(v) for k, v in email.custom_args.items()}
        if email.headers:
            body["headers"] = dict(email.headers)
        if email.asm_group_id is not None:
            body["asm"] = {"group_id": email.asm_group_id}
        return body

    def send(self, email: OutgoingEmail) -> str:
        """Send one message; return the provider's message id."""
        retrying = Retrying(
            retry=retry_if_exception_type(MailUnavailable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=0.5, max=20),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._send_once, self.payload(email))

    def _send_once(self, body: dict[str, Any]) -> str:
        from python_http_client.exceptions import HTTPError

        try:
            response = self._client.client.mail.send.post(request_body=body)
        except HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            reason = redact(_provider_reason(exc))
            if status in (401, 403):
                self.refused = MailAuthError(
                    f"SendGrid refused the API key (HTTP {status}): {reason}. Check "
                    "sendgrid.api_key and that the key has the Mail Send permission."
                )
                raise self.refused from None
            if status == 429 or status >= 500:
                raise MailUnavailable(f"SendGrid answered HTTP {status}: {reason}") from None
            raise MailRejected(f"SendGrid rejected the message (HTTP {status}): {reason}") from None
        except urllib.error.URLError as exc:
            # urllib raises URLError only while connecting or writing the request; SendGrid
            # acts on a complete request, so nothing went out.
            raise MailUnavailable(
                f"could not deliver the request to SendGrid: {redact(str(exc.reason))}"
            ) from None
        except (TimeoutError, http.client.HTTPException, ConnectionError) as exc:
            raise MailUncertain(
                f"no answer from SendGrid ({type(exc).__name__}); the message may have been sent"
            ) from None
        headers = response.headers
        message_id = headers.get("X-Message-Id") if headers is not None else None
        return str(message_id or "")
