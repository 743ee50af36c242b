"""The shipped config.example.yaml, pointed at the sandbox, runs for six weeks as documented."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from support import sandbox_env
from test_sequences import tick

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

EXAMPLE = Path(__file__).parents[1] / "config.example.yaml"


def test_the_example_config_runs_against_the_sandbox(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("url: https://batiksari.co.id", f"url: {sandbox.store_url}", 1)
    text = text.replace("path: /var/lib/wcfollowup/state.db", f"path: {tmp_path / 'state.db'}", 1)
    text = text.replace(
        "  api_key: ${SENDGRID_API_KEY}",
        f"  api_key: ${{SENDGRID_API_KEY}}\n  host: {sandbox.sendgrid_host}",
        1,
    )
    assert sandbox.store_url in text and sandbox.sendgrid_host in text
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    sandbox.store.register_status("delivered")
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    try:
        daemon.run_once()
        clock.advance(timedelta(minutes=1))
        cod = int(sandbox.store.create_order(customer="putu", items=[(14, 1)])["id"])
        transfer = int(sandbox.store.create_order(customer="dewi", items=[(15, 1)])["id"])
        for order_id in (cod, transfer):
            clock.advance(timedelta(seconds=5))
            sandbox.store.complete(order_id)
        tick(daemon, clock, timedelta(days=2))
        sandbox.store.set_status(transfer, "delivered")
        tick(daemon, clock, timedelta(days=40))
        sent = {(m.order_id, m.sequence, m.step) for m in daemon.state.messages(status="sent")}
    finally:
        daemon.close()
    sequences = {(order, sequence) for order, sequence, _step in sent}
    assert (cod, "thank-you") in sequences and (transfer, "thank-you") in sequences
    assert (transfer, "review-request", "how-was-it") in sent  # the survey
    assert (transfer, "review-request", "ask-for-review") in sent  # no answer: not unhappy
    assert (cod, "review-request") not in sequences  # cash on delivery is excluded
    assert len(sandbox.sink.messages) == len(sent)
