"""Built-in templates, the template context and the message language, rendered for real."""

from __future__ import annotations

import copy
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jinja2 import UndefinedError

from wcfollowup.core.context import email_context, safe_money
from wcfollowup.core.language import DEFAULT_LANGUAGE_BY_COUNTRY, language_for
from wcfollowup.render.check import SAMPLE_ORDER, SAMPLE_UNSUBSCRIBE_URL, sample_context
from wcfollowup.render.renderer import RenderedEmail, Renderer

LANGUAGES = ("en", "id", "ms")
CUSTOMER_TEMPLATES = ("thank-you", "review-request", "survey", "coupon", "win-back")
JAKARTA = ZoneInfo("Asia/Jakarta")
RENDERER = Renderer()


def order_with(**changes: Any) -> dict[str, Any]:
    order = copy.deepcopy(dict(SAMPLE_ORDER))
    order.update(changes)
    return order


def render(template: str, language: str, order: dict[str, Any] | None = None) -> RenderedEmail:
    return RENDERER.render(
        template, language, sample_context(language, order=order or order_with())
    )


def context_for(order: dict[str, Any], language: str = "en", **kwargs: Any) -> dict[str, Any]:
    return email_context(
        order,
        store_name="Toko Batik Sari",
        store_url="https://toko.example",
        store_tz=JAKARTA,
        language=language,
        **kwargs,
    )


class TestBuiltInTemplates:
    @pytest.mark.parametrize("language", LANGUAGES)
    @pytest.mark.parametrize("template", [*CUSTOMER_TEMPLATES, "low-score-alert"])
    def test_renders_for_the_sample_order(self, template: str, language: str) -> None:
        """Every built-in template has a one-line subject and non-empty HTML and text."""
        email = render(template, language)
        assert email.subject.strip() and "\n" not in email.subject
        assert len(email.subject) < 120
        assert "{{" not in email.html + email.text + email.subject
        assert f'<html lang="{language}">' in email.html
        assert email.text.strip()

    @pytest.mark.parametrize("language", LANGUAGES)
    @pytest.mark.parametrize("template", CUSTOMER_TEMPLATES)
    def test_customer_emails_end_with_the_unsubscribe_link(
        self, template: str, language: str
    ) -> None:
        """The footer carries the link in both parts, after the body."""
        email = render(template, language)
        assert f'href="{SAMPLE_UNSUBSCRIBE_URL}"' in email.html
        assert email.text.rstrip().endswith(SAMPLE_UNSUBSCRIBE_URL)

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_owner_alert_has_no_customer_footer(self, language: str) -> None:
        """The alert goes to the owner: plain facts, no unsubscribe footer."""
        email = render("low-score-alert", language)
        assert "unsubscribe" not in email.html.lower()
        assert "2 / 5" in email.text and "#1042" in email.text
        assert "post.php?post=1042&amp;action=edit" in email.html
        assert "Siti Rahayu" in email.subject

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_no_unsubscribe_url_means_no_unsubscribe_line(self, language: str) -> None:
        context = context_for(order_with(), language)
        email = RENDERER.render("thank-you", language, context)
        assert 'href=""' not in email.html

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_thank_you_summarises_the_order(self, language: str) -> None:
        email = render("thank-you", language)
        for text in (email.html, email.text):
            assert "Batik Tulis Parang Rusak" in text
            assert "Kopi Gayo Arabika 250g" in text
            assert "hemat25" in text
        if language == "id":
            assert "Rp 338.000" in email.text  # the total
            assert "2 x Rp 35.000 = Rp 70.000" in email.text  # quantity, unit price, line
        assert "https://toko.example/pengembalian/" in email.html  # returns link

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_review_request_links_each_product_to_its_review_form(self, language: str) -> None:
        email = render("review-request", language)
        for url in (
            "https://toko.example/produk/batik-tulis-parang-rusak/#reviews",
            "https://toko.example/produk/kopi-gayo-arabika/#reviews",
        ):
            assert f'href="{url}"' in email.html
            assert url in email.text
        assert 'src="https://toko.example/img/batik-parang.jpg"' in email.html
        assert email.html.count("<img ") == 1  # the coffee has no image: no broken <img>

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_survey_has_five_one_click_links(self, language: str) -> None:
        email = render("survey", language)
        for score in range(1, 6):
            url = f"https://wcfollowup.invalid/survey/sample-{score}"
            assert f'href="{url}"' in email.html
            assert f"{score} - {url}" in email.text
        assert "1042" in email.subject
        assert "2026" in email.text  # when the links expire

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_coupon_shows_code_terms_and_that_it_is_personal(self, language: str) -> None:
        email = render("coupon", language)
        for text in (email.html, email.text):
            assert "THANKS-7F3KQ2" in text
            assert "10%" in text
            assert "siti.rahayu@example.test" in text  # only for this email address
            assert "2026" in text  # expiry
        assert "100.000" in email.text or "100,000" in email.text  # minimum spend
        assert "10%" in email.subject

    def test_language_specific_wording(self) -> None:
        """Not one English template three times: each language speaks for itself."""
        assert "Terima kasih" in render("thank-you", "id").subject
        assert "Kak Siti" in render("thank-you", "id").text
        assert "kerana" in render("thank-you", "ms").text
        assert "Thank you" in render("thank-you", "en").subject


class TestHostileNames:
    NAMES = ("<script>alert(1)</script>", "Siti 🌸", "مريم")

    @pytest.mark.parametrize("language", LANGUAGES)
    @pytest.mark.parametrize("template", CUSTOMER_TEMPLATES)
    @pytest.mark.parametrize("name", NAMES)
    def test_escaped_in_html_and_literal_in_text(
        self, name: str, template: str, language: str
    ) -> None:
        order = order_with(billing={**SAMPLE_ORDER["billing"], "first_name": name})
        email = render(template, language, order)
        escaped = name.replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in email.html
        assert name in email.text
        if "<" in name:
            assert name not in email.html

    def test_context_passes_names_through_untouched(self) -> None:
        order = order_with(billing={"first_name": "<b>مريم 🌸</b>", "last_name": "O'Neil"})
        context = context_for(order)
        assert context["customer"]["first_name"] == "<b>مريم 🌸</b>"
        assert context["customer"]["last_name"] == "O'Neil"

    def test_product_name_with_html_is_escaped(self) -> None:
        order = order_with()
        order["line_items"][0]["name"] = 'Batik <img src=x onerror="alert(1)">'
        email = render("thank-you", "id", order)
        assert "<img src=x" not in email.html
        assert "Batik &lt;img src=x" in email.html


class TestMoney:
    def test_rupiah_has_no_decimals_and_a_dot_for_thousands(self) -> None:
        assert safe_money("150000.00", "IDR", "id") == "Rp 150.000"

    def test_ringgit(self) -> None:
        assert safe_money("150", "MYR", "ms") == "RM150.00"

    @pytest.mark.parametrize("currency", ["XYZ", "", "ÄÖ", "12", "TOOLONGCODE"])
    def test_unknown_currency_does_not_crash(self, currency: str) -> None:
        assert "150" in safe_money("150", currency, "id")

    @pytest.mark.parametrize("amount", ["NaN", "Infinity", "abc", None, ""])
    def test_garbage_amount_reads_as_zero(self, amount: object) -> None:
        assert safe_money(amount, "MYR", "ms") == "RM0.00"

    def test_context_formats_every_amount_in_the_order_currency(self) -> None:
        order = order_with(currency="MYR", total="150.00", shipping_total="8.00")
        order["line_items"] = [{"name": "Tudung", "quantity": 2, "subtotal": "142.00"}]
        context = context_for(order, "ms")
        assert context["order"]["total"] == "RM150.00"
        assert context["order"]["shipping_total"] == "RM8.00"
        assert context["order"]["subtotal"] == "RM142.00"
        assert context["order"]["items"][0]["price"] == "RM71.00"

    def test_unknown_currency_renders(self) -> None:
        order = order_with(currency="XBT")
        email = RENDERER.render("thank-you", "en", context_for(order))
        assert "XBT" in email.text


class TestTracking:
    @pytest.mark.parametrize("language", LANGUAGES)
    def test_number_and_link_in_the_thank_you(self, language: str) -> None:
        email = render("thank-you", language)
        link = "https://www.jne.co.id/tracking?awb=JNE0012345678"
        assert f'href="{link}"' in email.html
        assert "JNE0012345678" in email.html
        assert link in email.text and "JNE: JNE0012345678" in email.text

    def test_parsed_from_meta(self) -> None:
        tracking = context_for(order_with())["order"]["tracking"]
        assert tracking == [
            {
                "provider": "JNE",
                "number": "JNE0012345678",
                "url": "https://www.jne.co.id/tracking?awb=JNE0012345678",
                "date_shipped": "March 4, 2026",
            }
        ]

    def test_custom_meta_key_and_custom_provider(self) -> None:
        meta = [
            {
                "key": "_my_tracking",
                "value": [{"custom_tracking_provider": "J&T Express", "tracking_number": "JT1"}],
            }
        ]
        context = context_for(order_with(meta_data=meta), tracking_meta_key="_my_tracking")
        assert context["order"]["tracking"] == [
            {"provider": "J&T Express", "number": "JT1", "url": "", "date_shipped": ""}
        ]

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "not json",
            "[1, 2]",
            42,
            [None, "x", {"tracking_number": None}],
            [{"tracking_number": "A1", "date_shipped": "someday", "custom_tracking_link": 5}],
            {"tracking_number": ["nested"]},
        ],
    )
    @pytest.mark.parametrize("language", LANGUAGES)
    def test_malformed_meta_does_not_crash(self, value: object, language: str) -> None:
        order = order_with(meta_data=[{"key": "_wc_shipment_tracking_items", "value": value}])
        email = RENDERER.render("thank-you", language, context_for(order, language))
        assert email.text

    def test_javascript_links_are_dropped(self) -> None:
        value = [{"tracking_number": "X1", "custom_tracking_link": "javascript:alert(1)"}]
        order = order_with(meta_data=[{"key": "_wc_shipment_tracking_items", "value": value}])
        assert context_for(order)["order"]["tracking"][0]["url"] == ""

    def test_no_meta_no_tracking(self) -> None:
        email = RENDERER.render("thank-you", "en", context_for(order_with(meta_data=[])))
        assert "on its way" in email.text and "JNE" not in email.text


class TestContext:
    def test_broken_order_still_gives_a_context(self) -> None:
        """A plugin-mangled order renders instead of losing the step."""
        order: dict[str, Any] = {
            "id": "abc",
            "billing": None,
            "line_items": [None, {"quantity": "lots", "total": None}],
            "coupon_lines": "x",
            "meta_data": {"key": "nope"},
            "date_created_gmt": "not a date",
        }
        context = context_for(order, "id")
        assert context["order"]["id"] == 0
        assert context["order"]["date"] == ""
        assert context["order"]["items"][0]["quantity"] == 0
        assert RENDERER.render("thank-you", "id", context).text

    def test_items_and_line_items_are_the_same(self) -> None:
        context = context_for(order_with())
        assert context["order"]["items"] == context["order"]["line_items"]
        item = context["order"]["items"][0]
        assert item["image"] == "https://toko.example/img/batik-parang.jpg"  # from the line
        assert item["url"] == "" and item["review_url"] == ""  # no product info given

    def test_products_give_links_and_images(self) -> None:
        products = {
            102: {
                "permalink": "https://toko.example/kopi/",
                "images": [{"src": "https://toko.example/k.jpg"}],
            }
        }
        item = context_for(order_with(), products=products)["order"]["items"][1]
        assert item["url"] == "https://toko.example/kopi/"
        assert item["review_url"] == "https://toko.example/kopi/#reviews"
        assert item["image"] == "https://toko.example/k.jpg"

    def test_order_date_is_long_and_local(self) -> None:
        # 2026-03-02 20:00 UTC is already 3 March in Jakarta.
        order = order_with(date_created_gmt="2026-03-02T20:00:00")
        assert context_for(order, "en")["order"]["date"] == "March 3, 2026"
        assert context_for(order, "id")["order"]["date"] == "3 Maret 2026"

    def test_store_and_defaults(self) -> None:
        context = context_for(order_with())
        assert context["store"] == {
            "name": "Toko Batik Sari",
            "url": "https://toko.example",
            "returns_url": "",
        }
        assert context["unsubscribe_url"] == ""
        assert context["order"]["coupons"] == ["hemat25"]
        assert context["order"]["payment_method"] == "Transfer bank"

    def test_extras_are_merged_at_the_top(self) -> None:
        extras = {"unsubscribe_url": "https://u.example/x", "coupon": {"code": "ABC"}}
        context = context_for(order_with(), extras=extras)
        assert context["unsubscribe_url"] == "https://u.example/x"
        assert context["coupon"]["code"] == "ABC"

    def test_review_products_without_store_details_take_them_from_the_order(self) -> None:
        """A product the store did not describe still shows its name from the order line."""
        review = {
            "products": [{"product_id": 101, "name": "", "url": "", "review_url": "", "image": ""}]
        }
        context = context_for(order_with(), "id", extras={"review": review})
        [product] = context["review"]["products"]
        assert product["name"] == "Batik Tulis Parang Rusak"
        assert product["image"] == "https://toko.example/img/batik-parang.jpg"
        email = RENDERER.render("review-request", "id", context)
        assert "Batik Tulis Parang Rusak" in email.text
        assert "Kopi Gayo" not in email.text  # only the products the engine listed

    def test_sendgrid_unsubscribe_tag_is_not_escaped(self) -> None:
        tag = "<%asm_group_unsubscribe_raw_url%>"
        context = context_for(order_with(), extras={"unsubscribe_url": tag})
        email = RENDERER.render("thank-you", "en", context)
        assert f'href="{tag}"' in email.html

    def test_typo_names_the_section(self) -> None:
        template = RENDERER.env.from_string("{{ order.totl }}")
        with pytest.raises(UndefinedError, match="'order' has no attribute 'totl'"):
            template.render(context_for(order_with()))


class TestLanguageFor:
    @pytest.mark.parametrize(
        ("country", "expected"),
        [("MY", "ms"), ("my", "ms"), (" ID ", "id"), ("BN", "ms"), ("SG", "en"), ("", "en")],
    )
    def test_billing_country_picks_the_language(self, country: str, expected: str) -> None:
        order = {"billing": {"country": country}}
        assert language_for(order, "en", DEFAULT_LANGUAGE_BY_COUNTRY) == expected

    def test_default_when_there_is_no_billing(self) -> None:
        assert language_for({}, "id", DEFAULT_LANGUAGE_BY_COUNTRY) == "id"
        assert language_for({"billing": None}, "ms", DEFAULT_LANGUAGE_BY_COUNTRY) == "ms"
        assert language_for({"billing": {"country": 7}}, "en", {"MY": "ms"}) == "en"

    def test_owner_mapping_wins(self) -> None:
        order = {"billing": {"country": "SG"}}
        assert language_for(order, "en", {"SG": "ms"}) == "ms"
