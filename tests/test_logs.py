"""The redaction processor: a configured secret never reaches a log line, however it travels."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from wcfollowup.logs import configure_logging, register_secrets

SECRETS = ("ck_live_recognisable_1111", "cs_live_recognisable_2222", "SG.recognisable_3333")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging binds the current stderr (here: capsys's, closed after the test)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_no_configured_secret_reaches_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    register_secrets(SECRETS)
    log = structlog.get_logger("test").bind(order_id=7, sequence="thank-you", step="thanks")
    key, secret, api_key = SECRETS
    log.info(f"event text with {key}", url=f"https://shop.test/?consumer_secret={secret}")
    log.warning("nested", detail={"headers": [f"Bearer {api_key}"], "pair": (key, 1)})
    try:
        raise RuntimeError(f"the store said: bad key {key}")
    except RuntimeError:
        log.exception("with a traceback")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        for value in SECRETS:
            assert value not in line
        event = json.loads(line)  # still valid JSON for journald
        assert (event["order_id"], event["sequence"], event["step"]) == (7, "thank-you", "thanks")
    assert "RuntimeError" in lines[2]
