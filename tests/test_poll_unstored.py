"""The poll's note of orders planned but maybe not stored yet stays as small as its batches."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.planning import Enrollment, PlannedStep
from wcfollowup.db.state import PreparedEnrolments
from wcfollowup.engine.poller import Unstored

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
