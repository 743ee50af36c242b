"""Hostile and broken orders, end to end: the real daemon against the sandbox, on a fake clock.

A plugin, an importer or a customer can put anything in an order: no email, a broken one, HTML,
right-to-left text, three hundred lines, ``null`` where an object belongs, a currency nobody
knows. The store's answers are rewritten on their way out (the sandbox's fault seam), so the
daemon reads them exactly as it would read a real store's. Whatever arrives, each step of each
follow-up kind ends either sent correctly or skipped with a reason in the message log, and the
other orders of the same batch are not held up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from support import drain, sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.state import MessageRow
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.mail_sink import ReceivedMail
from wcfollowup.service.daemon import Daemon

# Every kind of follow-up, each due soon after completion, so one drain runs them all.
SEQUENCES = """\
poll:
  interval: 60s
dispatch:
  batch_size: 200
  workers: 4
sequences:
  - name: all-kinds
    steps:
      - {name: thank-you, template: thank-you, after: 1m}
      - {name: review, kind: review, after: 2m}
      - {name: survey, kind: survey, after: 3m}
      - name: coupon
        kind: coupon
        after: 4m
        coupon: {discount_type: percent, amount: 10, expires_in: 30d, prefix: HALO}
      - {name: owner-alert, to: owner, template: low-score-alert, after: 5m}
"""
STEPS = ("thank-you", "review", "survey", "coupon", "owner-alert")
CUSTOMER_STEPS = STEPS[:-1]

Order = dict[str, Any]
Mutator = Callable[[Order], None]

ORDER_PATH = re.compile(r"/wc/v3/orders(?:/(\d+))?$")


class HostileOrders:
    """Rewrites the store's order JSON (lists and single orders) for chosen order ids."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner: ASGIApp = sandbox.store_faults.app
        self.mutators: dict[int, Mutator] = {}

    def __call__(self, scope: Scope) -> ASGIApp | None:
        if scope["method"] == "GET" and ORDER_PATH.search(scope["path"]):
            return self._rewrite
        return None

    def _apply(self, order: object) -> None:
        if isinstance(order, dict) and isinstance(order.get("id"), int):
            mutate = self.mutators.get(order["id"])
            if mutate is not None:
                mutate(order)

    async def _rewrite(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        start: Message = {}

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = json.loads(b"".join(chunks))
            for order in body if isinstance(body, list) else [body]:
                self._apply(order)
            data = json.dumps(body).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(data)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        await self.inner(scope, receive, collect)


# -- the hostile orders -------------------------------------------------------------------

SCRIPT = "<script>alert('x')</script>"
IMG = '"><img src=x onerror=alert(1)>'
ARABIC = "محمد عبدالله"
HEBREW = "שלום"
EMOJI = "Siti 🌸✨👩🏽‍🦱"


def billing(**values: object) -> Mutator:
    def mutate(order: Order) -> None:
        if isinstance(order.get("billing"), dict):
            order["billing"].update(values)

    return mutate


def setting(**values: object) -> Mutator:
    def mutate(order: Order) -> None:
        order.update(values)

    return mutate


def rename_items(name: str) -> Mutator:
    def mutate(order: Order) -> None:
        for item in order.get("line_items") or []:
            item["name"] = name

    return mutate


def huge_cart(lines: int, distinct: bool) -> Mutator:
    """``lines`` line items: the same few products again and again, or as many products."""

    def mutate(order: Order) -> None:
        if not order.get("line_items"):
            return
        template = order["line_items"][0]
        order["line_items"] = [
            template
            | {
                "id": 900_000 + n,
                "name": f"Kain batik motif nomor {n} <b>{n}</b>",
                "product_id": 5000 + n if distinct else template["product_id"],
                "quantity": 1 + n % 3,
            }
            for n in range(lines)
        ]

    return mutate


def all_of(*mutators: Mutator) -> Mutator:
    def mutate(order: Order) -> None:
        for mutator in mutators:
            mutator(order)

    return mutate


NO_PRODUCTS = {"review": "skipped"}  # the other customer steps are sent

# name -> (mutation, how the customer steps end: all "sent" or "skipped", or some step differs)
CASES: dict[str, tuple[Mutator, str | dict[str, str]]] = {
    "no email": (billing(email=""), "skipped"),
    "email null": (billing(email=None), "skipped"),
    "invalid email": (billing(email="siti at example dot test"), "skipped"),
    "email with html": (billing(email=f"{IMG}@example.test"), "skipped"),
    "email not a string": (billing(email={"a": 1}), "skipped"),
    "html names": (billing(first_name=SCRIPT, last_name=IMG), "sent"),
    "html product names": (rename_items(f"{SCRIPT}{IMG}"), "sent"),
    "rtl and emoji names": (billing(first_name=ARABIC, last_name=EMOJI), "sent"),
    "rtl and emoji products": (rename_items(f"{HEBREW} 🧣 {ARABIC}"), "sent"),
    "300 lines of one product": (huge_cart(300, distinct=False), "sent"),
    "300 distinct products": (huge_cart(300, distinct=True), "sent"),
    "billing null": (setting(billing=None), "skipped"),
    "line_items null": (setting(line_items=None), NO_PRODUCTS),
    "line_items garbage": (setting(line_items=[None, 3, "x", {"quantity": "many"}]), NO_PRODUCTS),
    "total null": (setting(total=None, shipping_total=None, discount_total=None), "sent"),
    "totals garbage": (setting(total="NaN", shipping_total="1e999999", total_tax="inf"), "sent"),
    "dates null": (setting(date_created_gmt=None, date_created=None, date_paid_gmt=None), "sent"),
    "dates garbage": (setting(date_created_gmt="yesterday", date_created=17), "sent"),
    "meta_data not a list": (setting(meta_data={"key": "value"}), "sent"),
    "tracking meta garbage": (
        setting(
            meta_data=[
                {"key": "_wc_shipment_tracking_items", "value": "{not json"},
                {"key": "_wc_shipment_tracking_items", "value": [None, 1, {"tracking_number": []}]},
                {
                    "key": "_wc_shipment_tracking_items",
                    "value": {
                        "tracking_number": f"JNE{SCRIPT}",
                        "tracking_provider": 42,
                        "custom_tracking_link": "javascript:alert(1)",
                        "date_shipped": "not a date",
                    },
                },
            ]
        ),
        "sent",
    ),
    "unknown currency": (setting(currency="XYZ"), "sent"),
    "empty currency": (setting(currency=""), "sent"),
    "currency not a string": (setting(currency=["IDR"]), "sent"),
    "number and names garbage": (
        all_of(setting(number={"n": 1}), billing(first_name=["a"], last_name=7)),
        "sent",
    ),
}


@pytest.fixture
def hostile(sandbox: Sandbox) -> Iterator[HostileOrders]:
    hook = HostileOrders(sandbox)
    sandbox.store_faults.hook = hook
    yield hook
    sandbox.store_faults.hook = None


@pytest.fixture
def daemon(sandbox: Sandbox, clock: FakeClock, tmp_path: Path) -> Iterator[Daemon]:
    path = write_engine_config(tmp_path / "config.yaml", sandbox, SEQUENCES)
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    daemon.run_once()  # first sight: the seeded orders are history
    yield daemon
    daemon.close()


def complete_orders(
    sandbox: Sandbox, clock: FakeClock, hostile: HostileOrders, cases: dict[str, Mutator]
) -> dict[str, int]:
    """One completed order per case (plus a clean one), mutated as the store will serve it."""
    ids: dict[str, int] = {}
    customers = ("siti", "dewi", "nurul", "andre")
    for n, (name, mutate) in enumerate({"clean": None, **cases}.items()):
        order_id = int(sandbox.store.create_order(customer=customers[n % 4], items=[(11, 1)])["id"])
        if mutate is not None:
            hostile.mutators[order_id] = mutate
        ids[name] = order_id
    clock.advance(timedelta(minutes=1))
    for order_id in ids.values():
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=30))
    return ids


def outcome(daemon: Daemon, order_id: int) -> dict[str, MessageRow]:
    return {m.step: m for m in daemon.state.messages(order_id=order_id)}


def mails_to_order(sandbox: Sandbox, order_id: int) -> list[ReceivedMail]:
    return [m for m in sandbox.sink.messages if m.custom_args.get("wcf_order_id") == str(order_id)]


def expected_steps(expected: str | dict[str, str]) -> dict[str, str]:
    if isinstance(expected, str):
        return {step: expected for step in CUSTOMER_STEPS} | {"owner-alert": "sent"}
    return dict.fromkeys(STEPS, "sent") | expected


def run_everything(clock: FakeClock, daemon: Daemon) -> None:
    daemon.poll_once()
    clock.advance(timedelta(minutes=10))
    drain(daemon)


def test_every_hostile_order_is_sent_or_skipped_with_a_reason_in_one_batch(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, hostile: HostileOrders
) -> None:
    ids = complete_orders(sandbox, clock, hostile, {k: m for k, (m, _) in CASES.items()})
    run_everything(clock, daemon)
    expected = {"clean": "sent"} | {name: want for name, (_, want) in CASES.items()}
    problems = []
    for name, order_id in ids.items():
        log = outcome(daemon, order_id)
        got = {step: (log[step].status if step in log else "missing") for step in STEPS}
        want = expected_steps(expected[name])
        if got != want:
            reasons = {step: log[step].reason for step in log}
            problems.append(f"{name}: {got} (reasons: {reasons})")
        for step, row in log.items():
            if row.status == "skipped":
                assert row.reason, f"{name}: {step} skipped without a reason"
    assert not problems, "\n".join(problems)
    assert daemon.state.messages(status="failed") == []
    assert daemon.state.messages(status="uncertain") == []


def test_billing_that_is_not_an_object_is_skipped_not_crashed(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, hostile: HostileOrders
) -> None:
    ids = complete_orders(sandbox, clock, hostile, {"string": setting(billing="a@example.test")})
    run_everything(clock, daemon)
    log = outcome(daemon, ids["string"])
    assert {step: row.status for step, row in log.items()} == expected_steps("skipped")


def test_skips_name_the_missing_or_broken_address(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, hostile: HostileOrders
) -> None:
    cases = {name: CASES[name][0] for name in ("no email", "invalid email", "billing null")}
    ids = complete_orders(sandbox, clock, hostile, cases)
    run_everything(clock, daemon)
    reasons = {name: outcome(daemon, ids[name])["thank-you"].reason for name in cases}
    assert "no valid billing email (empty)" in reasons["no email"]
    assert "siti at example dot test" in reasons["invalid email"]
    assert "no valid billing email (empty)" in reasons["billing null"]
    for name in cases:
        [alert] = mails_to_order(sandbox, ids[name])  # the owner still hears of the order
        assert alert.custom_args["wcf_step"] == "owner-alert"


def test_html_is_escaped_in_the_html_part_and_plain_in_the_text_part(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, hostile: HostileOrders
) -> None:
    cases = {
        "names": billing(first_name=SCRIPT + "\r\nBcc: x@example.test", last_name=IMG),
        "products": rename_items(IMG),
        "tracking": setting(
            meta_data=[
                {
                    "key": "_wc_shipment_tracking_items",
                    "value": [
                        {
                            "tracking_number": SCRIPT,
                            "tracking_provider": "jne",
                            "custom_tracking_link": "javascript:alert(1)",
                        }
                    ],
                }
            ]
        ),
    }
    ids = complete_orders(sandbox, clock, hostile, cases)
    run_everything(clock, daemon)
    for name, order_id in ids.items():
        mails = mails_to_order(sandbox, order_id)
        assert {m.custom_args["wcf_step"] for m in mails} == set(STEPS), name
        for mail in mails:
            assert "<script" not in mail.html and "<img src=x" not in mail.html, (name, mail)
            assert "javascript:" not in mail.html, (name, mail)
            assert "\n" not in mail.subject and "\r" not in mail.subject
    names = {m.custom_args["wcf_step"]: m for m in mails_to_order(sandbox, ids["names"])}
    assert "&lt;script&gt;" in names["thank-you"].html and SCRIPT in names["thank-you"].text
    assert "&lt;img src=x onerror=alert(1)&gt;" in names["owner-alert"].html
    products = {m.custom_args["wcf_step"]: m for m in mails_to_order(sandbox, ids["products"])}
    assert "&#34;&gt;&lt;img" in products["thank-you"].html
    assert IMG in products["thank-you"].text
    tracking = {m.custom_args["wcf_step"]: m for m in mails_to_order(sandbox, ids["tracking"])}
    assert "&lt;script&gt;" in tracking["thank-you"].html and SCRIPT in tracking["thank-you"].text


def test_rtl_text_and_emoji_arrive_intact(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, hostile: HostileOrders
) -> None:
    ids = complete_orders(
        sandbox,
        clock,
        hostile,
        {"rtl": all_of(billing(first_name=ARABIC, last_name=EMOJI), rename_items(HEBREW + " 🧣"))},
    )
    run_everything(clock, daemon)
    mails = {m.custom_args["wcf_step"]: m for m in mails_to_order(sandbox, ids["rtl"])}
    assert ARABIC in mails["thank-you"].text and ARABIC in mails["thank-you"].html
    assert f"{HEBREW} 🧣" in mails["thank-you"].text
    assert mails["thank-you"].payload["personalizations"][0]["to"][0]["name"] == (
        f"{ARABIC} {EMOJI}"
    )


def test_a_huge_cart_gives_a_reasonable_email(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, hostile: HostileOrders
) -> None:
    ids = complete_orders(
        sandbox,
        clock,
        hostile,
        {"same": huge_cart(300, distinct=False), "distinct": huge_cart(300, distinct=True)},
    )
    run_everything(clock, daemon)
    for name, order_id in ids.items():
        for mail in mails_to_order(sandbox, order_id):
            step = mail.custom_args["wcf_step"]
            # Gmail clips an HTML part beyond 102 KB, hiding the footer and its unsubscribe link.
            assert len(mail.html.encode()) < 100_000, (name, step, len(mail.html.encode()))
            assert len(mail.text.encode()) < 100_000, (name, step)
    thanks = {
        name: next(
            m
            for m in mails_to_order(sandbox, ids[name])
            if m.custom_args["wcf_step"] == "thank-you"
        )
        for name in ids
    }
    # The first lines are listed, and the totals are still the whole order's.
    text = thanks["distinct"].text
    assert "nomor 0 <b>0</b>" in text and "nomor 49 " in text and "nomor 50 " not in text
    [review] = [
        m for m in mails_to_order(sandbox, ids["distinct"]) if m.custom_args["wcf_step"] == "review"
    ]
    assert "nomor 9 " in review.text and "nomor 10 " not in review.text  # ten products asked
