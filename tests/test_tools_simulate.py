"""``simulate``: the daemon's rules over past orders, with no side effect at all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from starlette.types import Scope
from tools_support import complete_orders, tools_config

from wcfollowup.core.clock import FakeClock
from wcfollowup.db.schema import enrollments, messages, steps
from wcfollowup.db.state import StateStore
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.tools.simulate import simulate


def record_requests(sandbox: Sandbox) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def hook(scope: Scope) -> None:
        seen.append((scope["method"], scope["path"]))
        return None

    sandbox.store_faults.hook = hook
    return seen


def row_counts(db: Path) -> dict[str, int]:
    state = StateStore(f"sqlite:///{db}", migrate=False)
    try:
        with state.engine.connect() as conn:
            return {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
                for table in (enrollments, steps, messages)
            }
    finally:
        state.close()


def test_simulate_counts_what_the_daemon_enrols_and_changes_nothing(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    """Per sequence, simulate's enrolments equal the daemon's for the same orders; no POST,
    no database write."""
    _path, config = tools_config(tmp_path, sandbox)
    daemon = make_daemon(config)
    daemon.run_once()  # the daemon first sees the store: its baseline
    start = clock.now()
    completed = complete_orders(sandbox, clock, 6)
    db = tmp_path / "state.db"
    before, mtime = row_counts(db), db.stat().st_mtime_ns

    requests = record_requests(sandbox)
    tally = simulate(config, start)
    sandbox.store_faults.hook = None

    assert not [r for r in requests if r[0] != "GET"]
    assert requests, "simulate asked the store for orders"
    assert row_counts(db) == before
    assert db.stat().st_mtime_ns == mtime
    assert sandbox.sink.messages == []
    assert tally.orders_in_period == len(completed)

    daemon.poll_once()
    state = StateStore(config.database.sqlalchemy_url, migrate=False)
    with state.engine.connect() as conn:
        enrolled = Counter(r[0] for r in conn.execute(select(enrollments.c.sequence)).all())
    state.engine.dispose()
    simulated = {seq.name: seq.enrolled for seq in tally.sequences}
    assert simulated == {"thank-you": len(completed), "big-orders": enrolled["big-orders"]}
    assert simulated["thank-you"] == enrolled["thank-you"]
    big = next(seq for seq in tally.sequences if seq.name == "big-orders")
    assert big.enrolled + big.rejected == len(completed)
    assert big.enrolled > 0 and big.rejected > 0  # the conditions really split the orders


def test_simulate_sorts_each_step_by_what_would_stop_it(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock
) -> None:
    """A survey-guarded step is "depends on the survey"; a country guard is judged now."""
    _path, config = tools_config(tmp_path, sandbox)
    start = clock.now()
    complete_orders(sandbox, clock, 6)
    tally = simulate(config, start)
    by_step = {(s.sequence, s.step): s for seq in tally.sequences for s in seq.steps}
    big = next(seq for seq in tally.sequences if seq.name == "big-orders")
    assert by_step[("thank-you", "thank-you")].would_send == 6
    assert by_step[("thank-you", "check-in")].would_send == 6
    assert by_step[("big-orders", "survey")].would_send == big.enrolled
    assert by_step[("big-orders", "sorry")].depends_on_survey == big.enrolled
    assert by_step[("big-orders", "sorry")].would_send == 0
    local = by_step[("big-orders", "local-thanks")]
    assert local.would_send + local.guarded == big.enrolled
    assert tally.messages == sum(s.would_send for s in by_step.values())


def test_simulate_leaves_out_orders_completed_before_since(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock
) -> None:
    """The seeded history (completed 9 to 21 days ago) counts only when --since reaches it."""
    _path, config = tools_config(tmp_path, sandbox)
    assert simulate(config, clock.now() - timedelta(days=1)).orders_in_period == 0
    assert simulate(config, clock.now() - timedelta(days=30)).orders_in_period == 9
