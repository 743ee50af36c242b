"""``backfill``: count first, ask, then enrol old orders so the daemon sends them now."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support import drain, sandbox_env
from tools_support import tools_config
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.core.clock import FakeClock, SystemClock
from wcfollowup.db.schema import enrollments, steps
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.tools import backfill

SEEDED_COMPLETED = 9  # completed 9 to 21 days before the sandbox started


def count(daemon: Daemon, table: object) -> int:
    with daemon.state.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)  # type: ignore[arg-type]


def test_backfill_enrols_history_due_now_and_the_daemon_sends_it(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    _path, config = tools_config(tmp_path, sandbox)
    daemon = make_daemon(config)
    daemon.run_once()  # history before this is never mailed by the daemon itself
    assert count(daemon, enrollments) == 0
    now = clock.now()

    prepared = backfill.prepare(config, daemon.state, now - timedelta(days=30), now)
    assert count(daemon, enrollments) == 0  # counting wrote nothing
    thank_you = next(s for s in prepared.tally.sequences if s.name == "thank-you")
    assert thank_you.enrolled == SEEDED_COMPLETED
    assert prepared.tally.messages >= 2 * SEEDED_COMPLETED

    stored = backfill.enroll(daemon.state, prepared, config.store.url, now)
    assert stored == len(prepared.plans) == prepared.tally.enrolled
    with daemon.state.engine.connect() as conn:
        dues = {
            (r.order_id, r.step): r.due_at
            for r in conn.execute(
                select(steps.c.order_id, steps.c.step, steps.c.due_at, steps.c.state)
            )
        }
    oldest = min(order_id for order_id, _ in dues)
    # The 21-day-old order's thank-you is due now, not long missed; the check-in keeps its 2 days.
    assert dues[(oldest, "thank-you")] == now
    assert dues[(oldest, "check-in")] == now + timedelta(days=2)
    assert all(due is not None and due >= now for due in dues.values())

    drain(daemon)
    thanked = {
        int(m.custom_args["wcf_order_id"])
        for m in sandbox.sink.messages
        if m.custom_args["wcf_step"] == "thank-you"
    }
    assert len(thanked) == SEEDED_COMPLETED
    assert not [m for m in sandbox.sink.messages if m.custom_args["wcf_step"] == "check-in"]

    again = backfill.prepare(config, daemon.state, now - timedelta(days=30), now)
    assert again.plans == []
    assert next(s for s in again.tally.sequences if s.name == "thank-you").already_enrolled == 9


def test_backfill_refuses_more_than_a_year(tmp_path: Path, sandbox: Sandbox) -> None:
    now = SystemClock().now()
    with pytest.raises(backfill.BackfillRefused, match="365"):
        backfill.check_since(now - timedelta(days=366), now)
    backfill.check_since(now - timedelta(days=365), now)


@pytest.fixture
def live_sandbox() -> Iterator[Sandbox]:
    """On the real clock, as the CLI reads it: the seeded history is days old for real."""
    with Sandbox(SystemClock(), timezone="Asia/Jakarta") as sb:
        yield sb


def test_backfill_command_asks_and_no_changes_nothing(
    tmp_path: Path, live_sandbox: Sandbox
) -> None:
    path, config = tools_config(tmp_path, live_sandbox)
    runner = CliRunner()
    env = {**sandbox_env(live_sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    refused = runner.invoke(app, ["backfill", "--since", "30d"], input="n\n", env=env)
    assert refused.exit_code == 1, refused.output
    assert "Enrol" in refused.output and "email(s)?" in refused.output
    daemon = Daemon(config, SystemClock(), sleep=lambda _s: None)
    try:
        assert count(daemon, enrollments) == 0
        done = runner.invoke(app, ["backfill", "--since", "30d", "--yes"], env=env)
        assert done.exit_code == 0, done.output
        assert count(daemon, enrollments) > 0
        assert "enrolment(s) stored" in done.output
        drain(daemon)
        assert len(live_sandbox.sink.messages) >= SEEDED_COMPLETED
        too_far = runner.invoke(app, ["backfill", "--since", "400d", "--yes"], env=env)
        assert too_far.exit_code == 2
        assert "365" in too_far.output
    finally:
        daemon.close()
