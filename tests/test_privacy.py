"""``forget`` and retention against the real daemon, sandbox store and mail sink.

What must hold: the customer's address and comment are nowhere in the state database afterwards,
nothing more is sent to them, and the counts ``stats`` reads are unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs
from support import drain, sandbox_env, write_engine_config
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.config import ConfigError, load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db import privacy
from wcfollowup.db.schema import metadata, unsubscribes
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

SEQUENCES = """\
{privacy}
sequences:
  - name: thanks
    steps:
      - name: thank-you
        template: thank-you
      - name: survey
        kind: survey
        after: 1h
      - name: much-later
        template: thank-you
        after: 30d
  - name: reward
    once_per_customer: true  # so that its memory of customers is erased too
    steps:
      - name: coupon
        kind: coupon
        after: 1h
        coupon: {{amount: 10}}
"""

COMMENT = "Kain bagus tapi telat. Hubungi saya di 0812-555-0199"


@dataclass
class Shop:
    sandbox: Sandbox
    clock: FakeClock
    daemon: Daemon
    config_path: Path

    def order(self, customer: str) -> tuple[int, str]:
        order = self.sandbox.store.create_order(customer=customer, items=[(13, 1)])
        order_id = int(order["id"])
        self.clock.advance(timedelta(minutes=1))
        self.sandbox.store.complete(order_id)
        self.clock.advance(timedelta(seconds=5))
        self.daemon.poll_once()
        return order_id, str(order["billing"]["email"])

    def advance(self, by: timedelta) -> None:
        self.clock.advance(by)
        drain(self.daemon)

    def answer_survey(self, order_id: int, score: int, comment: str) -> None:
        [mail] = [
            m
            for m in self.sandbox.sink.messages
            if m.custom_args.get("wcf_step") == "survey"
            and int(m.custom_args["wcf_order_id"]) == order_id
        ]
        step_id = int(mail.custom_args["wcf_step_id"])
        book = SurveyBook(self.daemon.state)
        book.record_survey_score(step_id, order_id, score, self.clock.now())
        assert book.add_survey_comment(step_id, comment, self.clock.now())

    def dump(self) -> str:
        """Every value of every table, as one string to search."""
        parts: list[str] = []
        with self.daemon.state.engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    parts.extend(str(value) for value in row)
        return "\n".join(parts).lower()

    def statuses(self) -> Counter[tuple[str, str]]:
        return Counter((m.step, m.status) for m in self.daemon.state.messages())


def make_shop(sandbox: Sandbox, clock: FakeClock, tmp_path: Path, privacy_yaml: str = "") -> Shop:
    path = write_engine_config(
        tmp_path / "config.yaml", sandbox, SEQUENCES.format(privacy=privacy_yaml)
    )
    config = load_config(path, env=sandbox_env(sandbox))
    daemon = Daemon(config, clock, sleep=lambda _s: None)
    daemon.run_once()  # first sight: the seeded orders are history
    return Shop(sandbox, clock, daemon, path)


@pytest.fixture
def shop(sandbox: Sandbox, clock: FakeClock, tmp_path: Path) -> Iterator[Shop]:
    shop = make_shop(sandbox, clock, tmp_path)
    yield shop
    shop.daemon.close()


def two_customers(shop: Shop) -> tuple[tuple[int, str], tuple[int, str]]:
    siti = shop.order("siti")
    dewi = shop.order("dewi")
    shop.advance(timedelta(hours=2))
    shop.answer_survey(siti[0], 2, COMMENT)
    shop.answer_survey(dewi[0], 5, "Mantap!")
    return siti, dewi


def test_forget_erases_the_customer_and_keeps_the_counts(shop: Shop) -> None:
    (siti_order, siti), (_dewi_order, dewi) = two_customers(shop)
    before = shop.statuses()
    assert siti.lower() in shop.dump() and COMMENT.lower() in shop.dump()
    found = privacy.preview_forget(shop.daemon.state.engine, siti.upper())
    assert found.enrollments == 2 and found.steps_cancelled == 1 and found.survey_comments == 1
    assert siti.lower() in shop.dump()  # a preview changes nothing

    done = privacy.forget(shop.daemon.state.engine, f"  {siti.upper()} ", shop.clock.now())

    assert done == privacy.Erasure(
        enrollments=2,
        steps_cancelled=1,
        messages=found.messages,
        survey_answers=1,
        survey_comments=1,
        coupons=1,
        unsubscribed=True,
    )
    dump = shop.dump()
    assert siti.lower() not in dump and "0812-555-0199" not in dump
    assert dewi.lower() in dump and "mantap!" in dump  # only that customer
    after = shop.statuses()
    assert after - Counter({("much-later", "cancelled"): 1}) == before
    score = SurveyBook(shop.daemon.state).response_for_order(1, siti_order)
    assert score is not None and score.score == 2 and score.comment == ""
    with shop.daemon.state.engine.connect() as conn:
        kept = [r.email for r in conn.execute(select(unsubscribes))]
    assert kept == [privacy.address_hash(siti)]
    assert privacy.address_hash(siti) in privacy.suppression_keys(siti.title())

    sent_before = len(shop.sandbox.sink.messages)
    shop.advance(timedelta(days=31))
    later = shop.sandbox.sink.messages[sent_before:]
    assert [m.to for m in later] == [[dewi]]


def test_forget_twice_and_an_unknown_address_only_keep_one_hash(shop: Shop) -> None:
    engine = shop.daemon.state.engine
    shop.daemon.state.unsubscribe("Nobody@Example.test", "command line", shop.clock.now())
    first = privacy.forget(engine, "nobody@example.test", shop.clock.now())
    again = privacy.forget(engine, "nobody@example.test", shop.clock.now())
    assert not first.found_anything and not again.found_anything
    with engine.connect() as conn:
        rows = conn.execute(select(unsubscribes.c.email, unsubscribes.c.source)).all()
    assert [tuple(r) for r in rows] == [
        (privacy.address_hash("nobody@example.test"), privacy.FORGET_SOURCE)
    ]


def test_a_forgotten_customer_who_orders_again_gets_nothing(shop: Shop) -> None:
    _order, siti = shop.order("siti")
    shop.advance(timedelta(hours=2))
    privacy.forget(shop.daemon.state.engine, siti, shop.clock.now())
    sent_before = len(shop.sandbox.sink.messages)
    shop.order("siti")
    shop.advance(timedelta(hours=2))
    assert [m for m in shop.sandbox.sink.messages[sent_before:] if siti in m.to] == []


# -- retention -----------------------------------------------------------------------------


def test_retention_purges_old_followups_and_logs_counts_only(shop: Shop) -> None:
    (siti_order, siti), (_dewi_order, dewi) = two_customers(shop)
    shop.advance(timedelta(days=31))  # every step finished
    before = shop.statuses()
    shop.clock.advance(timedelta(days=600))
    assert shop.daemon.purge_once() == privacy.Purge()  # nothing finished two years ago
    shop.clock.advance(timedelta(days=131))
    _fresh_order, fresh = shop.order("putu")

    with capture_logs() as logs:
        purged = shop.daemon.purge_once()

    assert purged is not None
    assert purged.enrollments == 4 and purged.survey_answers == 2 and purged.coupons == 2
    dump = shop.dump()
    for gone in (siti.lower(), dewi.lower(), "0812-555-0199", "mantap!"):
        assert gone not in dump
    assert fresh.lower() in dump  # enrolled just now: kept
    assert shop.statuses() == before
    score = SurveyBook(shop.daemon.state).response_for_order(1, siti_order)
    assert score is not None and score.score == 2
    [line] = [e for e in logs if e["event"].startswith("retention")]
    assert line["enrollments"] == 4 and siti not in str(line) and dewi not in str(line)
    assert shop.daemon.purge_once() == privacy.Purge()  # nothing left to purge
    assert shop.daemon.state.step_states().get("pending", 0) >= 1  # putu's are still to come


def test_retention_forever_purges_nothing(
    sandbox: Sandbox, clock: FakeClock, tmp_path: Path
) -> None:
    shop = make_shop(sandbox, clock, tmp_path, "privacy: {retention: forever}")
    try:
        _order, siti = shop.order("siti")
        shop.advance(timedelta(days=1000))
        assert shop.daemon.purge_once() is None
        assert siti.lower() in shop.dump()
    finally:
        shop.daemon.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [("3d", "too short; the minimum is 4w"), ("soon", "'soon' is not a duration")],
)
def test_retention_setting_is_checked(
    sandbox: Sandbox, tmp_path: Path, value: str, message: str
) -> None:
    body = SEQUENCES.format(privacy=f"privacy: {{retention: {value}}}")
    path = write_engine_config(tmp_path / "config.yaml", sandbox, body)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=sandbox_env(sandbox))
    assert any(message in str(p) and "retention" in str(p) for p in caught.value.problems)


def test_scrub_reason_masks_addresses_and_drops_comments() -> None:
    assert privacy.scrub_reason("failed", "SendGrid: bad to a.b@x.co.id") == (
        "SendGrid: bad to [erased]"
    )
    assert privacy.scrub_reason("commented", "call me") == ""
    assert privacy.scrub_reason("answered", "survey score 4/5") == "survey score 4/5"


# -- the command ---------------------------------------------------------------------------


def test_forget_command_asks_then_erases(shop: Shop) -> None:
    (_order, siti), _dewi = two_customers(shop)
    env = sandbox_env(shop.sandbox)
    runner = CliRunner()
    args = ["forget", siti, "--config", str(shop.config_path)]

    declined = runner.invoke(app, args, input="n\n", env=env)
    assert declined.exit_code == 1 and "enrollments (orders followed up): 2" in declined.output
    assert siti.lower() in shop.dump()

    done = runner.invoke(app, [*args, "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert "Erased: 2 enrollment(s)" in done.output and "1 comment(s)" in done.output
    assert siti.lower() not in shop.dump()


def test_forget_command_usage_errors(shop: Shop) -> None:
    runner = CliRunner()
    env = sandbox_env(shop.sandbox)
    config = ["--config", str(shop.config_path)]
    both = runner.invoke(app, ["forget", "a@b.example", "--older-than", "365d", *config], env=env)
    neither = runner.invoke(app, ["forget", *config], env=env)
    not_email = runner.invoke(app, ["forget", "siti", *config], env=env)
    assert [both.exit_code, neither.exit_code, not_email.exit_code] == [2, 2, 2]
    assert "not an email address" in not_email.output
    helped = runner.invoke(app, ["forget", "--help"])
    assert "Example: wcfollowup forget siti@example.com" in helped.output
