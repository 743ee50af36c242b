"""The redaction processor: a configured secret never reaches a log line, however it travels."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from wcfollowup.service.logs import configure_logging, register_secrets

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


def test_stdlib_loggers_and_warnings_print_redacted_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """uvicorn, APScheduler and Python warnings go through the same redacting renderer."""
    import logging
    import warnings

    configure_logging(json=True)
    register_secrets(SECRETS)
    key, secret, api_key = SECRETS
    signed = f"/wp-json/wc/v3/orders?oauth_consumer_key={key}&oauth_signature=c2lnbmVk%3D"
    logging.getLogger("uvicorn.error").error("Exception in ASGI application: %s", signed)
    try:
        raise ValueError(f"Authorization: Basic {api_key}")
    except ValueError:
        logging.getLogger("apscheduler.executors.default").exception("Job raised an exception")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"a library complains about {secret}", UserWarning, stacklevel=1)
    lines = capsys.readouterr().err.strip().splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON, none raw
    assert [e["logger"] for e in events] == [
        "uvicorn.error",
        "apscheduler.executors.default",
        "py.warnings",
    ]
    assert [e["level"] for e in events] == ["error", "error", "warning"]
    assert "ValueError" in events[1]["exception"]
    for line in lines:
        for value in (*SECRETS, "c2lnbmVk"):
            assert value not in line


def test_redaction_covers_encodings_and_echoed_requests() -> None:
    import base64

    from wcfollowup.common.redact import redact

    register_secrets(SECRETS)
    key, secret, api_key = SECRETS
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    other = base64.b64encode(b"someone:else").decode()
    text = (
        f"GET /wp-json/wc/v3/orders?oauth_consumer_key={key}&oauth_nonce=n0nce"
        f"&oauth_signature=s1gn%3D host: shop authorization: Basic {basic} "
        f"{{'Authorization': 'Bearer {api_key}'}} Basic {other} echoed {basic.rstrip('=')} "
        'OAuth oauth_signature="h34d3r" '
        "ck_0123456789abcdef0123456789abcdef01234567 consumer_secret=plain"
    )
    cleaned = redact(text)
    for leaked in (
        key,
        secret,
        api_key,
        basic.rstrip("="),
        other,
        "n0nce",
        "s1gn",
        "h34d3r",
        "plain",
    ):
        assert leaked not in cleaned
    assert "ck_0123456789abcdef" not in cleaned
    assert "GET /wp-json/wc/v3/orders?" in cleaned and "host: shop" in cleaned
    assert redact(cleaned) == cleaned
    # Prose is left alone.
    prose = "Basic information: check consumer_key and the authorization settings."
    assert redact(prose) == prose
