"""Sends through SendGrid v3 Mail Send: the official ``sendgrid`` client's request, over a
keep-alive ``requests.Session``.

SendGrid has no idempotency key, so the line between "certainly not sent" (safe to retry) and
"maybe sent" (must not retry) is drawn here, once: refused connections, 429 and 5xx are retried
with tenacity; a timeout or a dropped connection after the request went out is ``MailUncertain``.
The client has no timeout by default and logs the Authorization header at DEBUG; both are fixed
here.

The client's transport (python-http-client over urllib) builds a new opener for every call and
urllib closes each connection after one request, so every message cost a TCP (and TLS)
handshake. The request is the client's own (its URL, its headers: ``Authorization: Bearer``, its
``User-Agent``, ``Accept``; the body as ``json.dumps``), sent through one session whose pool
keeps a connection per dispatch worker alive; the environment (proxies, CA bundle) is read once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from wcfollowup.common.redact import redact, register_secrets
from wcfollowup.mail.errors import MailAuthError, MailRejected, MailUnavailable, MailUncertain
from wcfollowup.mail.message import OutgoingEmail

SEND_PATH = "/v3/mail/send"

# python-http-client logs request headers, including "Authorization: Bearer <key>", at DEBUG.
logging.getLogger("python_http_client").setLevel(logging.WARNING)
logging.getLogger("python_http_client.client").setLevel(logging.WARNING)


def _provider_reason(response: requests.Response) -> str:
    try:
        body = response.json()
        errors = body.get("errors") or []
        parts = [
            f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
            for e in errors
        ]
        if parts:
            return "; ".join(parts)
    except Exception:  # a non-JSON error body; fall back to the status line
        pass
    return f"HTTP {response.status_code}"


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether the connection failed before the request went out (refused, unresolvable,
    connect timeout): only then is a retry certain not to send the message twice."""
    from urllib3.exceptions import ConnectTimeoutError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason: object = exc.args[0] if exc.args else None
    for _ in range(3):  # requests wraps MaxRetryError(reason=NewConnectionError(...))
        if isinstance(reason, ConnectTimeoutError):  # NewConnectionError is one too
            return True
        reason = getattr(reason, "reason", None)
    return False


def keep_alive_session(url: str, pool_size: int) -> requests.Session:
    """A session keeping up to ``pool_size`` connections to ``url``'s host alive (one per
    dispatch worker). The environment is read once, here, as ``requests.request`` would on
    every call: the proxies for this URL and a CA bundle (``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``); ``trust_env`` is then off so no call scans it again."""
    session = requests.Session()
    session.proxies = dict(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = bundle or True
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


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
        pool_size: int = 10,
    ) -> None:
        SendGridAPIClient = _client_class()

        client = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        # The client's own headers (Authorization, User-Agent, Accept) and its JSON type.
        self._headers = {**client.client.request_headers, "Content-Type": "application/json"}
        self._url = f"{host.rstrip('/')}{SEND_PATH}"
        self._timeout = timeout
        self.session = keep_alive_session(self._url, pool_size)
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
        try:
            response = self.session.post(
                self._url,
                data=json.dumps(body).encode("utf-8"),
                headers=self._headers,
                timeout=self._timeout,
            )
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                # SendGrid acts on a complete request only, and none went out.
                raise MailUnavailable(
                    f"could not deliver the request to SendGrid ({type(exc).__name__})"
                ) from None
            raise MailUncertain(
                f"no answer from SendGrid ({type(exc).__name__}); the message may have been sent"
            ) from None
        except requests.RequestException as exc:
            # A read timeout, or an answer cut off: the request went out.
            raise MailUncertain(
                f"no answer from SendGrid ({type(exc).__name__}); the message may have been sent"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return str(response.headers.get("X-Message-Id") or "")
        reason = redact(_provider_reason(response))
        if status in (401, 403):
            self.refused = MailAuthError(
                f"SendGrid refused the API key (HTTP {status}): {reason}. Check "
                "sendgrid.api_key and that the key has the Mail Send permission."
            )
            raise self.refused
        if status == 429 or status >= 500:
            raise MailUnavailable(f"SendGrid answered HTTP {status}: {reason}")
        raise MailRejected(f"SendGrid rejected the message (HTTP {status}): {reason}")
