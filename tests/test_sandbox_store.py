"""The sandbox store, driven over HTTP by the real ``woocommerce`` client (and ``requests``).

Each expectation comes from FACTS.md (what a real WooCommerce 6.6 server did), so these tests
double as the contract the daemon's WooCommerce gateway is written against.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from woocommerce import API
from woocommerce.oauth import OAuth

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.wp_params import date_bound, parse_wp_date, php_query

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
PER_PAGE_ERROR = {
    "code": "rest_invalid_param",
    "message": "Invalid parameter(s): per_page",
    "data": {
        "status": 400,
        "params": {"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"},
        "details": {
            "per_page": {
                "code": "rest_out_of_bounds",
                "message": "per_page must be between 1 (inclusive) and 100 (inclusive)",
                "data": None,
            }
        },
    },
}
CANNOT_LIST = {
    "code": "woocommerce_rest_cannot_view",
    "message": "Sorry, you cannot list resources.",
    "data": {"status": 401},
}


def auth_error(message: str) -> dict[str, Any]:
    return {
        "code": "woocommerce_rest_authentication_error",
        "message": message,
        "data": {"status": 401},
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sb(clock: FakeClock) -> Iterator[Sandbox]:
    with Sandbox(clock) as sandbox:
        yield sandbox


def wc(sb: Sandbox, secret: str | None = None, key: str | None = None) -> API:
    return API(
        url=sb.store_url,
        consumer_key=key or sb.consumer_key,
        consumer_secret=secret or sb.consumer_secret,
        version="wc/v3",
        timeout=10,
    )


def signed_url(sb: Sandbox, endpoint: str, timestamp: int | None = None) -> str:
    url = f"{sb.store_url}/wp-json/wc/v3/{endpoint}"
    return str(
        OAuth(
            url=url,
            consumer_key=sb.consumer_key,
            consumer_secret=sb.consumer_secret,
            version="wc/v3",
            method="GET",
            oauth_timestamp=timestamp or int(time.time()),
        ).get_oauth_url()
    )


def ids(response: requests.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def naive(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


class TestOrderJson:
    def test_single_order_has_every_captured_field_with_the_same_types(self, sb: Sandbox) -> None:
        """Money is a 2-decimal string, price a number, number a string, dates offset-free."""
        with open("/work/shared/woocommerce/order-completed.json") as handle:
            captured = json.load(handle)
        order_id = next(i for i in sb.store.orders_ids("completed") if sb.store.get(i)["refunds"])
        order = wc(sb).get(f"orders/{order_id}").json()
        for name, value in captured.items():
            assert name in order, name
            if value is not None and order[name] is not None:
                assert type(order[name]) is type(value), name
        assert order["number"] == str(order_id)
        assert order["total"].count(".") == 1 and len(order["total"].split(".")[1]) == 2
        assert isinstance(order["line_items"][0]["price"], float)
        assert order["refunds"][0]["total"].startswith("-")
        assert order["date_created_gmt"] == order["date_created_gmt"][:19]
        assert "+" not in order["date_modified"] and "Z" not in order["date_modified_gmt"]
        self_link = order["_links"]["self"][0]["href"]
        assert self_link == f"{sb.store_url}/wp-json/wc/v3/orders/{order_id}"

    def test_local_dates_are_in_the_store_zone_and_gmt_in_utc(self, sb: Sandbox) -> None:
        order = wc(sb).get("orders", params={"per_page": 1}).json()[0]
        local = datetime.fromisoformat(order["date_modified"])
        gmt = datetime.fromisoformat(order["date_modified_gmt"])
        assert local - gmt == timedelta(hours=7)  # Asia/Jakarta

    def test_guest_orders_have_customer_id_zero_and_names_keep_utf8(self, sb: Sandbox) -> None:
        orders = wc(sb).get("orders", params={"per_page": 100}).json()
        assert any(order["customer_id"] == 0 for order in orders)
        names = {order["billing"]["first_name"] for order in orders}
        assert "Putu Ayu 🌺" in names and "André" in names
        assert {order["currency"] for order in orders} == {"IDR", "MYR"}

    def test_seed_history_spans_statuses_and_lies_in_the_past(self, sb: Sandbox) -> None:
        orders = wc(sb).get("orders", params={"per_page": 100}).json()
        assert len(orders) == 20
        assert {o["status"] for o in orders} >= {
            "completed",
            "processing",
            "refunded",
            "cancelled",
            "on-hold",
            "pending",
            "failed",
        }
        assert all(datetime.fromisoformat(o["date_modified_gmt"]) < naive_dt(START) for o in orders)
        completed = [o for o in orders if o["status"] == "completed"]
        assert all(o["date_completed_gmt"] for o in completed)
        assert all(
            o["date_completed_gmt"] is None
            for o in orders
            if o["status"] in ("pending", "failed", "cancelled")
        )

    def test_fake_clock_drives_written_timestamps_and_the_date_header(
        self, sb: Sandbox, clock: FakeClock
    ) -> None:
        first = wc(sb).get("orders")
        assert first.headers["Date"] == "Sun, 22 Nov 2026 08:00:00 GMT"
        clock.advance(timedelta(days=3, minutes=5, seconds=7.6))
        order = sb.store.create_order(customer="siti", items=[(11, 1)])
        assert order["date_created_gmt"] == "2026-11-25T08:05:07"
        assert order["date_created"] == "2026-11-25T15:05:07"
        assert wc(sb).get("orders").headers["Date"] == "Wed, 25 Nov 2026 08:05:07 GMT"


def naive_dt(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


class TestFilters:
    def test_status_filter_single_and_comma_list(self, sb: Sandbox) -> None:
        api = wc(sb)
        completed = api.get("orders", params={"status": "completed", "per_page": 100})
        assert sorted(ids(completed)) == sb.store.orders_ids("completed")
        assert completed.headers["X-WP-Total"] == str(len(sb.store.orders_ids("completed")))
        both = api.get("orders", params={"status": "completed,processing", "per_page": 100})
        assert sorted(ids(both)) == sorted(
            sb.store.orders_ids("completed") + sb.store.orders_ids("processing")
        )
        assert api.get("orders", params={"status": "trash"}).json() == []

    def test_unknown_status_is_the_captured_400(self, sb: Sandbox) -> None:
        response = wc(sb).get("orders", params={"status": "bogus"})
        assert response.status_code == 400
        message = (
            "status[0] is not one of any, trash, auto-draft, pending, processing, "
            "on-hold, completed, cancelled, refunded, failed, and checkout-draft."
        )
        assert response.json()["data"]["params"] == {"status": message}
        assert response.json()["data"]["details"]["status"]["code"] == "rest_not_in_enum"

    def test_registered_custom_status_becomes_valid(self, sb: Sandbox) -> None:
        sb.store.register_status("delivered")
        order_id = sb.store.orders_ids("completed")[0]
        sb.store.set_status(order_id, "delivered")
        assert ids(wc(sb).get("orders", params={"status": "delivered"})) == [order_id]

    def test_modified_after_trap_naive_utc_is_right_and_z_is_shifted(self, sb: Sandbox) -> None:
        """dates_are_gmt + naive UTC is correct; with ``Z`` WordPress shifts it by +7h."""
        order = wc(sb).get("orders", params={"per_page": 100}).json()[-1]  # the oldest
        modified = datetime.fromisoformat(order["date_modified_gmt"]).replace(tzinfo=UTC)
        cursor = modified - timedelta(minutes=1)
        api = wc(sb)

        def found(**params: str) -> bool:
            return order["id"] in ids(api.get("orders", params={"per_page": 100, **params}))

        assert found(modified_after=naive(cursor), dates_are_gmt="true")
        assert not found(modified_after=naive(cursor) + "Z", dates_are_gmt="true")
        assert not found(modified_after=naive(cursor) + "+00:00", dates_are_gmt="true")
        assert found(modified_after=naive(cursor) + "Z")
        assert found(modified_after=naive(cursor + timedelta(hours=7)))  # naive = site-local
        assert not found(modified_after=naive(modified), dates_are_gmt="true")  # strict >
        assert found(modified_before=naive(modified + timedelta(seconds=1)), dates_are_gmt="1")

    def test_invalid_dates_are_rejected(self, sb: Sandbox) -> None:
        for value in ("yesterday", "2026-11-10", "2026-13-01T00:00:00"):
            response = wc(sb).get("orders", params={"modified_after": value})
            assert response.status_code == 400
            assert response.json()["data"]["params"] == {"modified_after": "Invalid date."}
            assert (
                response.json()["data"]["details"]["modified_after"]["code"] == "rest_invalid_date"
            )

    def test_after_filters_on_creation_and_customer_and_search(self, sb: Sandbox) -> None:
        api = wc(sb)
        recent = api.get(
            "orders", params={"after": naive(START - timedelta(days=2)), "dates_are_gmt": "true"}
        ).json()
        assert recent and all(
            o["date_created_gmt"] > naive(START - timedelta(days=2)) for o in recent
        )
        siti = api.get("orders", params={"customer": 2, "per_page": 100}).json()
        assert siti and {o["billing"]["email"] for o in siti} == {"siti.rahmawati@example.test"}
        found = api.get("orders", params={"search": "SANTOSO"}).json()
        assert found and all(o["billing"]["last_name"] == "Santoso" for o in found)

    def test_orderby_modified_ascending_breaks_ties_by_id(self, sb: Sandbox) -> None:
        new = sb.store.add_orders(5, status="completed")
        response = wc(sb).get(
            "orders",
            params={
                "orderby": "modified",
                "order": "asc",
                "status": "completed",
                "per_page": 100,
                "modified_after": naive(START - timedelta(seconds=1)),
                "dates_are_gmt": "true",
            },
        )
        assert ids(response) == new

    def test_include_returns_just_those_orders(self, sb: Sandbox) -> None:
        wanted = sb.store.orders_ids()[:3]
        got = ids(wc(sb).get("orders", params={"include": ",".join(map(str, wanted))}))
        assert sorted(got) == wanted


class TestPagination:
    def test_pages_cover_everything_with_totals_and_prev_next_links(self, sb: Sandbox) -> None:
        sb.store.add_orders(130, status="completed")
        api = wc(sb)
        total = len(sb.store.orders_ids())
        first = api.get("orders", params={"per_page": 100, "page": 1})
        second = api.get("orders", params={"per_page": 100, "page": 2})
        assert first.headers["X-WP-Total"] == str(total) == second.headers["X-WP-Total"]
        assert first.headers["X-WP-TotalPages"] == "2"
        assert set(first.links) == {"next"} and set(second.links) == {"prev"}
        assert "page=2" in first.links["next"]["url"]
        # The Link header echoes the request's stale OAuth parameters (the trap to avoid).
        assert "oauth_signature=" in first.links["next"]["url"]
        assert sorted(ids(first) + ids(second)) == sb.store.orders_ids()
        past = api.get("orders", params={"per_page": 100, "page": 9})
        assert past.json() == [] and past.headers["X-WP-Total"] == str(total)
        assert "page=2" in past.links["prev"]["url"]

    def test_following_the_echoed_next_link_verbatim_fails(self, sb: Sandbox) -> None:
        sb.store.add_orders(15)
        first = wc(sb).get("orders", params={"per_page": 10})
        again = requests.get(first.links["next"]["url"], timeout=10)
        assert again.status_code == 401
        assert again.json()["code"] == "woocommerce_rest_authentication_error"

    def test_single_page_has_only_the_api_link(self, sb: Sandbox) -> None:
        response = wc(sb).get("orders", params={"per_page": 100})
        assert response.headers["X-WP-TotalPages"] == "1"
        assert response.headers["Link"] == f'<{sb.store_url}/wp-json/>; rel="https://api.w.org/"'

    def test_per_page_bounds_give_the_exact_captured_400(self, sb: Sandbox) -> None:
        for value in (101, 0):
            response = wc(sb).get("orders", params={"per_page": value})
            assert response.status_code == 400
            assert response.json() == PER_PAGE_ERROR
            assert response.headers["Content-Type"] == "application/json; charset=UTF-8"

    def test_page_zero_is_rejected(self, sb: Sandbox) -> None:
        response = wc(sb).get("orders", params={"page": 0})
        assert response.status_code == 400
        assert response.json()["data"]["params"] == {
            "page": "page must be greater than or equal to 1"
        }


class TestFields:
    def test_fields_trim_to_a_third_of_the_bytes(self, sb: Sandbox) -> None:
        sb.store.add_orders(100)
        api = wc(sb)
        full = api.get("orders", params={"per_page": 100})
        slim = api.get("orders", params={"per_page": 100, "_fields": "id,status,date_modified_gmt"})
        assert ids(full) == ids(slim)
        ratio = len(slim.content) / len(full.content)
        print(
            f"\n_fields bytes/order: {len(slim.content) / 100:.0f} vs "
            f"{len(full.content) / 100:.0f} (ratio {ratio:.3f})"
        )
        assert ratio <= 1 / 3
        assert set(slim.json()[0]) == {"id", "status", "date_modified_gmt"}

    def test_dotted_paths_reach_into_objects_but_drop_arrays(self, sb: Sandbox) -> None:
        api = wc(sb)
        item = api.get(
            "orders", params={"per_page": 1, "_fields": "id,billing.email,nonexistent"}
        ).json()[0]
        assert list(item) == ["id", "billing"] and list(item["billing"]) == ["email"]
        order_id = item["id"]
        single = api.get(
            f"orders/{order_id}", params={"_fields": "id,refunds,line_items.sku"}
        ).json()
        assert set(single) == {"id", "refunds", "_links"}


class TestErrors:
    def test_unknown_order_non_numeric_id_and_unknown_route(self, sb: Sandbox) -> None:
        api = wc(sb)
        missing = api.get("orders/999999")
        assert missing.status_code == 404
        assert missing.json() == {
            "code": "woocommerce_rest_shop_order_invalid_id",
            "message": "Invalid ID.",
            "data": {"status": 404},
        }
        for endpoint in ("orders/abc", "nonexistent-endpoint"):
            response = api.get(endpoint)
            assert response.status_code == 404
            assert response.json()["code"] == "rest_no_route"
        assert api.get("products/999999").json()["code"] == "woocommerce_rest_product_invalid_id"

    def test_bad_key_is_the_exact_401(self, sb: Sandbox) -> None:
        response = wc(sb, key="ck_" + "x" * 40).get("orders")
        assert response.status_code == 401
        assert response.json() == auth_error("Consumer key is invalid.")
        assert "WWW-Authenticate" not in response.headers

    def test_bad_secret_is_an_invalid_signature(self, sb: Sandbox) -> None:
        response = wc(sb, secret="cs_wrong").get("orders")
        assert response.status_code == 401
        assert response.json() == auth_error(
            "Invalid signature - provided signature does not match."
        )

    def test_replayed_signed_url_is_a_used_nonce(self, sb: Sandbox) -> None:
        url = signed_url(sb, "orders")
        assert requests.get(url, timeout=10).status_code == 200
        replay = requests.get(url, timeout=10)
        assert replay.status_code == 401
        assert replay.json() == auth_error("Invalid nonce - nonce has already been used.")

    def test_stale_timestamp_uses_real_time_not_the_fake_clock(self, sb: Sandbox) -> None:
        stale = requests.get(signed_url(sb, "orders", int(time.time()) - 16 * 60), timeout=10)
        assert stale.status_code == 401
        assert stale.json() == auth_error("Invalid timestamp.")
        # The store's fake clock is days away from real time; a fresh signature still works.
        assert requests.get(signed_url(sb, "orders"), timeout=10).status_code == 200

    def test_sha1_signatures_are_accepted_too(self, sb: Sandbox) -> None:
        from wcfollowup.sandbox.oauth import sign

        url = f"{sb.store_url}/wp-json/wc/v3/orders"
        params: dict[str, Any] = {
            "per_page": "2",
            "oauth_consumer_key": sb.consumer_key,
            "oauth_timestamp": str(int(time.time())),
            "oauth_nonce": "sha1nonce",
            "oauth_signature_method": "HMAC-SHA1",
        }
        params["oauth_signature"] = sign("GET", url, params, sb.consumer_secret, "HMAC-SHA1")
        assert requests.get(url, params=params, timeout=10).status_code == 200

    def test_no_credentials_and_http_basic_or_query_keys_are_refused(self, sb: Sandbox) -> None:
        url = f"{sb.store_url}/wp-json/wc/v3/orders"
        for response in (
            requests.get(url, timeout=10),
            requests.get(url, auth=(sb.consumer_key, sb.consumer_secret), timeout=10),
            requests.get(
                url,
                params={"consumer_key": sb.consumer_key, "consumer_secret": sb.consumer_secret},
                timeout=10,
            ),
        ):
            assert response.status_code == 401
            assert response.json() == CANNOT_LIST

    def test_read_only_key_cannot_write(self, sb: Sandbox) -> None:
        api = wc(sb, key=sb.readonly_consumer_key, secret=sb.readonly_consumer_secret)
        assert api.get("orders").status_code == 200
        response = api.post("orders", {"status": "processing"})
        assert response.status_code == 401
        assert response.json() == auth_error(
            "The API key provided does not have write permissions."
        )


class TestCouponsAndReviews:
    def test_coupon_creation_normalises_like_woocommerce_6_6(self, sb: Sandbox) -> None:
        api = wc(sb)
        created = api.post(
            "coupons",
            {
                "code": "THANKS-SITI-10",
                "discount_type": "percent",
                "amount": "10",
                "usage_limit": 1,
                "email_restrictions": ["Siti.Rahmawati@Example.TEST", "nope"],
                "date_expires": "2026-12-31T23:59:59",
                "date_expires_gmt": "2026-01-01T00:00:00",
            },
        )
        assert created.status_code == 201
        coupon = created.json()
        assert coupon["code"] == "thanks-siti-10" and coupon["amount"] == "10.00"
        assert coupon["email_restrictions"] == ["siti.rahmawati@example.test"]
        assert coupon["date_expires"] == "2026-12-31T23:59:59"
        assert coupon["date_expires_gmt"] == "2026-12-31T16:59:59"  # local (+7) wins
        assert created.headers["Location"].endswith(f"/coupons/{coupon['id']}")
        duplicate = api.post("coupons", {"code": "thanks-SITI-10", "amount": "5"})
        assert duplicate.status_code == 400
        assert duplicate.json() == {
            "code": "woocommerce_rest_coupon_code_already_exists",
            "message": "The coupon code already exists",
            "data": {"status": 400},
        }
        missing = api.post("coupons", {"amount": "5"})
        assert missing.json() == {
            "code": "rest_missing_callback_param",
            "message": "Missing parameter(s): code",
            "data": {"status": 400, "params": ["code"]},
        }
        found = api.get("coupons", params={"code": "thanks-siti-10"}).json()
        assert [c["id"] for c in found] == [coupon["id"]]
        assert api.get("coupons/999999").json()["code"] == "woocommerce_rest_shop_coupon_invalid_id"

    def test_redeeming_a_coupon_shows_on_the_order_and_the_coupon(self, sb: Sandbox) -> None:
        api = wc(sb)
        api.post("coupons", {"code": "balik-lagi", "discount_type": "percent", "amount": "10"})
        order = sb.store.create_order(customer="dewi", items=[(15, 2)], coupons=["BALIK-LAGI"])
        assert order["coupon_lines"][0]["code"] == "balik-lagi"
        assert order["discount_total"] == "19000.00"
        assert order["total"] == "191000.00"  # 190000 - 19000 + 20000 shipping
        coupon = api.get("coupons", params={"code": "balik-lagi"}).json()[0]
        assert coupon["usage_count"] == 1 and coupon["used_by"] == ["dewi.lestari@example.test"]

    def test_reviews_filter_by_email_and_product_and_know_verified_buyers(
        self, sb: Sandbox
    ) -> None:
        sb.store.add_review(11, "siti.rahmawati@example.test", 5)
        sb.store.add_review(13, "someone@example.test", 2, status="hold")
        api = wc(sb)
        mine = api.get(
            "products/reviews",
            params={
                "reviewer_email": "siti.rahmawati@example.test",
                "product": "11,15",
                "status": "all",
            },
        ).json()
        assert [(r["product_id"], r["verified"]) for r in mine] == [(11, True)]
        assert api.get("products/reviews").headers["X-WP-Total"] == "1"  # approved only
        held = api.get("products/reviews", params={"status": "all"}).json()
        assert {r["verified"] for r in held} == {True, False}
        posted = api.post(
            "products/reviews",
            {
                "product_id": 15,
                "review": "Mantap",
                "reviewer": "Budi",
                "rating": 4,
                "reviewer_email": "budi.santoso@example.test",
            },
        )
        assert posted.status_code == 201 and posted.json()["review"] == "<p>Mantap</p>\n"
        bad = api.post(
            "products/reviews",
            {
                "product_id": 999,
                "review": "x",
                "rating": 1,
                "reviewer": "x",
                "reviewer_email": "x@example.test",
            },
        )
        assert bad.status_code == 404 and bad.json()["message"] == "Invalid product ID."


class TestHttps:
    def test_basic_auth_and_query_keys_work_only_over_https(self, clock: FakeClock) -> None:
        with Sandbox(clock, https=True) as sb:
            assert sb.store_url.startswith("https://") and sb.ca_file is not None
            url = f"{sb.store_url}/wp-json/wc/v3/orders"
            basic = requests.get(
                url, auth=(sb.consumer_key, sb.consumer_secret), verify=str(sb.ca_file), timeout=10
            )
            assert basic.status_code == 200 and len(basic.json()) == 10
            assert "consumer_secret" not in basic.headers["Link"]
            query = requests.get(
                url,
                params={"consumer_key": sb.consumer_key, "consumer_secret": sb.consumer_secret},
                verify=str(sb.ca_file),
                timeout=10,
            )
            assert query.status_code == 200
            assert "consumer_secret=" in query.headers["Link"]  # echoed secret: never log it
            wrong = requests.get(
                url, auth=(sb.consumer_key, "cs_nope"), verify=str(sb.ca_file), timeout=10
            )
            assert wrong.json() == auth_error("Consumer secret is invalid.")
            unknown = requests.get(
                url, auth=("ck_nope", "cs_nope"), verify=str(sb.ca_file), timeout=10
            )
            assert unknown.status_code == 401 and unknown.json() == CANNOT_LIST
            client = API(
                url=sb.store_url,
                consumer_key=sb.consumer_key,
                consumer_secret=sb.consumer_secret,
                version="wc/v3",
                verify_ssl=str(sb.ca_file),
                timeout=10,
            )
            assert (
                client.get("orders/100").json()["_links"]["self"][0]["href"].startswith("https://")
            )


class TestVersions:
    def test_current_store_advertises_modified_after(self, sb: Sandbox) -> None:
        api = wc(sb)
        schema = api.options("orders").json()
        assert "modified_after" in schema["endpoints"][0]["args"]
        status = api.get("system_status", params={"_fields": "environment"}).json()
        assert status["environment"]["version"] == "6.6.0"

    def test_legacy_store_silently_ignores_modified_after(self, clock: FakeClock) -> None:
        with Sandbox(clock, legacy_wc=True) as sb:
            api = wc(sb)
            response = api.get(
                "orders",
                params={"modified_after": naive(START), "dates_are_gmt": "true", "per_page": 100},
            )
            assert len(ids(response)) == 20
            assert "modified_after" not in api.options("orders").json()["endpoints"][0]["args"]
            version = api.get("system_status").json()["environment"]["version"]
            assert version == "5.7.0"


class TestMutations:
    def test_complete_refund_cancel_bump_modified_and_show_up_after_the_cursor(
        self, sb: Sandbox, clock: FakeClock
    ) -> None:
        processing = sb.store.orders_ids("processing")
        cursor = naive(clock.now())
        clock.advance(timedelta(minutes=10))
        completed = sb.store.complete(processing[0])
        assert completed["date_modified_gmt"] == naive(clock.now())
        assert completed["date_completed_gmt"] == naive(clock.now())
        clock.advance(timedelta(minutes=1))
        refunded = sb.store.refund(processing[1])
        assert refunded["status"] == "refunded"
        assert refunded["refunds"][0]["total"] == "-" + refunded["total"]
        cancelled = sb.store.cancel(processing[2])
        assert cancelled["status"] == "cancelled"
        response = wc(sb).get(
            "orders",
            params={
                "modified_after": cursor,
                "dates_are_gmt": "true",
                "orderby": "modified",
                "order": "asc",
            },
        )
        assert ids(response) == processing[:3]

    def test_partial_refund_keeps_status_and_touch_only_bumps_modified(
        self, sb: Sandbox, clock: FakeClock
    ) -> None:
        order_id = sb.store.orders_ids("completed")[0]
        clock.advance(timedelta(hours=1))
        partial = sb.store.refund(order_id, amount="1000")
        assert partial["status"] == "completed" and partial["refunds"][0]["total"] == "-1000.00"
        clock.advance(timedelta(hours=1))
        touched = sb.store.touch(order_id)
        assert touched["date_modified_gmt"] == naive(clock.now())
        assert touched["date_completed_gmt"] == partial["date_completed_gmt"]

    def test_control_api_places_and_completes_orders(self, sb: Sandbox) -> None:
        created = requests.post(
            f"{sb.store_url}/_sandbox/orders",
            json={"customer": "nurul", "items": [[13, 2]], "meta": {"_wc_shipment": "JNT123"}},
            timeout=10,
        )
        assert created.status_code == 201
        order = created.json()
        assert order["currency"] == "MYR" and order["total"] == "87.80"
        assert {"key": "_wc_shipment", "value": "JNT123"}.items() <= order["meta_data"][-1].items()
        done = requests.post(f"{sb.store_url}/_sandbox/orders/{order['id']}/complete", timeout=10)
        assert done.json()["status"] == "completed"
        assert sb.store.get(order["id"])["status"] == "completed"


class TestScale:
    def test_hundred_thousand_orders_are_fast_to_add_and_to_page(self, sb: Sandbox) -> None:
        started = time.perf_counter()
        new = sb.store.add_orders(100_000, status="completed")
        added = time.perf_counter() - started
        assert len(new) == 100_000 and len(set(new)) == 100_000
        api = wc(sb)
        params = {
            "status": "completed,refunded,cancelled",
            "orderby": "modified",
            "order": "asc",
            "per_page": 100,
            "dates_are_gmt": "true",
            "modified_after": naive(START - timedelta(days=365)),
            "_fields": "id,status,date_modified_gmt",
        }
        api.get("orders", params={**params, "page": 1})  # warm up the connection path
        timings = []
        for page in (1, 500, 1001):
            started = time.perf_counter()
            response = api.get("orders", params={**params, "page": page})
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200
        total = int(response.headers["X-WP-Total"])
        assert total == sum(
            len(sb.store.orders_ids(s)) for s in ("completed", "refunded", "cancelled")
        )
        assert total > 100_000
        assert response.headers["X-WP-TotalPages"] == str(-(-total // 100))
        print(
            f"\nadd_orders(100_000): {added:.2f}s; HTTP page round trips (ms): "
            f"{[round(t * 1000, 1) for t in timings]}"
        )
        assert added < 20
        assert max(timings) < 0.5

    def test_in_process_page_query_on_100k_takes_milliseconds(self, sb: Sandbox) -> None:
        from wcfollowup.sandbox.order_query import OrderQuery, parse_order_query, run_order_query

        sb.store.add_orders(100_000, status="completed", spread_seconds=86_400)
        query = parse_order_query(
            php_query(
                "status=completed,refunded&orderby=modified&order=desc&per_page=100&page=300"
                f"&dates_are_gmt=true&modified_after={naive(START - timedelta(hours=12))}"
            ),
            sb.store,
        )
        assert isinstance(query, OrderQuery)
        started = time.perf_counter()
        for _ in range(20):
            with sb.store.lock:
                result = run_order_query(sb.store, query)
        per_query_ms = (time.perf_counter() - started) / 20 * 1000
        print(f"\nindexed page query on 100k orders: {per_query_ms:.2f} ms")
        assert len(result.ids) == 100 and result.ids == sorted(result.ids, reverse=True)
        assert per_query_ms < 20

    @pytest.mark.parametrize("orderby", ["modified", "date", "id"])
    @pytest.mark.parametrize("order", ["asc", "desc"])
    def test_indexed_pages_match_a_brute_force_sort(
        self, sb: Sandbox, clock: FakeClock, orderby: str, order: str
    ) -> None:
        """The k-th-key selection across per-status lists agrees with sorting everything."""
        from wcfollowup.sandbox.order_query import OrderQuery, parse_order_query, run_order_query

        sb.store.add_orders(300, status="completed", spread_seconds=3600)
        sb.store.add_orders(200, status="refunded", spread_seconds=7200)
        clock.advance(timedelta(minutes=3))
        for order_id in sb.store.orders_ids("completed")[::7]:
            sb.store.touch(order_id)
        after = naive(START - timedelta(minutes=90))
        attr = {"modified": "modified", "date": "created", "id": "id"}[orderby]
        records = [
            r
            for r in sb.store.orders.values()
            if r.status in ("completed", "refunded")
            and (
                orderby == "id"
                or getattr(r, attr)
                > int(datetime.fromisoformat(after).replace(tzinfo=UTC).timestamp())
            )
        ]
        expected = [
            r.id
            for r in sorted(
                records, key=lambda r: (getattr(r, attr), r.id), reverse=order == "desc"
            )
        ]
        window = (
            ""
            if orderby == "id"
            else (f"&{'modified_after' if orderby == 'modified' else 'after'}={after}")
        )
        for page in (1, 2, 4, 9):
            query = parse_order_query(
                php_query(
                    f"status=refunded,completed&orderby={orderby}&order={order}&per_page=37"
                    f"&page={page}&dates_are_gmt=true{window}"
                ),
                sb.store,
            )
            assert isinstance(query, OrderQuery)
            with sb.store.lock:
                result = run_order_query(sb.store, query)
            assert result.total == len(expected)
            assert result.ids == expected[(page - 1) * 37 : page * 37]


class TestFaultSeam:
    def test_a_hook_can_answer_instead_of_the_store_and_be_removed(self, sb: Sandbox) -> None:
        from starlette.responses import Response
        from starlette.types import ASGIApp, Scope

        unavailable = Response(
            "<html>502 Bad Gateway</html>", status_code=502, media_type="text/html"
        )
        seen: list[str] = []

        def hook(scope: Scope) -> ASGIApp | None:
            seen.append(scope["path"])
            return unavailable if scope["path"].endswith("/orders") else None

        sb.store_faults.hook = hook
        assert wc(sb).get("orders").status_code == 502
        assert wc(sb).get("orders/100").status_code == 200
        sb.store_faults.hook = None
        assert wc(sb).get("orders").status_code == 200
        assert seen == ["/wp-json/wc/v3/orders", "/wp-json/wc/v3/orders/100"]


class TestParsing:
    def test_php_query_keeps_the_last_repeated_value_and_arrays(self) -> None:
        parsed = php_query(
            "per_page=5&status=any&per_page=100&status%5B0%5D=completed"
            "&status[]=refunded&billing.email=x"
        )
        assert parsed == {
            "per_page": "100",
            "status": {"0": "completed", "1": "refunded"},
            "billing_email": "x",
        }

    def test_offset_dates_become_site_local_before_the_gmt_comparison(self) -> None:
        from zoneinfo import ZoneInfo

        berlin = ZoneInfo("Europe/Berlin")
        value = parse_wp_date("2026-11-10T11:00:00Z")
        assert value is not None
        assert date_bound(value, True, berlin) == int(
            datetime(2026, 11, 10, 12, tzinfo=UTC).timestamp()
        )
        assert date_bound(value, False, berlin) == int(
            datetime(2026, 11, 10, 11, tzinfo=UTC).timestamp()
        )


def test_the_sandbox_forgets_nonces_once_their_time_has_left_the_window() -> None:
    """It remembers each nonce for the 15 minutes a timestamp is accepted, and no longer:
    a scan of every nonce kept, on every request, made a long bench run slower by the minute."""
    from wcfollowup.sandbox.oauth import WINDOW_SECONDS, ApiKey, Authenticator

    wall = [1_800_000_000.0]
    key = ApiKey("ck_test", "cs_test")
    auth = Authenticator([key], wall_time=lambda: wall[0])
    for n in range(3000):
        assert auth._check_timestamp_and_nonce(key, str(int(wall[0])), f"n{n}") is None
    replay = auth._check_timestamp_and_nonce(key, str(int(wall[0])), "n17")
    assert replay is not None and "nonce has already been used" in replay.message
    wall[0] += WINDOW_SECONDS + 1
    assert auth._check_timestamp_and_nonce(key, str(int(wall[0])), "fresh") is None
    assert list(auth._nonces[key.consumer_key]) == ["fresh"]
