"""Links in real emails, clicked through the daemon's own listener, change the real state."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from support import drain, hides, sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

SEQUENCES = """\
sequences:
  - name: after-order
    steps:
      - name: survey
        kind: survey
        after: 1h
        expires_in: 7d
      - name: thanks-again
        after: 3d
        template: thank-you
        only_if: {survey_score_at_least: 4}
"""


@pytest.fixture
def daemon(sandbox: Sandbox, clock: FakeClock, tmp_path: Path) -> Iterator[Daemon]:
    path = write_engine_config(tmp_path / "config.yaml", sandbox, SEQUENCES)
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    daemon.run_once()
    daemon.start_web()
    yield daemon
    daemon.close()


def surveyed_order(sandbox: Sandbox, clock: FakeClock, daemon: Daemon) -> tuple[int, list[str]]:
    order_id = int(sandbox.store.create_order(customer="dewi", items=[(11, 1)])["id"])
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(order_id)
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()
    clock.advance(timedelta(hours=2))
    drain(daemon)
    [mail] = [m for m in sandbox.sink.messages if m.custom_args.get("wcf_step") == "survey"]
    assert daemon.config.http is not None
    public = re.escape(daemon.config.http.public_url)
    links = list(dict.fromkeys(re.findall(public + r"/survey/[\w.\-]+", mail.html)))
    assert len(links) == 5
    return order_id, links


def link_for(daemon: Daemon, links: list[str], score: int) -> str:
    assert daemon.signer is not None
    for link in links:
        if daemon.signer.read_survey(link.rsplit("/", 1)[1], daemon.clock.now()).score == score:
            return link
    raise AssertionError(f"no link for {score}")


def test_a_click_records_the_score_once_and_later_steps_follow_it(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id, links = surveyed_order(sandbox, clock, daemon)
    five = link_for(daemon, links, 5)
    assert httpx.get(five).status_code == 200  # a mail scanner's prefetch records nothing
    assert [m.status for m in daemon.state.messages(order_id=order_id)] == ["sent"]
    assert httpx.post(five).status_code == 200
    again = httpx.post(link_for(daemon, links, 1))  # a second click on another score
    assert again.status_code == 200
    answered = [m for m in daemon.state.messages(order_id=order_id) if m.status == "answered"]
    assert len(answered) == 1 and "5/5" in answered[0].reason
    clock.advance(timedelta(days=4))
    drain(daemon)
    thanks = [m for m in daemon.state.messages(order_id=order_id) if m.step == "thanks-again"]
    assert [m.status for m in thanks] == ["sent"]


def test_a_link_scanner_answers_nothing(sandbox: Sandbox, clock: FakeClock, daemon: Daemon) -> None:
    """Scanners HEAD (or OPTIONS) every link: no 1/5 answer, no unsubscribe; a POST still works."""
    order_id, links = surveyed_order(sandbox, clock, daemon)
    [mail] = sandbox.sink.messages
    unsubscribe = mail.payload["headers"]["List-Unsubscribe"].strip("<>")
    for method in ("HEAD", "OPTIONS", "PUT", "GET"):
        httpx.request(method, link_for(daemon, links, 1))
        httpx.request(method, unsubscribe)
    assert [m.status for m in daemon.state.messages(order_id=order_id)] == ["sent"]
    assert not daemon.state.is_unsubscribed("dewi.lestari@example.test")
    assert httpx.post(link_for(daemon, links, 1)).status_code == 200
    answered = [m for m in daemon.state.messages(order_id=order_id) if m.status == "answered"]
    assert len(answered) == 1 and "1/5" in answered[0].reason


def test_a_forged_or_expired_link_changes_nothing(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id, links = surveyed_order(sandbox, clock, daemon)
    link = link_for(daemon, links, 5)
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    assert httpx.post(forged).status_code == 400
    clock.advance(timedelta(days=8))  # past expires_in
    assert httpx.post(link).status_code == 410
    assert [m.status for m in daemon.state.messages(order_id=order_id)] == ["sent"]


def test_the_unsubscribe_link_cancels_what_was_waiting(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    order_id, _links = surveyed_order(sandbox, clock, daemon)
    [mail] = sandbox.sink.messages
    unsubscribe = mail.payload["headers"]["List-Unsubscribe"].strip("<>")
    assert unsubscribe in mail.html
    one_click = httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert daemon.state.is_unsubscribed("dewi.lestari@example.test")
    [cancelled] = [m for m in daemon.state.messages(order_id=order_id) if m.step == "thanks-again"]
    assert cancelled.status == "cancelled" and "unsubscribed" in cancelled.reason


def test_the_unsubscribe_link_does_not_carry_the_address(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    """The link in the email names nobody readably, yet unsubscribes the right customer."""
    order_id, _links = surveyed_order(sandbox, clock, daemon)
    [mail] = sandbox.sink.messages
    address = "dewi.lestari@example.test"
    assert mail.to == [address]
    unsubscribe = mail.payload["headers"]["List-Unsubscribe"].strip("<>")
    assert hides(unsubscribe, address)
    assert hides(unsubscribe, "dewi.lestari")
    for link in re.findall(r"https?://[^\s\"'<>]+", mail.html + mail.text):
        assert hides(link, address)
    assert not daemon.state.is_unsubscribed(address)
    assert httpx.post(unsubscribe).status_code == 200
    assert daemon.state.is_unsubscribed(address)
    [cancelled] = [m for m in daemon.state.messages(order_id=order_id) if m.step == "thanks-again"]
    assert cancelled.status == "cancelled"


def test_metrics_and_health_describe_the_daemon(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon
) -> None:
    surveyed_order(sandbox, clock, daemon)
    assert daemon.config.http is not None
    host, port = "127.0.0.1", daemon._web.port if daemon._web else 0
    text = httpx.get(f"http://{host}:{port}/metrics").text
    assert 'wcfollowup_messages_total{kind="survey",status="sent"} 1.0' in text
    assert 'wcfollowup_steps{state="sent"} 1.0' in text
    assert 'wcfollowup_steps{state="pending"} 1.0' in text  # thanks-again waits
    assert "wcfollowup_polls_total" in text and "wcfollowup_queue_depth 0.0" in text
    daemon.poll_once()
    assert httpx.get(f"http://{host}:{port}/healthz").status_code == 200
    clock.advance(timedelta(hours=1))  # no poll for an hour: polling is not happening
    stale = httpx.get(f"http://{host}:{port}/healthz")
    assert stale.status_code == 503 and "no successful poll" in stale.text
