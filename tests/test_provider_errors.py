"""How the daemon treats what the providers answer: retry, fail with the reason, or pause.

Faults are injected at the sandbox servers' fault seam, so the real clients see real HTTP
status codes and bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from starlette.responses import Response
from support import one_due_thank_you

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

MakeDaemon = Callable[..., Daemon]


def sendgrid_error(status: int, message: str, field: str | None = None) -> Response:
    body = {"errors": [{"message": message, "field": field, "help": None}]}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


class FailFirst:
    """Answer the first ``times`` mail requests with ``response``; then let them through."""

    def __init__(self, response: Response, times: int) -> None:
        self.response = response
        self.left = times
        self.calls = 0

    def __call__(self, scope: dict[str, Any]) -> Any:
        if scope.get("path") != "/v3/mail/send":
            return None
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            return self.response
        return None


def due_daemon(sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon) -> Daemon:
    daemon = make_daemon(after="0s")
    one_due_thank_you(sandbox, clock, daemon)
    return daemon


def test_a_503_is_retried_and_the_email_goes_out_once(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = due_daemon(sandbox, clock, make_daemon)
    fault = FailFirst(sendgrid_error(503, "service unavailable"), times=2)
    sandbox.mail_faults.hook = fault
    daemon.dispatch_once()
    assert fault.calls == 3
    assert len(sandbox.sink.messages) == 1
    assert [m.status for m in daemon.state.messages()] == ["sent"]


def test_a_400_fails_the_step_with_sendgrids_reason(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = due_daemon(sandbox, clock, make_daemon)
    reason = "Does not contain a valid address."
    sandbox.mail_faults.hook = FailFirst(
        sendgrid_error(400, reason, "personalizations.0.to.0.email"), times=1
    )
    daemon.dispatch_once()
    [entry] = daemon.state.messages()
    assert entry.status == "failed"
    assert reason in entry.reason and "HTTP 400" in entry.reason
    clock.advance(timedelta(days=1))
    daemon.dispatch_once()
    assert sandbox.sink.messages == []  # a permanent failure is not retried


def test_a_refused_sendgrid_key_pauses_without_failing_the_queue(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = due_daemon(sandbox, clock, make_daemon)
    sandbox.mail_faults.hook = FailFirst(
        sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked"),
        times=1,
    )
    daemon.dispatch_once()
    assert daemon.state.messages() == []  # nothing failed: the step waits
    assert daemon.dispatcher.paused_until is not None
    assert "SendGrid refused the API key" in daemon.dispatcher.paused_reason
    daemon.dispatch_once()  # still paused
    assert sandbox.sink.messages == []
    clock.advance(timedelta(minutes=10))  # the owner fixed the key; the pause ran out
    daemon.dispatch_once()
    assert [m.status for m in daemon.state.messages()] == ["sent"]
    assert len(sandbox.sink.messages) == 1


def test_a_store_that_keeps_failing_postpones_instead_of_losing_the_step(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = due_daemon(sandbox, clock, make_daemon)
    broken = Response("<html>502 Bad Gateway</html>", status_code=502, media_type="text/html")
    sandbox.store_faults.hook = lambda scope: broken
    daemon.dispatch_once()
    assert daemon.state.messages() == []
    assert daemon.state.step_states() == {"pending": 1}
    sandbox.store_faults.hook = None
    clock.advance(timedelta(minutes=6))
    daemon.dispatch_once()
    assert [m.status for m in daemon.state.messages()] == ["sent"]


def test_a_repeated_oauth_nonce_is_re_signed_not_taken_for_a_bad_key(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = make_daemon()
    daemon.run_once()
    body = {
        "code": "woocommerce_rest_authentication_error",
        "message": "Invalid nonce - nonce has already been used.",
        "data": {"status": 401},
    }
    refused = Response(json.dumps(body), status_code=401, media_type="application/json")
    calls: list[str] = []

    def once(scope: dict[str, Any]) -> Any:
        calls.append(scope["path"])
        return refused if len(calls) == 1 else None

    sandbox.store_faults.hook = once
    clock.advance(timedelta(minutes=1))
    result = daemon.poll_once()
    assert result is not None  # not paused as if the key were wrong
    assert len(calls) == 2


def test_a_crash_after_the_provider_accepted_is_uncertain_not_resent(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    """If recording "sent" fails after SendGrid took the message, it must not go out again."""
    daemon = due_daemon(sandbox, clock, make_daemon)
    real_finish = daemon.state.finish
    failures = []

    def finish_that_fails_once(step: Any, status: str, *args: Any, **kwargs: Any) -> None:
        if status == "sent" and not failures:
            failures.append(status)
            raise RuntimeError("database went away")
        real_finish(step, status, *args, **kwargs)

    daemon.state.finish = finish_that_fails_once  # type: ignore[method-assign]
    daemon.dispatch_once()
    clock.advance(timedelta(hours=1))
    daemon.dispatch_once()
    assert len(sandbox.sink.messages) == 1
    assert [m.status for m in daemon.state.messages()] == ["uncertain"]


def test_an_order_that_keeps_crashing_the_step_fails_after_bounded_attempts(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    """Broken order data must neither crash the daemon nor retry forever."""
    from starlette.responses import Response

    daemon = due_daemon(sandbox, clock, make_daemon)
    [order_id] = [int(m) for m in sandbox.store.orders_ids(status="completed")][-1:]
    # Valid JSON nested deeper than the parser's recursion limit: not a store error the
    # gateway knows, so the step crashes every time.
    depth = 100_000
    body = f'{{"id": {order_id}, "meta_data": {"[" * depth}{"]" * depth}}}'
    broken = Response(body, media_type="application/json")
    sandbox.store_faults.hook = lambda scope: (
        broken if scope["path"].endswith(f"/orders/{order_id}") else None
    )
    for _ in range(20):
        daemon.dispatch_once()
        clock.advance(timedelta(minutes=6))
    [entry] = daemon.state.messages()
    assert entry.status == "failed"
    assert "gave up after 12 attempts" in entry.reason
    assert sandbox.sink.messages == []
