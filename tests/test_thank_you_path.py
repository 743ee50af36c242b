"""The walking skeleton end to end: sandbox store -> daemon -> sandbox mail sink -> message log.

Every test drives the real daemon code over HTTP against the sandbox servers; only the clock is
fake, so "30 minutes later" costs nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from support import drain, one_due_thank_you

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

MakeDaemon = Callable[..., Daemon]


def sent_order_ids(daemon: Daemon) -> list[int]:
    return [m.order_id for m in daemon.state.messages(status="sent")]


def test_completed_orders_get_one_thank_you_each_and_history_gets_none(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    history_completed = sandbox.store.orders_ids(status="completed")
    assert history_completed, "the seeded store should have completed history"
    daemon = make_daemon()
    daemon.run_once()  # first sight: the store's past is history
    assert sandbox.sink.messages == []

    processing = sandbox.store.orders_ids(status="processing")
    assert len(processing) >= 3
    clock.advance(timedelta(minutes=1))
    to_complete = processing[:3]
    for order_id in to_complete:
        sandbox.store.complete(order_id)
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()
    drain(daemon)
    assert sandbox.sink.messages == [], "the thank-you waits for its 30 minute delay"

    clock.advance(timedelta(minutes=31))
    daemon.poll_once()
    drain(daemon)

    assert sorted(sent_order_ids(daemon)) == sorted(to_complete)
    emails = {sandbox.store.get(i)["billing"]["email"].lower() for i in to_complete}
    assert {m.to[0].lower() for m in sandbox.sink.messages} == emails
    assert len(sandbox.sink.messages) == 3
    for mail in sandbox.sink.messages:
        assert mail.subject.startswith("Terima kasih")  # the store language is Indonesian
        assert mail.text and mail.html
        assert mail.custom_args["wcf_sequence"] == "thank-you"
    logged_ids = {m.provider_message_id for m in daemon.state.messages(status="sent")}
    assert logged_ids == {m.message_id for m in sandbox.sink.messages}
    assert not set(history_completed) & set(sent_order_ids(daemon))


def test_restart_sends_nothing_twice(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon, make_config: Callable[..., object]
) -> None:
    config = make_config(after="0s")
    first = make_daemon(config)
    order_id = one_due_thank_you(sandbox, clock, first)
    drain(first)
    assert len(sandbox.sink.messages) == 1
    first.close()

    for _ in range(3):  # three restarts, each with a fresh in-memory state
        again = make_daemon(config)
        again.run_once()
        sandbox.store.touch(order_id)  # an admin edits the order: it shows up in the poll again
        clock.advance(timedelta(minutes=5))
        again.poll_once()
        drain(again)
        again.close()
    assert len(sandbox.sink.messages) == 1
    assert sent_order_ids(make_daemon(config)) == [order_id]


def test_refunded_and_processing_orders_get_none(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = make_daemon()
    daemon.run_once()
    processing = sandbox.store.orders_ids(status="processing")
    completed_then_refunded, refunded_only, cancelled = processing[:3]
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(completed_then_refunded)
    sandbox.store.refund(refunded_only)
    sandbox.store.cancel(cancelled)
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()  # enrolled, thank-you due in 30 minutes
    clock.advance(timedelta(minutes=5))
    sandbox.store.refund(completed_then_refunded)
    clock.advance(timedelta(minutes=1))
    daemon.poll_once()  # the refund cancels the pending thank-you
    clock.advance(timedelta(hours=2))
    daemon.poll_once()
    drain(daemon)

    assert sandbox.sink.messages == []
    log = daemon.state.messages()
    assert [(m.order_id, m.status) for m in log] == [(completed_then_refunded, "cancelled")]
    assert log[0].reason == "order is refunded"


def test_refund_seen_only_at_dispatch_cancels_too(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    """Dispatch re-reads the order, so a refund between two polls still stops the email."""
    daemon = make_daemon(after="0s")
    daemon.run_once()
    order_id = sandbox.store.orders_ids(status="processing")[0]
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))
    daemon.poll_once()
    sandbox.store.refund(order_id)
    drain(daemon)
    assert sandbox.sink.messages == []
    assert [m.status for m in daemon.state.messages()] == ["cancelled"]


def test_paging_across_250_orders_misses_none_and_repeats_none(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = make_daemon(after="0s", batch_size=100)
    daemon.run_once()
    new_ids = sandbox.store.add_orders(250, status="processing")
    for order_id in new_ids:
        clock.advance(timedelta(seconds=3))
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=3))
    result = daemon.poll_once()
    assert result is not None
    assert result.enrolled == 250
    assert result.requests <= math.ceil(250 / 100) + 1
    drain(daemon)
    counts = Counter(sent_order_ids(daemon))
    assert set(counts) == set(new_ids)
    assert max(counts.values()) == 1
    assert len(sandbox.sink.messages) == 250


def test_orders_sharing_one_second_are_all_seen(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    """A bulk status change puts 150 orders in the same second: the keyset falls back to pages."""
    daemon = make_daemon(after="0s", batch_size=200)
    daemon.run_once()
    new_ids = sandbox.store.add_orders(150, status="processing")
    clock.advance(timedelta(minutes=1))
    for order_id in new_ids:
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=1))
    result = daemon.poll_once()
    assert result is not None and result.enrolled == 150
    drain(daemon)
    assert sorted(sent_order_ids(daemon)) == sorted(new_ids)


def test_idle_poll_is_one_request(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    daemon = make_daemon()
    daemon.poll_once()
    clock.advance(timedelta(minutes=10))
    result = daemon.poll_once()
    assert result is not None and result.requests == 1


def test_crash_while_sending_is_logged_uncertain_and_never_resent(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon, make_config: Callable[..., object]
) -> None:
    config = make_config(after="0s")
    daemon = make_daemon(config)
    order_id = one_due_thank_you(sandbox, clock, daemon)
    # Simulate dying right after "sending" was committed, before the provider answered.
    [step] = daemon.state.claim_due(clock.now(), 10)
    daemon.state.mark_sending(step.id, clock.now())
    daemon.close()

    restarted = make_daemon(config)
    restarted.run_once()
    drain(restarted)
    assert sandbox.sink.messages == []
    [entry] = restarted.state.messages()
    assert (entry.order_id, entry.status) == (order_id, "uncertain")
    assert "will not be sent again" in entry.reason


def test_bad_store_key_pauses_polling_without_crashing(
    sandbox: Sandbox, make_config: Callable[..., object], clock: FakeClock
) -> None:
    from support import sandbox_env

    from wcfollowup.config import load_config

    config = make_config()
    env = sandbox_env(sandbox) | {"WC_CONSUMER_SECRET": "cs_wrong"}
    bad = load_config(config.source_path, env=env)  # type: ignore[attr-defined]
    daemon = Daemon(bad, clock, sleep=lambda _s: None)
    try:
        assert daemon.poll_once() is None
        assert daemon.state.messages() == []
    finally:
        daemon.close()
