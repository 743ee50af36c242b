"""``log``: each filter narrows, exports parse, ``--follow`` picks up new lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from support import drain, sandbox_env
from tools_support import complete_orders, tools_config
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.schema import messages
from wcfollowup.db.state import MessageRow
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.tools import queue
from wcfollowup.tools.log_query import LogFilter, follow_log, read_log
from wcfollowup.tools.log_view import TABLE_ROWS
from wcfollowup.tools.timespec import parse_point

BODY = """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
      - name: check-in
        after: 2d
        template: thank-you
"""


def logged(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> tuple[Path, Daemon, list[int]]:
    """Three thank-yous sent now; two days later the check-ins, one of them cancelled."""
    path, config = tools_config(tmp_path, sandbox, BODY)
    daemon = make_daemon(config)
    daemon.run_once()
    orders = complete_orders(sandbox, clock, 3)
    daemon.poll_once()
    drain(daemon)
    clock.advance(timedelta(days=2, hours=1))
    queue.cancel(daemon.state.engine, clock.now(), order=orders[0])
    drain(daemon)
    return path, daemon, orders


def test_each_filter_narrows(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    _path, daemon, orders = logged(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    everything = read_log(engine, LogFilter())
    assert len(everything) == 6
    email = sandbox.store.get(orders[1])["billing"]["email"]

    def pick(**kwargs: object) -> list[MessageRow]:
        return read_log(engine, LogFilter(**kwargs))  # type: ignore[arg-type]

    assert {r.order_id for r in pick(order=orders[1])} == {orders[1]}
    assert {r.recipient.lower() for r in pick(email=email.upper())} == {email.lower()}
    assert {r.step for r in pick(step="check-in")} == {"check-in"}
    assert pick(sequence="nope") == []
    assert [r.order_id for r in pick(status="cancelled")] == [orders[0]]
    assert len(pick(status="sent")) == 5
    latest = read_log(engine, LogFilter(), limit=2)
    assert [r.id for r in latest] == [r.id for r in everything[-2:]]


def test_since_as_a_duration_or_a_store_date(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    """``1d`` means the last day (the check-ins); a date is a day in store time."""
    _path, daemon, _orders = logged(tmp_path, sandbox, clock, make_daemon)
    engine, now, tz = daemon.state.engine, clock.now(), daemon.config.store.tz
    recent = read_log(engine, LogFilter(since=parse_point("1d", now, tz)))
    assert {r.step for r in recent} == {"check-in"}
    first_day = now.astimezone(tz).date() - timedelta(days=2)
    day = first_day.isoformat()
    that_day = read_log(
        engine,
        LogFilter(since=parse_point(day, now, tz), until=parse_point(day, now, tz, end=True)),
    )
    assert {r.step for r in that_day} == {"thank-you"}
    assert all(r.at.astimezone(tz).date() == first_day for r in that_day)


def test_follow_prints_only_new_lines(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    _path, daemon, orders = logged(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    last = read_log(engine, LogFilter())[-1].id
    batches: list[list[int]] = []

    def meanwhile(_seconds: float) -> None:  # instead of sleeping: the daemon does something
        queue.skip(engine, clock.now(), order=orders[0])
        complete_orders(sandbox, clock, 1)
        daemon.poll_once()
        drain(daemon)

    end = follow_log(
        engine,
        LogFilter(status="sent"),
        lambda rows: batches.append([r.id for r in rows]),
        after_id=last,
        sleep=meanwhile,
        rounds=2,
    )
    assert len(batches) == 1 and len(batches[0]) == 1  # the new thank-you, not the skip
    assert end == batches[0][0] > last


def test_json_and_csv_exports(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    path, _daemon, orders = logged(tmp_path, sandbox, clock, make_daemon)
    runner = CliRunner()
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    as_json = runner.invoke(app, ["log", "--json", "--status", "sent"], env=env)
    assert as_json.exit_code == 0, as_json.output
    records = [json.loads(line) for line in as_json.output.splitlines()]
    assert len(records) == 5 and {r["status"] for r in records} == {"sent"}
    assert all(r["at"].endswith("+07:00") for r in records)
    as_csv = runner.invoke(app, ["log", "--csv", "--order", str(orders[0])], env=env)
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert as_csv.output.startswith("id,at,order_id,")
    assert [r["status"] for r in rows] == ["sent", "cancelled"]
    table = runner.invoke(app, ["log", "--step", "check-in"], env=env)
    assert table.exit_code == 0
    assert "message log (3 rows" in table.output
    bad = runner.invoke(app, ["log", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2
    assert "2026-11-01" in bad.output


def test_a_long_log_shows_its_newest_page_and_says_how_to_see_more(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    """Issue 17: drawing 13,000 rows took 18.8 s. Unasked, the table shows the newest
    ``TABLE_ROWS`` and a note; ``--limit`` and the exports still give every row asked for."""
    path, daemon, _orders = logged(tmp_path, sandbox, clock, make_daemon)
    engine = daemon.state.engine
    with engine.connect() as conn:
        store_id = conn.execute(select(messages.c.store_id)).scalars().first()
    extra = TABLE_ROWS + 20
    with engine.begin() as conn:
        conn.execute(
            messages.insert(),
            [
                {
                    "at": clock.now(),
                    "store_id": store_id,
                    "order_id": 900_000 + i,
                    "order_number": f"N{i}",
                    "recipient": f"r{i}@example.test",
                    "sequence": "thank-you",
                    "step": "thank-you",
                    "status": "sent",
                    "reason": "",
                }
                for i in range(extra)
            ],
        )
    total = 6 + extra
    runner = CliRunner()
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}

    table = runner.invoke(app, ["log"], env=env)
    assert table.exit_code == 0, table.output
    assert f"message log ({TABLE_ROWS} rows" in table.output
    assert f"#N{extra - 1}" in table.output  # the newest row is there
    assert f"Showing the newest {TABLE_ROWS} of {total} rows" in table.output
    assert "--limit" in table.output

    narrowed = runner.invoke(app, ["log", "--step", "check-in"], env=env)
    assert "message log (3 rows" in narrowed.output and "Showing" not in narrowed.output

    asked = runner.invoke(app, ["log", "--limit", str(TABLE_ROWS + 5)], env=env)
    assert f"message log ({TABLE_ROWS + 5} rows" in asked.output
    assert "Showing" not in asked.output

    as_json = runner.invoke(app, ["log", "--json"], env=env)
    assert len(as_json.output.splitlines()) == total
