"""Signed links: they read back, refuse tampering and the wrong purpose, and expire on our clock."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from itsdangerous import URLSafeSerializer
from support import hides

from wcfollowup.web.tokens import (
    KEY_BYTES,
    BadToken,
    ExpiredToken,
    KeyFileError,
    LinkSigner,
    SurveyClaim,
    UnsubscribeClaim,
    load_or_create_key,
)

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=30)


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(b"k" * KEY_BYTES)


def survey_token(signer: LinkSigner, score: int = 4) -> str:
    return signer.survey(order_id=1234, step_id=77, score=score, language="id", expires_at=EXPIRES)


def flip(token: str, index: int) -> str:
    """Change one character, keeping the token URL-safe."""
    chars = list(token)
    chars[index] = "A" if chars[index] != "A" else "B"
    return "".join(chars)


class TestSurveyTokens:
    def test_roundtrip(self, signer: LinkSigner) -> None:
        """A token reads back as exactly the claim it was made from."""
        claim = signer.read_survey(survey_token(signer, score=5), NOW)
        assert claim == SurveyClaim(order_id=1234, step_id=77, score=5, language="id")

    def test_url_safe_and_short(self, signer: LinkSigner) -> None:
        """Tokens go into a URL path without escaping and stay short enough for an email."""
        token = survey_token(signer)
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", token)
        assert len(token) < 120

    @pytest.mark.parametrize("where", [2, 20, -5, -1])
    def test_tampered_token_is_refused(self, signer: LinkSigner, where: int) -> None:
        """Changing any character, in the payload or the signature, breaks the token."""
        token = survey_token(signer)
        with pytest.raises(BadToken) as info:
            signer.read_survey(flip(token, where), NOW)
        assert not isinstance(info.value, ExpiredToken)

    @pytest.mark.parametrize("garbage", ["", ".", "abc", "a.b.c", "%%%", "WzFd.xyz"])
    def test_garbage_is_refused(self, signer: LinkSigner, garbage: str) -> None:
        with pytest.raises(BadToken):
            signer.read_survey(garbage, NOW)

    def test_other_key_is_refused(self, signer: LinkSigner) -> None:
        """Replacing the key invalidates every link already sent."""
        with pytest.raises(BadToken):
            LinkSigner(b"z" * KEY_BYTES).read_survey(survey_token(signer), NOW)

    def test_expiry_follows_the_given_now(self, signer: LinkSigner) -> None:
        token = survey_token(signer)
        assert signer.read_survey(token, EXPIRES - timedelta(seconds=1)).score == 4
        with pytest.raises(ExpiredToken):
            signer.read_survey(token, EXPIRES)

    def test_forged_and_expired_is_reported_as_forged(self, signer: LinkSigner) -> None:
        """The signature is checked before the expiry, so forgeries learn nothing."""
        token = flip(survey_token(signer), 10)
        with pytest.raises(BadToken) as info:
            signer.read_survey(token, EXPIRES + timedelta(days=1))
        assert not isinstance(info.value, ExpiredToken)

    @pytest.mark.parametrize("score", [0, 6, -1])
    def test_score_out_of_range_is_not_signed(self, signer: LinkSigner, score: int) -> None:
        with pytest.raises(ValueError, match="1 to 5"):
            survey_token(signer, score=score)

    def test_naive_expiry_is_refused(self, signer: LinkSigner) -> None:
        with pytest.raises(ValueError, match="aware"):
            signer.survey(
                order_id=1, step_id=1, score=1, language="en", expires_at=datetime(2027, 1, 1)
            )


class TestUnsubscribeTokens:
    def test_roundtrip(self, signer: LinkSigner) -> None:
        token = signer.unsubscribe(email="siti@example.co.id", language="ms", expires_at=EXPIRES)
        assert signer.read_unsubscribe(token, NOW) == UnsubscribeClaim("siti@example.co.id", "ms")

    def test_purposes_are_not_interchangeable(self, signer: LinkSigner) -> None:
        """A survey token is not an unsubscribe token, and the other way round."""
        unsubscribe = signer.unsubscribe(email="a@b.co", language="en", expires_at=EXPIRES)
        with pytest.raises(BadToken):
            signer.read_survey(unsubscribe, NOW)
        with pytest.raises(BadToken):
            signer.read_unsubscribe(survey_token(signer), NOW)

    def test_expired(self, signer: LinkSigner) -> None:
        token = signer.unsubscribe(email="a@b.co", language="en", expires_at=EXPIRES)
        with pytest.raises(ExpiredToken):
            signer.read_unsubscribe(token, EXPIRES + timedelta(hours=1))

    @pytest.mark.parametrize(
        "email", ["siti@example.co.id", "a@b.co", "Dewi.Lestari+shop@example.test", "x@y.id"]
    )
    def test_the_address_cannot_be_read_from_the_token(
        self, signer: LinkSigner, email: str
    ) -> None:
        """Encrypted, not just signed: no base64 form of the address, at any alignment."""
        token = signer.unsubscribe(email=email, language="en", expires_at=EXPIRES)
        assert hides(token, email)
        local = email.split("@")[0]
        assert len(local) < 4 or hides(token, local)  # one letter turns up in any random bytes
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", token)
        assert len(token) < 250
        assert signer.read_unsubscribe(token, NOW) == UnsubscribeClaim(email, "en")

    @pytest.mark.parametrize("where", [2, 20, 60, -5, -1])
    def test_tampered_token_is_refused(self, signer: LinkSigner, where: int) -> None:
        token = signer.unsubscribe(email="a@b.co", language="en", expires_at=EXPIRES)
        with pytest.raises(BadToken) as info:
            signer.read_unsubscribe(flip(token, where), EXPIRES + timedelta(days=1))
        assert not isinstance(info.value, ExpiredToken)

    def test_every_last_character_but_the_issued_one_is_refused(self, signer: LinkSigner) -> None:
        """The last base64 character has spare bits; a token with them changed must not pass
        (it did, now and then, when the random IV left them free)."""
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        token = signer.unsubscribe(email="a@b.co", language="en", expires_at=EXPIRES)
        spare_bits = {2: 4, 3: 2}[len(token) % 4]  # bits of the last character that carry nothing
        value = alphabet.index(token[-1])
        for spare in range(1, 2**spare_bits):
            with pytest.raises(BadToken) as info:
                signer.read_unsubscribe(token[:-1] + alphabet[value ^ spare], NOW)
            assert not isinstance(info.value, ExpiredToken)

    def test_other_key_is_refused(self, signer: LinkSigner) -> None:
        token = signer.unsubscribe(email="a@b.co", language="en", expires_at=EXPIRES)
        with pytest.raises(BadToken):
            LinkSigner(b"z" * KEY_BYTES).read_unsubscribe(token, NOW)

    def test_links_of_the_first_format_still_work(self, signer: LinkSigner) -> None:
        """Emails already sent carry signed, readable tokens: they are still honoured."""
        old = URLSafeSerializer(
            b"k" * KEY_BYTES,
            salt="wcfollowup.unsubscribe.v1",
            signer_kwargs={"digest_method": hashlib.sha256},
        ).dumps(["siti@example.co.id", "id", int(EXPIRES.timestamp())])
        assert signer.read_unsubscribe(old, NOW) == UnsubscribeClaim("siti@example.co.id", "id")
        with pytest.raises(ExpiredToken):
            signer.read_unsubscribe(old, EXPIRES)
        with pytest.raises(BadToken):
            signer.read_unsubscribe(flip(old, 5), NOW)
        with pytest.raises(BadToken):
            LinkSigner(b"z" * KEY_BYTES).read_unsubscribe(old, NOW)


class TestKeyFile:
    def test_created_private_and_reused(self, tmp_path: Path) -> None:
        """The first call makes a 0600 key of 32 random bytes; later calls read the same key."""
        path = tmp_path / "state" / "link.key"
        key = load_or_create_key(path)
        assert len(key) == KEY_BYTES
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes() == key
        assert load_or_create_key(path) == key
        assert [p.name for p in path.parent.iterdir()] == ["link.key"]

    def test_two_new_keys_differ(self, tmp_path: Path) -> None:
        assert load_or_create_key(tmp_path / "a.key") != load_or_create_key(tmp_path / "b.key")

    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
    def test_readable_by_others_is_refused(self, tmp_path: Path, mode: int) -> None:
        path = tmp_path / "link.key"
        path.write_bytes(os.urandom(KEY_BYTES))
        path.chmod(mode)
        with pytest.raises(KeyFileError, match=r"other users .*chmod 600"):
            load_or_create_key(path)

    @pytest.mark.parametrize("size", [0, 16, 33])
    def test_wrong_size_is_refused(self, tmp_path: Path, size: int) -> None:
        """A damaged key file is not silently replaced: that would break every sent link."""
        path = tmp_path / "link.key"
        path.write_bytes(b"x" * size)
        path.chmod(0o600)
        with pytest.raises(KeyFileError, match=f"damaged \\({size} bytes, expected 32\\)"):
            load_or_create_key(path)
        assert path.read_bytes() == b"x" * size
