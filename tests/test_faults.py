"""The fault injector itself: each kind reaches a real client as the real failure would.

Requests go over real HTTP to the sandbox servers; the store is called through the official
``woocommerce`` client (it signs with OAuth), the mail sink with plain ``requests``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from woocommerce import API

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Fault, FaultPlan, Sandbox
from wcfollowup.sandbox.faults import rule

ORDERS = "GET .*/wc/v3/orders$"
COUPONS = "POST .*/wc/v3/coupons$"
MAIL = "POST /v3/mail/send$"


@pytest.fixture
def api(sandbox: Sandbox) -> API:
    return API(
        url=sandbox.store_url,
        consumer_key=sandbox.consumer_key,
        consumer_secret=sandbox.consumer_secret,
        version="wc/v3",
        timeout=1,
    )


def always(sandbox: Sandbox, clock: FakeClock, pattern: str, kind: Fault) -> FaultPlan:
    return FaultPlan([rule(pattern, 1.0, [kind])], seed=1, clock=clock, timeout=1.0).install(
        sandbox
    )


def send_mail(sandbox: Sandbox, to: str = "siti@example.test", timeout: float = 5) -> Any:
    body = {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": "halo@tokobatiksari.example"},
        "subject": "Terima kasih",
        "content": [{"type": "text/plain", "value": "Halo"}],
    }
    return requests.post(
        f"{sandbox.sendgrid_host}/v3/mail/send",
        json=body,
        headers={"Authorization": f"Bearer {sandbox.sendgrid_api_key}"},
        timeout=timeout,
    )


def coupon_body(code: str) -> dict[str, Any]:
    return {"code": code, "discount_type": "percent", "amount": "10", "usage_limit": 1}


@pytest.fixture
def plan_cleanup(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.store_faults.hook = None
    sandbox.mail_faults.hook = None


def test_the_same_seed_faults_the_same_requests() -> None:
    clock = FakeClock()
    scope = {"type": "http", "method": "GET", "path": "/wp-json/wc/v3/orders"}

    def decisions(seed: int) -> list[str]:
        plan = FaultPlan([rule(ORDERS, 0.3, list(Fault))], seed=seed, clock=clock, timeout=1)
        out = []
        for _ in range(200):
            app = plan.choose(scope, inner=lambda *a: None, mail=False)  # type: ignore[arg-type, return-value]
            out.append(type(app).__name__ if app is not None else "-")
        return out

    first = decisions(7)
    assert first == decisions(7)
    assert first != decisions(8)
    faulted = sum(1 for d in first if d != "-")
    assert 40 <= faulted <= 80  # about 30% of 200


def test_rules_match_method_and_path_only() -> None:
    plan = FaultPlan([rule(COUPONS, 1.0, [Fault.RESET])], seed=1, clock=FakeClock(), timeout=1)
    inner: Any = None
    get = {"type": "http", "method": "GET", "path": "/wp-json/wc/v3/coupons"}
    post = {"type": "http", "method": "POST", "path": "/wp-json/wc/v3/coupons"}
    assert plan.choose(get, inner, mail=False) is None
    assert plan.choose(post, inner, mail=False) is not None
    assert plan.counts == {(COUPONS, "reset"): 1}


def test_store_429_carries_retry_after(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    plan = always(sandbox, clock, ORDERS, Fault.RATE_LIMITED)
    response = api.get("orders")
    assert response.status_code == 429
    assert float(response.headers["Retry-After"]) >= 1
    assert response.json()["code"] == "rest_too_many_requests"
    assert plan.counts[(ORDERS, "429")] == 1


def test_store_5xx_is_wordpress_json_or_a_proxy_page(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    always(sandbox, clock, ORDERS, Fault.ERROR_JSON)
    wp = api.get("orders")
    assert wp.status_code in (500, 503) and wp.json()["code"] == "internal_server_error"
    always(sandbox, clock, ORDERS, Fault.ERROR_HTML)
    page = api.get("orders")
    assert page.status_code in (502, 503) and "<html>" in page.text
    assert page.headers["content-type"].startswith("text/html")


def test_a_reset_closes_the_connection_without_an_answer(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    always(sandbox, clock, ORDERS, Fault.RESET)
    with pytest.raises(requests.ConnectionError):
        api.get("orders")


def test_a_slow_answer_outlasts_the_client_timeout(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    always(sandbox, clock, ORDERS, Fault.SLOW)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        api.get("orders")
    assert time.monotonic() - started < 3


def test_a_firewall_page_comes_with_status_200(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    always(sandbox, clock, ORDERS, Fault.HTML_200)
    response = api.get("orders")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_a_php_warning_and_a_cut_body_spoil_the_real_answer(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    real = api.get("orders").content
    always(sandbox, clock, ORDERS, Fault.NOT_JSON)
    warned = api.get("orders")
    assert warned.content.startswith(b"<br />") and warned.content.endswith(real)
    always(sandbox, clock, ORDERS, Fault.TRUNCATED)
    cut = api.get("orders")
    assert cut.status_code == 200 and real.startswith(cut.content) and len(cut.content) < len(real)
    with pytest.raises(ValueError):
        cut.json()


def test_an_order_changes_while_the_poll_pages(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    [order_id] = sandbox.store.orders_ids()[-1:]
    before = sandbox.store.get(order_id)["date_modified_gmt"]
    plan = FaultPlan(
        [rule(ORDERS, 1.0, [Fault.TOUCH])],
        seed=3,
        clock=clock,
        timeout=1,
        touchable=lambda: [order_id],
    ).install(sandbox)
    clock.advance(timedelta(minutes=5))
    response = api.get("orders")
    assert response.status_code == 200 and isinstance(response.json(), list)
    assert sandbox.store.get(order_id)["date_modified_gmt"] != before
    assert plan.counts[(ORDERS, "touch")] == 1 and plan.total == 0  # a change, not a failure


def test_a_lost_answer_means_the_store_acted(
    sandbox: Sandbox, clock: FakeClock, api: API, plan_cleanup: None
) -> None:
    always(sandbox, clock, COUPONS, Fault.LOST_ERROR)
    response = api.post("coupons", coupon_body("lost-502"))
    assert response.status_code == 502
    assert sandbox.store.coupon_by_code("lost-502") is not None
    always(sandbox, clock, COUPONS, Fault.LOST_RESET)
    with pytest.raises(requests.ConnectionError):
        api.post("coupons", coupon_body("lost-reset"))
    assert sandbox.store.coupon_by_code("lost-reset") is not None


def test_sendgrid_429_has_its_rate_limit_headers(
    sandbox: Sandbox, clock: FakeClock, plan_cleanup: None
) -> None:
    always(sandbox, clock, MAIL, Fault.RATE_LIMITED)
    response = send_mail(sandbox)
    assert response.status_code == 429
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > clock.now().timestamp()
    assert response.json()["errors"][0]["message"] == "too many requests"
    assert sandbox.sink.messages == []


def test_sendgrid_takes_the_mail_then_the_answer_never_comes(
    sandbox: Sandbox, clock: FakeClock, plan_cleanup: None
) -> None:
    always(sandbox, clock, MAIL, Fault.LOST_SLOW)
    with pytest.raises(requests.Timeout):
        send_mail(sandbox, timeout=1)
    assert len(sandbox.sink.messages) == 1


def test_one_address_is_always_rejected_with_sendgrids_reason(
    sandbox: Sandbox, clock: FakeClock, plan_cleanup: None
) -> None:
    plan = FaultPlan([], seed=1, clock=clock, timeout=1).install(sandbox)
    plan.reject_address("Bounce@Example.test")
    rejected = send_mail(sandbox, to="bounce@example.test")
    assert rejected.status_code == 400
    [error] = rejected.json()["errors"]
    assert error["message"] == "Does not contain a valid address."
    assert error["field"] == "personalizations.0.to.0.email"
    accepted = send_mail(sandbox, to="siti@example.test")
    assert accepted.status_code == 202  # the body read for the check reached the real app
    assert [m.to for m in sandbox.sink.messages] == [["siti@example.test"]]
    assert plan.counts == {("POST /v3/mail/send", "400-address"): 1}
