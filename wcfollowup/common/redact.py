"""Keep secrets, their encodings and signed request parts out of anything a person or a log reads.

One process-wide registry holds the configured secrets (``register_secrets``, called when a
config loads), so every exit redacts with the full list without being handed it: the log
processor (structlog and stdlib loggers alike), message rows, ``/healthz`` and CLI output.

Besides the registered strings themselves, ``redact`` removes what a store, a proxy or a client
library may echo back: the URL-encoded form of a secret, the HTTP Basic form of any two known
secrets (``base64(consumer_key:consumer_secret)``), any ``Authorization`` header value, any
``Basic`` credential, any ``Bearer`` token, every ``oauth_*`` parameter (signed URLs are
replayable for 15 minutes, with or without a scheme in front), query strings of full URLs, and
anything shaped like a WooCommerce or SendGrid key even when it is not ours.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterable
from itertools import permutations
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
MIN_SECRET = 4  # shorter strings would blank out ordinary words

_QUERY = re.compile(r"(https?://[^\s?'\"<>]+)\?[^\s'\"<>]*")
_NOT_MASKED = r"(?!\[redacted\])"
# oauth_signature=…, oauth_nonce%3D…, "oauth_signature": "…", oauth_signature="…" (OAuth header).
_OAUTH = re.compile(
    r"(?i)(\boauth_[a-z_]*[\"']?\s*(?:=|%3D|:(?=\s*[\"']))\s*)"
    + _NOT_MASKED
    + r"(?:\"[^\"]*\"|'[^']*'|[^&\s\"',;)<>\]}]*)"
)
# query_string_auth: consumer_key=…&consumer_secret=…
_KEY_PARAMS = re.compile(
    r"(?i)(\bconsumer_(?:key|secret)[\"']?\s*(?:=|%3D|:(?=\s*[\"']))\s*)"
    + _NOT_MASKED
    + r"(?:\"[^\"]*\"|'[^']*'|[^&\s\"',;)<>\]}]*)"
)
# "Authorization: Basic …", 'authorization': 'OAuth …', Proxy-Authorization=…
_AUTHORIZATION = re.compile(
    r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    + _NOT_MASKED
    + r"(?:[A-Za-z][\w-]*[ \t]+)?(?:[^\s\"',;=]|=\"[^\"]*\"|=)+"
)
_BASIC = re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/]{4,}={0,2})")
_BEARER = re.compile(r"(?i)(bearer\s+)" + _NOT_MASKED + r"[A-Za-z0-9._~+/\-]+=*")
# Credentials by their shape, ours or not: WooCommerce REST keys and SendGrid API keys.
_KEY_SHAPES = re.compile(
    r"\b(?:ck|cs)_[0-9a-f]{32,64}\b|\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
)

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_forms: tuple[str, ...] = ()


def register_secrets(secrets: Iterable[str]) -> None:
    """Add secrets to the process-wide list every exit redacts; a secret once known stays."""
    global _secrets, _forms
    with _lock:
        fresh = {s for s in secrets if s and len(s) >= MIN_SECRET} - _secrets
        if not fresh:
            return
        _secrets = _secrets | fresh
        _forms = _encoded_forms(_secrets)


def known_secrets() -> frozenset[str]:
    """What is registered (for tests and for code that must hand secrets to a library)."""
    return _secrets


def _encoded_forms(secrets: frozenset[str]) -> tuple[str, ...]:
    """Each secret as written, URL-encoded, and every pair as an HTTP Basic credential.

    Basic is ``base64(user:password)``; the trailing ``=`` padding is left out so an echo that
    dropped it is caught too. Longest first, so a secret inside another is not half-replaced.
    """
    forms: set[str] = set()
    for secret in secrets:
        forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
    for user, password in permutations(secrets, 2):
        pair = base64.b64encode(f"{user}:{password}".encode()).decode().rstrip("=")
        forms.add(pair)
    return tuple(sorted(forms, key=len, reverse=True))


def strip_query_strings(text: str) -> str:
    """URLs from the WooCommerce client carry OAuth signatures or keys in the query string."""
    return _QUERY.sub(r"\1?…", text)


def _basic(match: re.Match[str]) -> str:
    """A ``Basic`` word followed by base64 of ``user:password`` is a credential; prose is not."""
    token = match.group(2)
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + MASK if b":" in decoded else match.group(0)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any registered secret (plus ``secrets``) or credential-shaped part.

    Idempotent: redacting twice gives the same text, so layers may each redact.
    """
    text = strip_query_strings(text)
    text = _AUTHORIZATION.sub(r"\1" + MASK, text)
    text = _OAUTH.sub(r"\1" + MASK, text)
    text = _KEY_PARAMS.sub(r"\1" + MASK, text)
    text = _BASIC.sub(_basic, text)
    text = _BEARER.sub(r"\1" + MASK, text)
    text = _KEY_SHAPES.sub(MASK, text)
    extra = {s for s in secrets if s and len(s) >= MIN_SECRET} - _secrets
    forms = _forms if not extra else _encoded_forms(_secrets | extra)
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


__all__ = ["MASK", "known_secrets", "redact", "register_secrets", "strip_query_strings"]
