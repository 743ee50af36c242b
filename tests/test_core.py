"""The pure core: timestamps, planning, money and redaction, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wcfollowup.common.redact import redact
from wcfollowup.core.money import format_money
from wcfollowup.core.orders import OrderSnapshot, format_wc_gmt, parse_wc_gmt
from wcfollowup.core.planning import is_new_completion


def test_wc_gmt_round_trip_is_naive_utc_without_z() -> None:
    parsed = parse_wc_gmt("2026-11-10T11:20:00")
    assert parsed == datetime(2026, 11, 10, 11, 20, tzinfo=UTC)
    assert parse_wc_gmt(None) is None and parse_wc_gmt("") is None
    jakarta = datetime(2026, 11, 10, 18, 20, 0, 123, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Jakarta")
    )
    assert format_wc_gmt(jakarta) == "2026-11-10T18:20:00"


def snapshot(
    status: str, completed: str | None, modified: str = "2026-11-10T12:00:00"
) -> OrderSnapshot:
    return OrderSnapshot.from_wc(
        {
            "id": 7,
            "number": "7",
            "status": status,
            "date_modified_gmt": modified,
            "date_completed_gmt": completed,
            "billing": {"email": "a@b.test"},
        }
    )


def test_only_orders_completed_after_first_sight_are_new() -> None:
    baseline = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    assert is_new_completion(snapshot("completed", "2026-11-10T12:00:01"), baseline)
    assert not is_new_completion(snapshot("completed", "2026-11-10T11:59:59"), baseline)
    assert not is_new_completion(snapshot("processing", None), baseline)
    # Without date_completed_gmt the modification time stands in.
    assert is_new_completion(snapshot("completed", None, "2026-11-10T12:00:05"), baseline)
    assert snapshot("completed", None).completed_gmt is None
    assert baseline + timedelta(seconds=1) > baseline


def test_order_without_modified_date_is_refused() -> None:
    with pytest.raises(ValueError):
        OrderSnapshot.from_wc({"id": 1, "status": "completed"})


@pytest.mark.parametrize(
    ("amount", "currency", "language", "expected"),
    [
        ("150000.00", "IDR", "id", "Rp\xa0150.000"),
        ("150.00", "MYR", "ms", "RM150.00"),
        ("1234.5", "USD", "en", "$1,234.50"),
    ],
)
def test_money_reads_like_a_local_price_tag(
    amount: str, currency: str, language: str, expected: str
) -> None:
    assert format_money(amount, currency, language).replace(" ", "\xa0") == expected


def test_redact_hides_secrets_signed_urls_and_bearer_tokens() -> None:
    text = (
        "GET http://shop.test/wp-json/wc/v3/orders?oauth_signature=abc&consumer_secret=cs_123 "
        "Authorization: Bearer SG.key.value and cs_123 again"
    )
    cleaned = redact(text, ["cs_123"])
    assert "oauth_signature" not in cleaned
    assert "cs_123" not in cleaned
    assert "SG.key.value" not in cleaned
    assert "http://shop.test/wp-json/wc/v3/orders" in cleaned


@pytest.mark.parametrize("language", ["en", "id", "ms"])
@pytest.mark.parametrize("template", ["thank-you", "review-request", "win-back"])
def test_built_in_templates_render_in_every_language(template: str, language: str) -> None:
    from zoneinfo import ZoneInfo

    from wcfollowup.core.context import email_context
    from wcfollowup.render.renderer import Renderer

    context = email_context(
        SAMPLE_ORDER,
        store_name="Toko <Sari>",
        store_url="https://toko.example",
        store_tz=ZoneInfo("Asia/Jakarta"),
        language=language,
    )
    rendered = Renderer().render(template, language, context)
    assert rendered.subject and "\n" not in rendered.subject
    assert "Toko &lt;Sari&gt;" in rendered.html  # autoescaped in HTML
    assert "Toko <Sari>" in rendered.text  # plain text stays plain
    assert f'lang="{language}"' in rendered.html


SAMPLE_ORDER = {
    "id": 15,
    "number": "15",
    "currency": "IDR",
    "total": "150000.00",
    "shipping_total": "20000.00",
    "date_created_gmt": "2026-11-02T08:00:00",
    "billing": {"first_name": "Siti", "last_name": "R", "email": "siti@example.test"},
    "line_items": [{"name": "Kopi Gayo", "quantity": 1, "total": "130000.00", "sku": "K1"}],
}
