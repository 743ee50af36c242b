"""The SendGrid mailer over its keep-alive session: where "certainly not sent" ends.

A retry is only safe when the request never left (the connection was refused); once it went
out, a dropped connection or a missing answer is uncertain and must not be retried. The sink
and its fault seam are the real sandbox servers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from wcfollowup.core.clock import FakeClock
from wcfollowup.mail.errors import MailUnavailable, MailUncertain
from wcfollowup.mail.message import OutgoingEmail
from wcfollowup.mail.sendgrid_mailer import SendGridMailer
from wcfollowup.sandbox import Fault, FaultPlan, Sandbox
from wcfollowup.sandbox.faults import rule

MAIL = "POST /v3/mail/send$"
EMAIL = OutgoingEmail("siti@example.test", "Siti", "Terima kasih", "Halo", "<p>Halo</p>")


@pytest.fixture
def no_faults(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.mail_faults.hook = None


def mailer(host: str, sandbox: Sandbox, timeout: float = 5.0) -> SendGridMailer:
    return SendGridMailer(
        sandbox.sendgrid_api_key,
        from_email="halo@tokobatiksari.example",
        host=host,
        timeout=timeout,
        sleep=lambda _s: None,
    )


def fault(sandbox: Sandbox, clock: FakeClock, kind: Fault) -> None:
    FaultPlan([rule(MAIL, 1.0, [kind])], seed=1, clock=clock, timeout=1.0).install(sandbox)


def test_messages_from_one_thread_go_out_on_one_connection(sandbox: Sandbox) -> None:
    sender = mailer(sandbox.sendgrid_host, sandbox)
    ids = [sender.send(EMAIL) for _ in range(5)]
    assert all(ids) and len(set(ids)) == 5
    assert len(sandbox.sink.messages) == 5
    assert sandbox.mail_peers.connections == 1


def test_a_refused_connection_is_retried_as_unavailable(sandbox: Sandbox) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(MailUnavailable):
        mailer(f"http://127.0.0.1:{port}", sandbox).send(EMAIL)


@pytest.mark.parametrize("kind", [Fault.LOST_RESET, Fault.LOST_SLOW])
def test_an_answer_lost_after_the_request_went_out_is_uncertain(
    sandbox: Sandbox, clock: FakeClock, no_faults: None, kind: Fault
) -> None:
    fault(sandbox, clock, kind)
    with pytest.raises(MailUncertain):
        mailer(sandbox.sendgrid_host, sandbox, timeout=1.0).send(EMAIL)
    assert len(sandbox.sink.messages) == 1  # taken once, never retried


def test_a_connection_the_server_closed_while_idle_is_replaced_not_uncertain(
    sandbox: Sandbox,
) -> None:
    """SendGrid (here the sink, after 1 s) closes idle keep-alive connections; the next
    message must open a new one and go out, not fail as "maybe sent" on the dead one."""
    sandbox._mail_server.server.config.timeout_keep_alive = 1  # seconds, read per new connection
    sender = mailer(sandbox.sendgrid_host, sandbox)
    sender.send(EMAIL)
    time.sleep(1.5)  # real idle time on the socket, not a schedule
    sender.send(EMAIL)
    assert len(sandbox.sink.messages) == 2
    assert sandbox.mail_peers.connections == 2
