"""The models on their own, as the engine and its tests build them in code."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from wcfollowup.config import (
    Config,
    DatabaseConfig,
    DispatchConfig,
    PollConfig,
    SequenceConfig,
    StepConfig,
    StoreConfig,
)
from wcfollowup.config.fields import BASE_DIR, suggest_time_zones
from wcfollowup.sandbox.tls import make_self_signed

SECRET = "cs_do_not_print_me_42"

DATA: dict[str, Any] = {
    "store": {
        "name": "Toko Batik Sari",
        "url": "https://Shop.Example.com/",
        "consumer_key": "ck_key",
        "consumer_secret": SECRET,
        "timezone": "Asia/Jakarta",
    },
    "sendgrid": {"api_key": "SG.key", "from_email": "Halo@Example.COM"},
    "database": {"path": "state.db"},
    "sequences": [{"name": "thank-you", "steps": [{"name": "thank-you", "template": "thank-you"}]}],
    "http": {"public_url": "https://shop.example.com/wcf"},
}


def data(**changes: Any) -> dict[str, Any]:
    """A copy of DATA with dotted-path changes, e.g. ``{"store.url": "x"}``."""
    result = copy.deepcopy(DATA)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target: Any = result
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return result


def error_messages(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Config.model_validate(raw)
    return [error["msg"] for error in caught.value.errors()]


def test_defaults_and_normalisation() -> None:
    cfg = Config.model_validate(DATA)
    assert cfg.store.url == "https://shop.example.com"
    assert cfg.store.language == "en"
    assert cfg.store.request_timeout == timedelta(seconds=30)
    assert cfg.store.verify_tls is True
    assert cfg.store.tz == ZoneInfo("Asia/Jakarta")
    assert cfg.sendgrid.host == "https://api.sendgrid.com"
    assert cfg.sendgrid.from_email == "Halo@example.com"
    assert cfg.sendgrid.request_timeout == timedelta(seconds=15)
    assert cfg.poll == PollConfig(
        interval=timedelta(seconds=60), overlap=timedelta(minutes=2), page_size=100
    )
    assert cfg.dispatch == DispatchConfig(interval=timedelta(seconds=10), batch_size=50, workers=4)
    step = cfg.sequences[0].steps[0]
    assert (step.kind, step.after, cfg.sequences[0].trigger) == (
        "email",
        timedelta(0),
        "order_completed",
    )
    assert cfg.templates_dir is None
    assert cfg.source_path == Path("<in-memory>")


def test_models_are_frozen_and_forbid_unknown_keys() -> None:
    cfg = Config.model_validate(DATA)
    with pytest.raises(ValidationError):
        cfg.store.name = "other"  # type: ignore[misc]
    assert error_messages(data(**{"store.colour": "red"})) == ["Extra inputs are not permitted"]


def test_secrets_never_appear_in_repr_or_str() -> None:
    cfg = Config.model_validate(data(database={"url": "postgresql+psycopg://u:hunter2@db/x"}))
    for text in (repr(cfg), str(cfg), repr(cfg.store), repr(cfg.database)):
        assert SECRET not in text
        assert "SG.key" not in text
        assert "hunter2" not in text
    assert cfg.store.consumer_secret.get_secret_value() == SECRET
    assert cfg.database.sqlalchemy_url == "postgresql+psycopg://u:hunter2@db/x"


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://shop.example.com", "https://shop.example.com"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://example.com/shop/", "https://example.com/shop"),
    ],
)
def test_store_url_is_stored_without_trailing_slash(url: str, stored: str) -> None:
    assert Config.model_validate(data(**{"store.url": url})).store.url == stored


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("shop.example.com", "'shop.example.com' is not a URL; write it like https://shop"),
        ("ftp://shop.example.com", "is not a URL"),
        ("https://", "is not a URL"),
        ("https://shop example.com", "is not a URL"),
        ("https://shop.example.com:99999", "is not a URL"),
        ("https://shop.example.com/?a=1", "must not contain '?…' or '#…'"),
        ("https://shop.example.com/#top", "must not contain '?…' or '#…'"),
        ("https://me:pw@shop.example.com", "must not contain a user name or password"),
    ],
)
def test_bad_store_urls_are_refused(url: str, expected: str) -> None:
    (message,) = error_messages(data(**{"store.url": url}))
    assert expected in message
    assert "pw@" not in message


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Jakarta", "Asia/Jakarta"),
        ("asia/jakarta", "Asia/Jakarta"),
        ("Asia/Jakrta", "Asia/Jakarta"),
        ("WIB", "Asia/Jakarta"),
        ("Kuala Lumpur", "Asia/Kuala_Lumpur"),
    ],
)
def test_bad_time_zones_suggest_close_names(name: str, suggestion: str) -> None:
    assert suggestion in suggest_time_zones(name)
    (message,) = error_messages(data(**{"store.timezone": name}))
    assert "is not a known time zone; did you mean" in message
    assert f"'{suggestion}'" in message


def test_time_zone_paths_are_not_looked_up() -> None:
    (message,) = error_messages(data(**{"store.timezone": "../../etc/passwd"}))
    assert "is not a known time zone" in message


def test_email_is_validated_and_normalised() -> None:
    (message,) = error_messages(data(**{"sendgrid.from_email": "halo.example.com"}))
    assert message.startswith("'halo.example.com' is not a valid email address")


def test_database_needs_exactly_one_of_path_and_url(tmp_path: Path) -> None:
    (both,) = error_messages(data(database={"path": "a.db", "url": "sqlite:///b.db"}))
    assert "set exactly one of 'path'" in both and "both are set" in both
    (neither,) = error_messages(data(database={}))
    assert "neither is set" in neither
    (bad_url,) = error_messages(data(database={"url": "db.internal:hunter2"}))
    assert "not a database URL" in bad_url and "hunter2" not in bad_url
    resolved = DatabaseConfig.model_validate({"path": "state.db"}, context={BASE_DIR: tmp_path})
    assert resolved.path == tmp_path / "state.db"
    assert resolved.sqlalchemy_url == f"sqlite:///{tmp_path / 'state.db'}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("false", False), ("yes", True), ("ca.pem", "{dir}/ca.pem")],
)
def test_verify_tls_takes_a_flag_or_a_ca_bundle(
    value: object, expected: object, tmp_path: Path
) -> None:
    make_self_signed(tmp_path)
    (tmp_path / "sandbox-cert.pem").rename(tmp_path / "ca.pem")
    raw = data(**{"store.verify_tls": value})["store"]
    store = StoreConfig.model_validate(raw, context={BASE_DIR: tmp_path})
    if isinstance(expected, str):
        expected = expected.format(dir=tmp_path)
    assert store.verify_tls == expected


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "does not exist"), ("not a certificate\n", "holds no certificate in PEM format")],
)
def test_a_ca_bundle_that_cannot_be_used_is_a_config_error(
    content: str | None, problem: str, tmp_path: Path
) -> None:
    """Not a traceback at the first request of ``run`` after ``check`` said OK."""
    if content is not None:
        (tmp_path / "ca.pem").write_text(content, encoding="utf-8")
    raw = data(**{"store.verify_tls": "ca.pem"})["store"]
    with pytest.raises(ValidationError) as caught:
        StoreConfig.model_validate(raw, context={BASE_DIR: tmp_path})
    (message,) = [e["msg"] for e in caught.value.errors()]
    assert f"{tmp_path / 'ca.pem'} {problem}" in message
    assert "true to trust the system's certificate authorities" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"poll.interval": "2s"}, "2s is too short; the minimum is 5s"),
        ({"dispatch.interval": "0s"}, "0s is too short; the minimum is 1s"),
        ({"poll.page_size": 101}, "less than or equal to 100"),
        ({"poll.page_size": 0}, "greater than or equal to 1"),
        ({"dispatch.batch_size": 1001}, "less than or equal to 1000"),
        ({"dispatch.workers": 65}, "less than or equal to 64"),
        ({"dispatch.workers": True}, "expected a whole number, got true"),
    ],
)
def test_limits(changes: dict[str, Any], expected: str) -> None:
    raw = data(poll={}, dispatch={})
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        raw[section][key] = value
    (message,) = error_messages(raw)
    assert expected in message


def test_names_are_slugs() -> None:
    (message,) = error_messages(data(**{"sequences.0.name": "Thank You!"}))
    assert message == (
        "'Thank You!' is not a valid name; use lowercase letters, digits and dashes, "
        "like 'thank-you'"
    )
    step = {"name": "ok", "template": "Thank_You"}
    with pytest.raises(ValidationError) as caught:
        StepConfig.model_validate(step)
    assert "like 'thank-you'" in caught.value.errors()[0]["msg"]


def test_sequence_and_step_names_are_unique_and_lists_non_empty() -> None:
    sequence = DATA["sequences"][0]
    assert error_messages(data(sequences=[sequence, sequence])) == [
        "sequence name 'thank-you' is used by #1 and #2; names must be unique"
    ]
    step = sequence["steps"][0]
    with pytest.raises(ValidationError) as caught:
        SequenceConfig.model_validate({"name": "s", "steps": [step, step]})
    assert "step name 'thank-you' is used by #1 and #2" in caught.value.errors()[0]["msg"]
    assert error_messages(data(sequences=[]))[0].startswith("List should have at least 1 item")


def test_json_schema_can_be_generated_for_editors() -> None:
    schema = Config.model_json_schema()
    assert set(schema["required"]) == {"store", "sendgrid", "database", "sequences"}
    assert "source_path" not in schema["properties"]
