"""Retention also reaches follow-ups that never became due.

A step after ``{delivered: 1d}`` whose delivery never came (no ``assume_after``), or a step
scheduled further out than the retention, used to keep its enrolment's address forever. Now, once
it has waited longer than the retention, it is cancelled (logged, counted) and the address goes;
nothing is ever sent to the erased address. Follow-ups enrolled recently are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from support import drain, sandbox_env, write_engine_config
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db import privacy
from wcfollowup.db.schema import metadata, steps
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

BODY = """\
privacy: {retention: 365d}
delivery:
  status: delivered
sequences:
  - name: thanks
    steps:
      - name: thank-you
        template: thank-you
      - name: review
        template: thank-you
        after: {delivered: 1d}
  - name: anniversary
    steps:
      - name: next-year
        template: thank-you
        after: 400d
"""


def dump(daemon: Daemon) -> str:
    parts: list[str] = []
    with daemon.state.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts).lower()


def complete(sandbox: Sandbox, clock: FakeClock, daemon: Daemon, customer: str) -> str:
    order = sandbox.store.create_order(customer=customer, items=[(13, 1)])
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(int(order["id"]))
    clock.advance(timedelta(seconds=5))
    daemon.poll_once()
    drain(daemon)
    return str(order["billing"]["email"]).lower()


def test_steps_that_never_became_due_are_cancelled_and_their_data_purged(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    sandbox.store.register_status("delivered")
    path = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    daemon = make_daemon(load_config(path, env=sandbox_env(sandbox)))
    daemon.run_once()
    siti = complete(sandbox, clock, daemon, "siti")  # the parcel is never marked delivered
    assert daemon.state.step_states() == {"sent": 1, "waiting": 1, "pending": 1}

    clock.advance(timedelta(days=300))
    putu = complete(sandbox, clock, daemon, "putu")
    assert daemon.purge_once() == privacy.Purge()  # nothing has waited a year yet

    clock.advance(timedelta(days=66))  # siti's follow-ups: 366 days; putu's: 66
    purged = daemon.purge_once()

    assert purged is not None
    assert purged.enrollments == 2 and purged.steps_cancelled == 2
    text = dump(daemon)
    assert siti not in text and putu in text
    with daemon.state.engine.connect() as conn:
        rows = conn.execute(select(steps.c.step, steps.c.state).order_by(steps.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ("thank-you", "sent"),
        ("review", "cancelled"),
        ("next-year", "cancelled"),
        ("thank-you", "sent"),
        ("review", "waiting"),  # putu's: enrolled 66 days ago, kept
        ("next-year", "pending"),
    ]
    cancelled = [m for m in daemon.state.messages() if m.status == "cancelled"]
    assert {m.step for m in cancelled} == {"review", "next-year"}
    assert all(m.reason == privacy.RETENTION_CANCEL_REASON and m.recipient == "" for m in cancelled)

    # Siti's next-year step would have been due now: nothing goes to anyone for her.
    sent_before = len(sandbox.sink.messages)
    clock.advance(timedelta(days=40))
    drain(daemon)
    assert all(siti not in [a.lower() for a in m.to] for m in sandbox.sink.messages[sent_before:])
    assert daemon.purge_once() == privacy.Purge()


def test_check_says_when_a_step_comes_after_the_retention(tmp_path: Path, sandbox: Sandbox) -> None:
    path = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    checked = CliRunner().invoke(app, ["check"], env=env)
    assert checked.exit_code == 2
    assert (
        "step 'next-year' of sequence 'anniversary' comes 400d after completion, later than "
        "privacy.retention (365d)" in checked.output
    )
    assert "'review'" not in checked.output  # 1 day after delivery: fine
    sooner = write_engine_config(tmp_path / "config.yaml", sandbox, BODY.replace("400d", "300d"))
    assert CliRunner().invoke(app, ["check", "--config", str(sooner)], env=env).exit_code == 0
