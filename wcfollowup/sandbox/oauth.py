"""API-key authentication as ``WC_REST_Authentication`` (WooCommerce 6.6) performs it.

Over HTTPS, Basic auth or ``?consumer_key=&consumer_secret=`` are tried first; otherwise only
one-legged OAuth 1.0a in the query string (or an ``Authorization: OAuth`` header) counts. The
signature base string is rebuilt exactly as the PHP does it (``uksort`` + ``rawurlencode`` twice),
over *every* query parameter, with the base URL taken from the request's scheme and Host header.

The ±15 minute timestamp window uses real wall time, because real clients sign with real time
even when the store's clock is fake. One deliberate difference: PHP remembers one nonce per
timestamp (a later request in the same second overwrites the earlier nonce); the sandbox
remembers every nonce, so a replay is always refused and client bugs cannot hide behind timing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from wcfollowup.sandbox.wp_params import PhpValue

WINDOW_SECONDS = 15 * 60
OAUTH_NAMES = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    consumer_key: str
    consumer_secret: str
    permissions: str = "read_write"  # "read", "write" or "read_write"


@dataclass(frozen=True, slots=True)
class AuthError:
    code: str
    message: str
    status: int = 401

    def body(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status}}


@dataclass(frozen=True, slots=True)
class AuthResult:
    key: ApiKey | None = None
    error: AuthError | None = None


def _auth_error(message: str) -> AuthError:
    return AuthError("woocommerce_rest_authentication_error", message)


def rawurlencode(value: str) -> str:
    """PHP ``rawurlencode`` (RFC 3986: only ``A-Za-z0-9-_.~`` stay literal)."""
    return quote(value, safe="~")


def signature_base_string(method: str, base_url: str, params: dict[str, PhpValue]) -> str:
    """``check_oauth_signature``: sort by key, encode keys and values, join, encode again."""
    pairs: list[str] = []
    for key in sorted(params):  # uksort(..., 'strcmp') == code point order
        value = params[key]
        encoded_key = rawurlencode(key)
        if isinstance(value, dict):
            for sub, item in value.items():
                pairs.append(rawurlencode(f"{encoded_key}%5B{sub}%5D={rawurlencode(item)}"))
        else:
            pairs.append(rawurlencode(f"{encoded_key}={rawurlencode(value)}"))
    return f"{method.upper()}&{rawurlencode(base_url)}&{'%26'.join(pairs)}"


def sign(
    method: str,
    base_url: str,
    params: dict[str, PhpValue],
    secret: str,
    algorithm: str = "HMAC-SHA256",
) -> str:
    digest = hashlib.sha1 if algorithm == "HMAC-SHA1" else hashlib.sha256
    text = signature_base_string(method, base_url, params)
    mac = hmac.new(f"{secret}&".encode(), text.encode(), digest)
    return base64.b64encode(mac.digest()).decode()


def _oauth_header(header: str) -> dict[str, str]:
    if not header.startswith("OAuth "):
        return {}
    found = re.findall(r'(oauth_[a-z_-]*)=(?:"([^"]*)"|([^,]*))', header)
    return {name: unquote(quoted or bare) for name, quoted, bare in found}


class Authenticator:
    def __init__(self, keys: list[ApiKey], wall_time: Callable[[], float] = time.time) -> None:
        self._keys = {key.consumer_key: key for key in keys}
        self._wall_time = wall_time
        # Per key: nonce -> its timestamp, in the order they were first used.
        self._nonces: dict[str, OrderedDict[str, int]] = {}
        self._lock = threading.Lock()

    def authenticate(
        self,
        *,
        method: str,
        scheme: str,
        host: str,
        path: str,
        query: dict[str, PhpValue],
        authorization: str,
    ) -> AuthResult:
        if scheme == "https":
            basic = self._basic(query, authorization)
            if basic.key is not None or basic.error is not None:
                return basic
        return self._oauth(method, f"{scheme}://{host}{path}", query, authorization)

    def check_permissions(self, key: ApiKey, method: str) -> AuthError | None:
        if method in ("GET", "HEAD"):
            if key.permissions not in ("read", "read_write"):
                return _auth_error("The API key provided does not have read permissions.")
        elif method in ("POST", "PUT", "PATCH", "DELETE"):
            if key.permissions not in ("write", "read_write"):
                return _auth_error("The API key provided does not have write permissions.")
        elif method != "OPTIONS":
            return _auth_error("Unknown request method.")
        return None

    def _basic(self, query: dict[str, PhpValue], authorization: str) -> AuthResult:
        ck, cs = query.get("consumer_key"), query.get("consumer_secret")
        if not (isinstance(ck, str) and isinstance(cs, str) and ck and cs):
            ck = cs = ""
            if authorization[:6].lower() == "basic ":
                try:
                    decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    decoded = ""
                ck, _, cs = decoded.partition(":")
        if not ck or not cs:
            return AuthResult()
        key = self._keys.get(ck)
        if key is None:
            return AuthResult()  # unknown key: not an error, just not logged in
        if not hmac.compare_digest(key.consumer_secret.encode(), cs.encode()):
            return AuthResult(error=_auth_error("Consumer secret is invalid."))
        return AuthResult(key=key)

    def _oauth(
        self, method: str, base_url: str, query: dict[str, PhpValue], authorization: str
    ) -> AuthResult:
        params = dict(query)
        params.update(_oauth_header(authorization.strip()))
        missing = [name for name in OAUTH_NAMES if not params.get(name)]
        if len(missing) == len(OAUTH_NAMES):
            return AuthResult()
        if missing:
            noun = "parameter" if len(missing) == 1 else "parameters"
            return AuthResult(
                error=AuthError(
                    "woocommerce_rest_authentication_missing_parameter",
                    f"Missing OAuth {noun} {', '.join(missing)}",
                )
            )
        values = {name: params[name] for name in OAUTH_NAMES}
        if not all(isinstance(value, str) for value in values.values()):
            return AuthResult(error=_auth_error("Invalid signature - failed to sort parameters."))
        key = self._keys.get(str(values["oauth_consumer_key"]))
        if key is None:
            return AuthResult(error=_auth_error("Consumer key is invalid."))

        provided = unquote(str(values["oauth_signature"]).replace(" ", "+"))
        del params["oauth_signature"]
        algorithm = str(values["oauth_signature_method"])
        if algorithm not in ("HMAC-SHA1", "HMAC-SHA256"):
            return AuthResult(error=_auth_error("Invalid signature - signature method is invalid."))
        expected = sign(method, base_url, params, key.consumer_secret, algorithm)
        if not hmac.compare_digest(expected.encode(), provided.encode()):
            return AuthResult(
                error=_auth_error("Invalid signature - provided signature does not match.")
            )

        error = self._check_timestamp_and_nonce(
            key, str(values["oauth_timestamp"]), str(values["oauth_nonce"])
        )
        return AuthResult(error=error) if error else AuthResult(key=key)

    def _check_timestamp_and_nonce(
        self, key: ApiKey, raw_timestamp: str, nonce: str
    ) -> AuthError | None:
        now = int(self._wall_time())
        try:
            timestamp = int(raw_timestamp)
        except ValueError:
            return _auth_error("Invalid timestamp.")
        if timestamp < now - WINDOW_SECONDS or timestamp > now + WINDOW_SECONDS:
            return _auth_error("Invalid timestamp.")
        with self._lock:
            used = self._nonces.setdefault(key.consumer_key, OrderedDict())
            if nonce in used:
                return _auth_error("Invalid nonce - nonce has already been used.")
            used[nonce] = timestamp
            # Forget nonces whose time has left the window (a replay of one is refused for its
            # timestamp anyway). Oldest first, in the order they came: clients sign with the
            # current time, so this stops at the first one still in the window and costs
            # nothing per request; scanning them all cost a request more with every nonce kept.
            cutoff = now - WINDOW_SECONDS
            while used and next(iter(used.values())) < cutoff:
                used.popitem(last=False)
        return None
