"""The poll's note of orders planned but maybe not stored yet stays as small as its batches."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.planning import Enrollment, PlannedStep
from wcfollowup.db.state import PreparedEnrolments
from wcfollowup.engine import poller
from wcfollowup.engine.poller import FLUSH_AT, Unstored
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def batch(*order_ids: int) -> PreparedEnrolments:
    step = PlannedStep("thank-you", "email", "completed", timedelta(0), NOW, "pending")
    plans = [
        Enrollment(
            OrderSnapshot(i, str(i), "completed", NOW, NOW, "a@b.test"),
            "thank-you",
            NOW,
            None,
            False,
            (step,),
        )
        for i in order_ids
    ]
    return PreparedEnrolments(1, plans, NOW, [], [], [])


def test_orders_are_forgotten_once_their_batch_is_stored_and_not_before() -> None:
    planned = Unstored()
    for order_id in (1, 2, 3):
        planned.add(order_id)
    first: Future[None] = Future()
    planned.submitted(first, batch(1, 2))
    planned.forget_stored()
    assert all(i in planned for i in (1, 2, 3)), "the write has not run yet"
    first.set_result(None)
    planned.forget_stored()
    assert 1 not in planned and 2 not in planned
    assert 3 in planned, "still in the buffer, not yet sent to the writer"


def test_batches_are_forgotten_in_the_order_they_were_written() -> None:
    planned = Unstored()
    for order_id in (1, 2):
        planned.add(order_id)
    first: Future[None] = Future()
    second: Future[None] = Future()
    planned.submitted(first, batch(1))
    planned.submitted(second, batch(2))
    second.set_result(None)  # cannot happen (one writer, in order), and must not skip ahead
    planned.forget_stored()
    assert 1 in planned and 2 in planned
    first.set_result(None)
    planned.forget_stored()
    assert 1 not in planned and 2 not in planned
    planned.add(3)
    planned.clear()
    assert 3 not in planned


def test_a_backlog_poll_hands_every_batch_it_writes_to_the_note(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch sent to the writer is noted, so its orders can be forgotten once stored: a
    poll that wrote batches without noting them would keep every order of a backlog in the
    note (memory growing with the backlog) and wait for nothing it could check."""
    noted: list[frozenset[int]] = []

    class NotingUnstored(Unstored):
        def submitted(self, write: Future[None], batch: PreparedEnrolments) -> None:
            noted.append(frozenset(p.order.id for p in batch.plans))
            super().submitted(write, batch)

    monkeypatch.setattr(poller, "Unstored", NotingUnstored)
    body = "sequences:\n  - name: thank-you\n    steps:\n      - name: thank-you\n" + (
        "        after: 30m\n        template: thank-you\n"
    )
    path = write_engine_config(tmp_path / "config.yaml", sandbox, body)
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    try:
        daemon.poll_once()  # first sight
        orders = 3 * FLUSH_AT + 50
        clock.advance(timedelta(seconds=orders + 60))
        backlog = sandbox.store.add_orders(orders, status="completed", spread_seconds=orders - 1)
        clock.advance(timedelta(seconds=5))
        result = daemon.poll_once()
    finally:
        daemon.close()
    assert result is not None and result.enrolled == orders
    assert len(noted) == 4, "three full batches and the last, short one"
    assert frozenset().union(*noted) == frozenset(backlog)
    assert sum(len(b) for b in noted) == orders, "no order noted in two batches"
