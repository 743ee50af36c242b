"""Customers whose address has an internationalised domain get their email.

SendGrid (and the sandbox, which answers like it) refuses ``budi@bücher.example``; mail for it is
routed by the domain's ASCII form, so that is what we send: ``budi@xn--bcher-kva.example``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from support import drain, sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.mail.sendgrid_mailer import ascii_address
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

BODY = """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
"""


@pytest.mark.parametrize(
    ("address", "sent_to"),
    [
        ("budi@bücher.example", "budi@xn--bcher-kva.example"),
        ("siti@contoh.テスト", "siti@contoh.xn--zckzah"),
    ],
)
def test_an_idn_address_is_sent_in_its_ascii_form(
    tmp_path: Path,
    sandbox: Sandbox,
    clock: FakeClock,
    make_daemon: Callable[..., Daemon],
    address: str,
    sent_to: str,
) -> None:
    path = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    daemon = make_daemon(load_config(path, env=sandbox_env(sandbox)))
    daemon.run_once()
    order_id = int(sandbox.store.create_order(customer="siti")["id"])
    record = sandbox.store.orders[order_id]  # the customer typed an IDN address at checkout
    record.customer = dataclasses.replace(record.customer, email=address)
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))
    daemon.poll_once()
    drain(daemon)

    [message] = daemon.state.messages()
    assert message.status == "sent", message.reason
    assert [mail.to for mail in sandbox.sink.messages] == [[sent_to]]


def test_ascii_address_leaves_plain_and_unmailable_addresses_alone() -> None:
    assert ascii_address("siti@example.test") == "siti@example.test"
    assert ascii_address("Dewi@Bücher.example") == "Dewi@xn--bcher-kva.example"
    assert ascii_address("no-at-sign") == "no-at-sign"
