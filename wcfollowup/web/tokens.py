"""Signed links in emails: a survey score or an unsubscribe, readable only if we issued them.

A survey token is an itsdangerous ``URLSafeSerializer`` payload (compact JSON, URL-safe base64)
signed with HMAC-SHA256 under a key kept in the state directory; it names an order, a step and a
score, nothing personal. An unsubscribe token has to name the customer's address, so it is
encrypted as well as authenticated (``cryptography``'s Fernet, under a key derived from the same
key by HKDF): a forwarded email, a proxy log or a link scanner learns nothing from the URL.
Unsubscribe tokens of the first format (signed, readable base64) are still accepted, because
emails already sent carry them, but they are never issued again. Each purpose signs with its own
salt or key, so a survey token can never be replayed as an unsubscribe token or the other way round.

Expiry is an explicit ``exp`` (Unix seconds) inside the signed payload and is checked against the
``now`` the caller passes in, never against wall time, so the fake clock governs it in tests and
the demo's fast clock in the demo.

Changing the key (deleting or replacing the key file) invalidates every link already mailed:
customers who click an old survey or unsubscribe link get the polite "this link is not valid" page.
Keep the key file with the database and back them up together.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer

from wcfollowup.common.redact import register_secrets
from wcfollowup.config import Config

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_BYTES = 32

_SURVEY_SALT = "wcfollowup.survey.v1"
# The first unsubscribe format (readable base64): still read, never issued.
_UNSUBSCRIBE_SALT = "wcfollowup.unsubscribe.v1"
_UNSUBSCRIBE_KEY_INFO = b"wcfollowup.unsubscribe.v2"


class BadToken(Exception):
    """The token is forged, garbled, or was issued for another purpose."""


class ExpiredToken(BadToken):
    """The token is genuine but its ``exp`` has passed."""


class KeyFileError(Exception):
    """The signing key file exists but is unsafe or damaged; we refuse to guess."""


@dataclass(frozen=True)
class SurveyClaim:
    order_id: int
    step_id: int
    score: int
    language: str


@dataclass(frozen=True)
class UnsubscribeClaim:
    email: str
    language: str


class LinkSigner:
    """Issues and reads the tokens that go into email links."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the link signing key must be at least 16 bytes")
        options: dict[str, Any] = {"digest_method": hashlib.sha256}
        self._survey = URLSafeSerializer(key, salt=_SURVEY_SALT, signer_kwargs=options)
        self._legacy_unsubscribe = URLSafeSerializer(
            key, salt=_UNSUBSCRIBE_SALT, signer_kwargs=options
        )
        self._key = key
        self._fernet: Fernet | None = None

    @property
    def _unsubscribe(self) -> Fernet:
        """Made on first use: ``cryptography`` costs about 7.5 MB of RSS, which an idle daemon
        (nothing to send, no link opened) should not pay (the footprint bar is 80 MB)."""
        if self._fernet is None:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(_derive_key(self._key, _UNSUBSCRIBE_KEY_INFO))
        return self._fernet

    def survey(
        self, *, order_id: int, step_id: int, score: int, language: str, expires_at: datetime
    ) -> str:
        if not 1 <= score <= 5:
            raise ValueError(f"a survey score is 1 to 5, not {score}")
        payload = [order_id, step_id, score, language, _epoch(expires_at)]
        return str(self._survey.dumps(payload))

    def read_survey(self, token: str, now: datetime) -> SurveyClaim:
        payload = _load(self._survey, token, now)
        match payload:
            case [int(order_id), int(step_id), int(score), str(language), int()] if 1 <= score <= 5:
                return SurveyClaim(order_id, step_id, score, language)
        raise BadToken("not a survey link")

    def unsubscribe(self, *, email: str, language: str, expires_at: datetime) -> str:
        """An encrypted token: the address cannot be read from the link (no ``.``, unlike v1)."""
        payload = json.dumps([email, language, _epoch(expires_at)], separators=(",", ":"))
        # Fernet tokens are URL-safe base64; the "=" padding is dropped to keep URLs plain.
        return self._unsubscribe.encrypt(payload.encode("utf-8")).decode("ascii").rstrip("=")

    def read_unsubscribe(self, token: str, now: datetime) -> UnsubscribeClaim:
        if "." in token:  # the first format, still in emails already sent
            payload = _load(self._legacy_unsubscribe, token, now)
        else:
            payload = _check_expiry(self._decrypt_unsubscribe(token), now)
        match payload:
            case [str(email), str(language), int()] if email:
                return UnsubscribeClaim(email, language)
        raise BadToken("not an unsubscribe link")

    def _decrypt_unsubscribe(self, token: str) -> object:
        from cryptography.fernet import InvalidToken

        try:
            padded = token + "=" * (-len(token) % 4)
            # Base64 leaves spare bits in the last character: two spellings of one token
            # would both decrypt. Only the spelling we issue is a valid link.
            if base64.urlsafe_b64encode(base64.urlsafe_b64decode(padded)) != padded.encode():
                raise ValueError("not the canonical spelling of a token")
            # Fernet's own timestamp is ignored (no ttl): the expiry inside is on our clock.
            data = self._unsubscribe.decrypt(padded.encode("ascii"))
            payload: object = json.loads(data)
        except (InvalidToken, UnicodeError, ValueError, binascii.Error) as exc:
            raise BadToken("the link is not valid") from exc
        return payload


def _derive_key(key: bytes, info: bytes) -> bytes:
    """A separate Fernet key per purpose, so no key is ever used for two things."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)
    return base64.urlsafe_b64encode(derived)


def _epoch(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("expires_at must be an aware datetime")
    return int(when.timestamp())


def _load(serializer: URLSafeSerializer, token: str, now: datetime) -> object:
    """Check the signature first, so a forged token is never reported as merely expired."""
    try:
        payload: object = serializer.loads(token)
    except (BadSignature, UnicodeError, ValueError) as exc:
        raise BadToken("the link is not valid") from exc
    return _check_expiry(payload, now)


def _check_expiry(payload: object, now: datetime) -> list[object]:
    """Called only on an authenticated payload: a forgery is never reported as expired."""
    if not isinstance(payload, list) or not payload or not isinstance(payload[-1], int):
        raise BadToken("the link is not valid")
    if now.timestamp() >= payload[-1]:
        raise ExpiredToken("the link has expired")
    return payload


def load_or_create_key(path: Path) -> bytes:
    """Read the signing key, creating it (0600, atomically) the first time.

    An existing file that others can read, or that has the wrong size, is refused rather than used:
    a leaked key lets anyone unsubscribe any customer or fake survey answers.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(KEY_BYTES)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link() never overwrites: if another process won the race, use its key.
            os.link(temp, path)
        except FileExistsError:
            return _read_key(path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return key


def _read_key(path: Path) -> bytes:
    with path.open("rb") as handle:
        info = os.fstat(handle.fileno())
        mode = info.st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"the link signing key {path} can be read by other users "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        key = handle.read(KEY_BYTES + 1)
    if info.st_size != KEY_BYTES or len(key) != KEY_BYTES:
        raise KeyFileError(
            f"the link signing key {path} is damaged ({info.st_size} bytes, expected {KEY_BYTES}); "
            "restore it from a backup, or delete it to make a new one "
            "(links already sent will then stop working)"
        )
    return key


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def signing_key_path(config: Config) -> Path:
    """Where the generated link-signing key lives: the state folder.

    systemd's ``StateDirectory=`` sets ``$STATE_DIRECTORY``; otherwise the SQLite database's
    folder. A PostgreSQL setup without either must give ``http.signing_key``.
    """
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_dir:
        return Path(state_dir) / "signing.key"
    if config.database.path is not None:
        return Path(config.database.path).parent / "signing.key"
    raise KeyUnavailable(
        "survey and unsubscribe links need a signing key: set http.signing_key in the config "
        "(e.g. ${WCF_SIGNING_KEY}, 32+ random characters), or run under systemd with "
        "StateDirectory= so wcfollowup can generate one"
    )


def make_signer(config: Config) -> LinkSigner | None:
    """The signer for survey and unsubscribe links, or None when the config has no ``http``."""
    if config.http is None:
        return None
    if config.http.signing_key is not None:
        key = config.http.signing_key.get_secret_value().encode("utf-8")
    else:
        key = load_or_create_key(signing_key_path(config))
    register_secrets([key.hex()] if config.http.signing_key is None else [key.decode()])
    return LinkSigner(key)


class KeyUnavailable(Exception):
    """No signing key is configured and there is no state folder to keep a generated one."""
