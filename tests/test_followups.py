"""The four follow-ups end to end: the real daemon against the sandbox store and mail sink.

Survey answers are recorded through ``SurveyBook`` here (what the web page calls); the page
itself is tested in ``test_web_links.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from support import drain, sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.sandbox import Sandbox, seed
from wcfollowup.sandbox.mail_sink import ReceivedMail
from wcfollowup.service.daemon import Daemon

SEQUENCES = """\
poll:
  interval: 60s
delivery:
  status: delivered
  assume_after: 5d
sequences:
  - name: after-delivery
    steps:
      - name: survey
        kind: survey
        after: {delivered: 1d}
      - name: owner-alert
        to: owner
        template: low-score-alert
        after: {delivered: 2d}
        only_if: {survey_score_at_most: 3}
      - name: review
        kind: review
        after: {delivered: 3d}
        skip_if: {survey_score_at_most: 3}
  - name: reward
    steps:
      - name: coupon
        kind: coupon
        after: 1h
        coupon:
          discount_type: percent
          amount: 10
          expires_in: 30d
          minimum_spend: 100000
          prefix: TERIMAKASIH
"""


@pytest.fixture
def daemon(sandbox: Sandbox, clock: FakeClock, tmp_path: Path) -> Iterator[Daemon]:
    sandbox.store.register_status("delivered")
    path = write_engine_config(tmp_path / "config.yaml", sandbox, SEQUENCES)
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    daemon.run_once()  # first sight: the seeded orders are history
    yield daemon
    daemon.close()


def complete_and_deliver(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, customer: str, items: list[tuple[int, int]]
) -> int:
    order_id = int(sandbox.store.create_order(customer=customer, items=items)["id"])
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(order_id)
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()
    clock.advance(timedelta(hours=5))
    sandbox.store.set_status(order_id, "delivered")
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()
    return order_id


def mails_for(sandbox: Sandbox, step: str) -> list[ReceivedMail]:
    return [m for m in sandbox.sink.messages if m.custom_args.get("wcf_step") == step]


def log_for(daemon: Daemon, order_id: int, step: str) -> list[Any]:
    return [m for m in daemon.state.messages(order_id=order_id) if m.step == step]


def advance_and_drain(clock: FakeClock, daemon: Daemon, by: timedelta) -> None:
    clock.advance(by)
    drain(daemon)


# -- review request ------------------------------------------------------------------------


def test_review_request_links_only_products_not_yet_reviewed(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    sandbox.store.add_review(11, "siti.rahmawati@example.test")  # reviewed on the shop's form
    order_id = complete_and_deliver(sandbox, clock, daemon, "siti", [(11, 1), (15, 2)])
    advance_and_drain(clock, daemon, timedelta(days=3, hours=1))
    [mail] = mails_for(sandbox, "review")
    product_15 = sandbox.store.get(order_id)  # the order itself, for names
    names = {item["product_id"]: item["name"] for item in product_15["line_items"]}
    assert names[15] in mail.text and names[11] not in mail.text
    links = set(re.findall(r'href="([^"]+#reviews)"', mail.html))
    assert links == {f"{sandbox.store_url}/product/{seed.PRODUCTS_BY_ID[15].slug}/#reviews"}
    assert [m.status for m in log_for(daemon, order_id, "review")] == ["sent"]


def test_review_request_is_skipped_when_everything_was_reviewed(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id = complete_and_deliver(sandbox, clock, daemon, "dewi", [(13, 1)])
    sandbox.store.add_review(13, "Dewi.Lestari@example.test")  # case differs: same person
    advance_and_drain(clock, daemon, timedelta(days=3, hours=1))
    assert mails_for(sandbox, "review") == []
    [entry] = log_for(daemon, order_id, "review")
    assert entry.status == "skipped" and "nothing left to review" in entry.reason


# -- survey --------------------------------------------------------------------------------


def survey_step_id(sandbox: Sandbox) -> int:
    [mail] = mails_for(sandbox, "survey")
    return int(mail.custom_args["wcf_step_id"])


def test_survey_email_has_five_signed_links(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    complete_and_deliver(sandbox, clock, daemon, "nurul", [(13, 1)])
    advance_and_drain(clock, daemon, timedelta(days=1, hours=1))
    [mail] = mails_for(sandbox, "survey")
    assert daemon.config.http is not None
    links = re.findall(re.escape(daemon.config.http.public_url) + r"/survey/[\w.\-]+", mail.html)
    assert len(set(links)) == 5
    assert mail.payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_low_score_alerts_the_owner_instead_of_asking_for_a_review(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id = complete_and_deliver(sandbox, clock, daemon, "siti", [(12, 1)])
    advance_and_drain(clock, daemon, timedelta(days=1, hours=1))
    book = SurveyBook(daemon.state)
    answer = book.record_survey_score(survey_step_id(sandbox), order_id, 2, clock.now())
    assert answer.recorded
    assert book.add_survey_comment(survey_step_id(sandbox), "Kain sobek <b>", clock.now())
    advance_and_drain(clock, daemon, timedelta(days=3))
    [alert] = mails_for(sandbox, "owner-alert")
    assert alert.to == [daemon.config.sendgrid.from_email]
    assert "2" in alert.subject + alert.text and "Kain sobek <b>" in alert.text
    assert "Kain sobek &lt;b&gt;" in alert.html
    assert mails_for(sandbox, "review") == []
    [review] = log_for(daemon, order_id, "review")
    assert review.status == "skipped" and "skip_if" in review.reason


def test_a_high_score_asks_for_a_review_and_the_owner_hears_nothing(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id = complete_and_deliver(sandbox, clock, daemon, "andre", [(14, 1)])
    advance_and_drain(clock, daemon, timedelta(days=1, hours=1))
    book = SurveyBook(daemon.state)
    step_id = survey_step_id(sandbox)
    assert book.record_survey_score(step_id, order_id, 5, clock.now()).recorded
    replay = book.record_survey_score(step_id, order_id, 1, clock.now())
    assert (replay.recorded, replay.score) == (False, 5)  # the first answer stands
    advance_and_drain(clock, daemon, timedelta(days=3))
    assert mails_for(sandbox, "owner-alert") == []
    assert len(mails_for(sandbox, "review")) == 1
    statuses = [m.status for m in daemon.state.messages(order_id=order_id)]
    assert statuses.count("answered") == 1


# -- coupons -------------------------------------------------------------------------------


class CreateThenLoseTheAnswer:
    """The store creates the coupon, but the answer never reaches us (a 502 from a proxy)."""

    def __init__(self, sandbox: Sandbox, times: int) -> None:
        self.inner: ASGIApp = sandbox.store_faults.app
        self.left = times
        self.calls = 0

    def __call__(self, scope: Scope) -> ASGIApp | None:
        if scope["method"] == "POST" and scope["path"].endswith("/wc/v3/coupons") and self.left:
            self.left -= 1
            self.calls += 1
            return self._swallow
        return None

    async def _swallow(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def discard(_message: Any) -> None:
            return None

        await self.inner(scope, receive, discard)
        bad_gateway = Response("<html>502 Bad Gateway</html>", 502, media_type="text/html")
        await bad_gateway(scope, receive, send)


def coupons_for(sandbox: Sandbox, email: str) -> list[Any]:
    return [c for c in sandbox.store.coupons.values() if email in c.email_restrictions]


def test_a_coupon_is_created_in_the_store_and_emailed(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id = complete_and_deliver(sandbox, clock, daemon, "siti", [(11, 1)])
    drain(daemon)
    [coupon] = coupons_for(sandbox, "siti.rahmawati@example.test")
    assert coupon.code.startswith("terimakasih-") and len(coupon.code) == len("terimakasih-") + 10
    assert (coupon.discount_type, coupon.amount_cents, coupon.usage_limit) == ("percent", 1000, 1)
    assert coupon.minimum_cents == 100_000 * 100
    [mail] = mails_for(sandbox, "coupon")
    assert coupon.code.upper() in mail.text and coupon.code.upper() in mail.html
    [entry] = log_for(daemon, order_id, "coupon")
    assert entry.status == "sent" and coupon.code.upper() in entry.reason
    expires_local = sandbox.store.coupons[coupon.id].expires
    assert expires_local is not None


def test_a_lost_answer_is_retried_and_the_coupon_reused_not_doubled(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    complete_and_deliver(sandbox, clock, daemon, "tan", [(12, 1)])
    fault = CreateThenLoseTheAnswer(sandbox, times=1)
    sandbox.store_faults.hook = fault
    drain(daemon)
    assert fault.calls == 1
    [coupon] = coupons_for(sandbox, "weiming.tan@example.test")
    [mail] = mails_for(sandbox, "coupon")
    assert coupon.code.upper() in mail.text


def test_a_crash_after_the_store_made_the_coupon_reuses_it_after_restart(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, tmp_path: Path
) -> None:
    order_id = complete_and_deliver(sandbox, clock, daemon, "putu", [(14, 1)])
    sandbox.store_faults.hook = CreateThenLoseTheAnswer(sandbox, times=100)
    daemon.dispatch_once()  # every POST "fails": the step is postponed, coupon made in the store
    assert mails_for(sandbox, "coupon") == []
    made = coupons_for(sandbox, "putu.ayu@example.test")
    assert len(made) == 1
    sandbox.store_faults.hook = None
    config = daemon.config
    daemon.close()  # the daemon goes away; a new one starts on the same database
    restarted = Daemon(config, clock, sleep=lambda _s: None)
    try:
        advance_and_drain(clock, restarted, timedelta(minutes=10))
        assert coupons_for(sandbox, "putu.ayu@example.test") == made
        [mail] = mails_for(sandbox, "coupon")
        assert made[0].code.upper() in mail.text
        assert [m.status for m in log_for(restarted, order_id, "coupon")] == ["sent"]
    finally:
        restarted.close()


def test_only_the_lease_holder_may_create_a_coupon(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    from wcfollowup.db.coupons import CouponRecord

    order_id = complete_and_deliver(sandbox, clock, daemon, "dewi", [(11, 1)])
    step_id = next(
        s.id
        for s in daemon.state.claim_due(clock.now() + timedelta(hours=2), 10)
        if s.step == "coupon"
    )
    book = daemon.dispatcher.coupons
    record = CouponRecord(step_id, order_id, "terimakasih-aaaa", "d@example.test", "percent",
                          "10", None, None)  # fmt: skip
    first = book.plan(record, 1, clock.now())
    second = book.plan(
        CouponRecord(
            step_id, order_id, "terimakasih-bbbb", "d@example.test", "percent", "10", None, None
        ),
        1,
        clock.now(),
    )
    assert first.code == second.code == "terimakasih-aaaa"  # the first plan wins
    assert book.take_lease(step_id, clock.now())
    assert not book.take_lease(step_id, clock.now())  # another worker must wait
    assert book.take_lease(step_id, clock.now() + timedelta(minutes=3))  # lease ran out


class DropEmailRestriction:
    """Answer POST /coupons as a store that silently dropped the restriction email."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner: ASGIApp = sandbox.store_faults.app

    def __call__(self, scope: Scope) -> ASGIApp | None:
        if scope["method"] == "POST" and scope["path"].endswith("/wc/v3/coupons"):
            return self._rewrite
        return None

    async def _rewrite(self, scope: Scope, receive: Receive, send: Send) -> None:
        import json

        async def edit(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                body = json.loads(message["body"])
                body["email_restrictions"] = []
                message = {**message, "body": json.dumps(body).encode()}
            elif message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k != b"content-length"]
                message = {**message, "headers": headers}
            await send(message)

        await self.inner(scope, receive, edit)


def test_a_coupon_the_store_changed_is_not_sent(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id = complete_and_deliver(sandbox, clock, daemon, "andre", [(11, 1)])
    sandbox.store_faults.hook = DropEmailRestriction(sandbox)
    drain(daemon)
    assert mails_for(sandbox, "coupon") == []
    [entry] = log_for(daemon, order_id, "coupon")
    assert entry.status == "failed" and "restricted to anyone" in entry.reason


def test_a_later_order_using_the_coupon_shows_as_redeemed(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id = complete_and_deliver(sandbox, clock, daemon, "siti", [(11, 1)])
    drain(daemon)
    [coupon] = coupons_for(sandbox, "siti.rahmawati@example.test")
    later = sandbox.store.create_order(customer="siti", items=[(15, 3)], coupons=[coupon.code])
    clock.advance(timedelta(days=2))
    sandbox.store.complete(int(later["id"]))
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()
    daemon.poll_once()  # seen again in the overlap: still one redemption
    redeemed = [m for m in daemon.state.messages() if m.status == "redeemed"]
    assert len(redeemed) == 1
    assert redeemed[0].order_id == int(later["id"])
    assert f"#{later['number']}" in redeemed[0].reason and "IDR" in redeemed[0].reason
    assert f"order #{sandbox.store.get(order_id)['number']}" in redeemed[0].reason


# -- language ------------------------------------------------------------------------------


def test_the_language_follows_the_billing_country(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    complete_and_deliver(sandbox, clock, daemon, "nurul", [(11, 1)])  # Malaysia
    complete_and_deliver(sandbox, clock, daemon, "dewi", [(11, 1)])  # Indonesia
    drain(daemon)
    by_to = {m.to[0]: m for m in mails_for(sandbox, "coupon")}
    malay = by_to["nurul.aisyah@example.test"]
    indonesian = by_to["dewi.lestari@example.test"]
    assert malay.subject != indonesian.subject
    assert "RM" in malay.text or "%" in malay.text


def test_with_a_sendgrid_unsubscribe_group_sendgrid_hosts_the_link(
    sandbox: Sandbox, clock: FakeClock, tmp_path: Path
) -> None:
    text = sandbox.config_yaml(tmp_path / "state.db")
    text = text[: text.index("http:\n")].replace(
        "  from_email:", "  unsubscribe_group_id: 4242\n  from_email:", 1
    )
    path = tmp_path / "config.yaml"
    path.write_text(
        text + "sequences:\n  - name: t\n    steps:\n      - {name: t, template: thank-you}\n",
        encoding="utf-8",
    )
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    try:
        daemon.run_once()
        order_id = int(sandbox.store.create_order(customer="siti", items=[(11, 1)])["id"])
        clock.advance(timedelta(minutes=1))
        sandbox.store.complete(order_id)
        clock.advance(timedelta(minutes=1))
        daemon.poll_once()
        drain(daemon)
    finally:
        daemon.close()
    [mail] = sandbox.sink.messages
    assert mail.payload["asm"] == {"group_id": 4242}
    assert "<%asm_group_unsubscribe_raw_url%>" in mail.html
    assert "headers" not in mail.payload  # SendGrid adds its own List-Unsubscribe
