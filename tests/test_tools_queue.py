"""``queue``: what goes out next, and cancel / skip / retry that never fight the dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from support import drain, sandbox_env
from tools_support import complete_orders, tools_config
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.schema import messages, steps
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.tools import queue

BODY = """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 1h
        template: thank-you
      - name: check-in
        after: 2d
        template: thank-you
"""


def enrolled_daemon(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> tuple[Path, Daemon, list[int]]:
    path, config = tools_config(tmp_path, sandbox, BODY)
    daemon = make_daemon(config)
    daemon.run_once()
    orders = complete_orders(sandbox, clock, 3)
    daemon.poll_once()
    return path, daemon, orders


def states(daemon: Daemon) -> dict[int, str]:
    with daemon.state.engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(select(steps.c.id, steps.c.state))}


def log_rows(daemon: Daemon) -> list[tuple[int | None, str, str]]:
    with daemon.state.engine.connect() as conn:
        query = select(messages.c.step_id, messages.c.status, messages.c.reason)
        return [(r[0], r[1], r[2]) for r in conn.execute(query.order_by(messages.c.id))]


def test_queue_lists_open_steps_soonest_first(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    """Ordered by due time: the three thank-yous (a minute apart), then the check-ins."""
    _path, daemon, orders = enrolled_daemon(tmp_path, sandbox, clock, make_daemon)
    items = queue.list_queue(daemon.state.engine)
    assert [i.step for i in items] == ["thank-you"] * 3 + ["check-in"] * 3
    assert [i.order_id for i in items[:3]] == orders
    dues = [i.due_at for i in items]
    assert dues == sorted(d for d in dues if d is not None)
    only = queue.list_queue(daemon.state.engine, order=orders[1], limit=1)
    assert [(i.order_id, i.step) for i in only] == [(orders[1], "thank-you")]


def test_cancel_and_skip_change_states_and_log_why(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    _path, daemon, orders = enrolled_daemon(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    first = queue.list_queue(engine, order=orders[0])
    change = queue.cancel(engine, clock.now(), step=first[0].id)
    assert (change.changed, change.found) == (1, 1)
    skipped = queue.skip(engine, clock.now(), order=orders[1])
    assert skipped.changed == 2
    after = states(daemon)
    assert after[first[0].id] == "cancelled"
    assert after[first[1].id] == "pending"
    assert sorted(after[i.id] for i in queue.list_queue(engine, order=orders[2])) == [
        "pending",
        "pending",
    ]
    rows = log_rows(daemon)
    assert (first[0].id, "cancelled", "cancelled from the command line") in rows
    assert sum(1 for r in rows if r[1:] == ("skipped", "skipped from the command line")) == 2
    # A second cancel finds nothing it may change and says so.
    again = queue.cancel(engine, clock.now(), step=first[0].id)
    assert (again.changed, dict(again.left)) == (0, {"cancelled": 1})


def test_cancel_never_touches_a_step_being_sent(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    _path, daemon, orders = enrolled_daemon(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    sending, claimed = queue.list_queue(engine, order=orders[0])
    with engine.begin() as conn:  # the dispatcher is mid-send on one, has claimed the other
        conn.execute(update(steps).where(steps.c.id == sending.id).values(state="sending"))
        conn.execute(update(steps).where(steps.c.id == claimed.id).values(state="claimed"))
    change = queue.cancel(engine, clock.now(), order=orders[0])
    assert change.changed == 0
    assert change.busy == 2
    assert states(daemon)[sending.id] == "sending"
    assert states(daemon)[claimed.id] == "claimed"
    assert log_rows(daemon) == []
    assert "being sent right now" in queue.describe_change(change, "cancelled")


def test_retry_puts_a_failed_step_back_and_the_daemon_sends_it(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    _path, daemon, orders = enrolled_daemon(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    target = queue.list_queue(engine, order=orders[0])[0]
    with engine.begin() as conn:
        conn.execute(
            update(steps).where(steps.c.id == target.id).values(state="failed", attempts=12)
        )
    assert queue.retry(engine, clock.now(), step=target.id).changed == 1
    assert states(daemon)[target.id] == "pending"
    assert (target.id, "retried", queue.REASONS["retried"]) in log_rows(daemon)
    drain(daemon)  # due now, although its planned time is an hour away
    sent = [m for m in sandbox.sink.messages if int(m.custom_args["wcf_order_id"]) == orders[0]]
    assert len(sent) == 1
    assert states(daemon)[target.id] == "sent"
    # A sent step is not retried.
    assert queue.retry(engine, clock.now(), step=target.id).changed == 0


def test_retry_of_an_uncertain_step_asks_first(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    path, daemon, orders = enrolled_daemon(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    target = queue.list_queue(engine, order=orders[0])[0]
    with engine.begin() as conn:
        conn.execute(update(steps).where(steps.c.id == target.id).values(state="uncertain"))
    runner = CliRunner()
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    refused = runner.invoke(app, ["queue", "retry", "--step", str(target.id)], input="n\n", env=env)
    assert refused.exit_code == 1
    assert "may already have reached" in refused.output
    assert states(daemon)[target.id] == "uncertain"
    done = runner.invoke(app, ["queue", "retry", "--step", str(target.id), "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert "1 step(s) queued again" in done.output
    assert states(daemon)[target.id] == "pending"


def test_queue_command_lists_and_cancels(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    path, daemon, orders = enrolled_daemon(tmp_path, sandbox, clock, make_daemon)
    runner = CliRunner()
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    listed = runner.invoke(app, ["queue", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    import json

    items = json.loads(listed.output)
    assert [i["order_id"] for i in items[:3]] == orders
    assert items[0]["due_at"].endswith("+07:00")  # store time, Asia/Jakarta
    cancelled = runner.invoke(app, ["queue", "cancel", "--order", str(orders[2])], env=env)
    assert cancelled.exit_code == 0, cancelled.output
    assert "2 step(s) cancelled" in cancelled.output
    both = runner.invoke(app, ["queue", "skip", "--order", "1", "--step", "2"], env=env)
    assert both.exit_code == 2
    clock.advance(timedelta(hours=2))
    drain(daemon)
    assert orders[2] not in {int(m.custom_args["wcf_order_id"]) for m in sandbox.sink.messages}


def test_retry_by_order_asks_about_uncertain_steps_then_requeues_them(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    path, daemon, orders = enrolled_daemon(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    targets = queue.list_queue(engine, order=orders[0])
    with engine.begin() as conn:
        conn.execute(update(steps).where(steps.c.id == targets[0].id).values(state="uncertain"))
    runner = CliRunner()
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    order = str(orders[0])
    refused = runner.invoke(app, ["queue", "retry", "--order", order], input="n\n", env=env)
    assert refused.exit_code == 1 and "may already have reached" in refused.output
    assert states(daemon)[targets[0].id] == "uncertain"
    done = runner.invoke(app, ["queue", "retry", "--order", order], input="y\n", env=env)
    assert done.exit_code == 0, done.output
    assert states(daemon)[targets[0].id] == "pending"
    both = runner.invoke(app, ["queue", "retry", "--order", order, "--step", "1"], env=env)
    assert both.exit_code == 2  # exactly one of --step and --order
