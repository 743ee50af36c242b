"""Owner output is inert: what strangers wrote cannot drive the owner's terminal or spreadsheet.

A survey comment, an order number (stores with an order-number plugin choose it) and a
redeemed amount as the store wrote it reach ``log``, ``queue`` and ``stats``. They carry
terminal escapes (CSI, OSC 8 links, OSC 52 clipboard writes), a carriage return, a bidi override
and an 8-bit CSI; the comment starts like a spreadsheet formula.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import select, update
from support import drain, sandbox_env
from tools_support import complete_orders, tools_config
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.coupons import CouponBook, Redemption
from wcfollowup.db.schema import coupons, enrollments, steps
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.tools.inert import csv_cell, for_terminal, json_text
from wcfollowup.tools.log_query import LogFilter, read_log
from wcfollowup.tools.log_view import print_lines

BODY = """\
sequences:
  - name: after-sale
    steps:
      - name: survey
        kind: survey
        after: 0s
      - name: coupon
        kind: coupon
        after: 1m
        coupon: {amount: 10}
      - name: later
        after: 10d
        template: thank-you
"""

COMMENT = (
    '=HYPERLINK("http://evil.example","ok")\x1b[2J\x1b[1;1H'
    "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07"
    "\x1b]52;c;ZXZpbA==\x07\rforged line \u202egnp.exe\x9b31m end"
)
NUMBER = "-2+3\x1b[31m\u2066"
AMOUNT = "@SUM(1)\x1b]0;title\x07 Rp 9.000"
BIDI = set("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def assert_inert(text: str) -> None:
    """No control character but newline, and no bidi control, anywhere in ``text``."""
    bad = sorted(
        {
            f"U+{ord(c):04X}"
            for c in text
            if (unicodedata.category(c) == "Cc" and c != "\n") or c in BIDI
        }
    )
    assert not bad, f"raw control characters in the output: {bad}"


def hostile_shop(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> tuple[Path, Daemon, int]:
    path, config = tools_config(tmp_path, sandbox, BODY)
    daemon = make_daemon(config)
    daemon.run_once()
    [order_id] = complete_orders(sandbox, clock, 1)
    daemon.poll_once()
    clock.advance(timedelta(minutes=5))
    drain(daemon)
    engine = daemon.state.engine
    with engine.begin() as conn:
        survey = conn.execute(select(steps.c.id).where(steps.c.step == "survey")).scalar_one()
        code = conn.execute(select(coupons.c.code)).scalar_one()
        conn.execute(update(enrollments).values(order_number=NUMBER))
    book = SurveyBook(daemon.state)
    book.record_survey_score(survey, order_id, 2, clock.now())
    assert book.add_survey_comment(survey, COMMENT, clock.now())
    used = Redemption(code, 987654, NUMBER, AMOUNT)  # an order older than the stats period
    assert CouponBook(daemon.state).redeem([used], clock.now()) == 1
    return path, daemon, order_id


def test_log_queue_and_stats_print_no_control_characters(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    path, daemon, _order = hostile_shop(tmp_path, sandbox, clock, make_daemon)
    runner = CliRunner()
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}

    table = runner.invoke(app, ["log"], env=env)
    assert table.exit_code == 0, table.output
    assert "\\x1b[2J" in table.output  # shown, as an escape: the owner sees what was sent
    assert_inert(table.output)

    followed = io.StringIO()
    rows = read_log(daemon.state.engine, LogFilter())
    print_lines(rows, daemon.config.store.tz, Console(file=followed, width=400))
    assert "commented" in followed.getvalue() and "redeemed" in followed.getvalue()
    assert_inert(followed.getvalue())

    queued = runner.invoke(app, ["queue"], env=env)
    assert queued.exit_code == 0, queued.output
    assert "#-2+3\\x1b[31m\\u2066" in queued.output
    assert_inert(queued.output)

    stats = runner.invoke(app, ["stats", "--since", "1000d"], env=env)
    assert stats.exit_code == 0, stats.output
    assert "\\x1b]0;title\\x07 Rp 9.000" in stats.output
    assert_inert(stats.output)


def test_csv_cells_are_never_formulas_and_json_stays_exact(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    path, _daemon, _order = hostile_shop(tmp_path, sandbox, clock, make_daemon)
    runner = CliRunner()
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}

    as_csv = runner.invoke(app, ["log", "--csv"], env=env)
    assert as_csv.exit_code == 0, as_csv.output
    assert_inert(as_csv.output)
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    [commented] = [r for r in rows if r["status"] == "commented"]
    assert commented["reason"] == "'" + for_terminal(COMMENT)
    assert commented["reason"].startswith("'=HYPERLINK(")
    [redeemed] = [r for r in rows if r["status"] == "redeemed"]
    assert redeemed["order_number"] == "'" + for_terminal(NUMBER)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell

    as_json = runner.invoke(app, ["log", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert_inert(as_json.output)
    records = [json.loads(line) for line in as_json.output.splitlines()]
    assert [r["reason"] for r in records if r["status"] == "commented"] == [COMMENT]

    queued = runner.invoke(app, ["queue", "--json"], env=env)
    assert queued.exit_code == 0, queued.output
    assert_inert(queued.output)
    assert {item["order_number"] for item in json.loads(queued.output)} == {NUMBER}

    stats = runner.invoke(app, ["stats", "--since", "1000d", "--json"], env=env)
    assert stats.exit_code == 0, stats.output
    assert_inert(stats.output)
    assert json.loads(stats.output)["coupons"]["revenue_not_found_in_store"] == [AMOUNT]


def test_the_helpers() -> None:
    assert for_terminal("a\x1b[31mb\r\n\t\u202ec\x9b") == "a\\x1b[31mb\\r\\n\\t\\u202ec\\x9b"
    assert for_terminal("line 1\nline\t2\x07", multiline=True) == "line 1\nline\t2\\x07"
    assert for_terminal("Siti Rahayu — Pesanan №12 ✓") == "Siti Rahayu — Pesanan №12 ✓"
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", "ok", 5, None)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@A1",
        "\\t=1",
        "\\r=1",
        "ok",
        "5",
        "",
    ]
    value = {"c": COMMENT, "n": "Budi Đặng 北京"}
    text = json_text(value)
    assert json.loads(text) == value and "Budi Đặng 北京" in text
    assert_inert(text)


def test_preview_prints_the_customers_name_inert(tmp_path: Path, sandbox: Sandbox) -> None:
    """The text part keeps its lines; what the customer typed cannot drive the terminal."""
    path, _config = tools_config(tmp_path, sandbox)
    order_id = sandbox.store.orders_ids(status="completed")[0]
    record = sandbox.store.orders[order_id]
    hostile = "Siti\x1b]52;c;ZXZpbA==\x07\x1b[2J\u202e"
    record.customer = dataclasses.replace(record.customer, first_name=hostile)
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    shown = CliRunner().invoke(
        app,
        ["preview", str(order_id), "--step", "thank-you", "--html-out", str(tmp_path / "p.html")],
        env=env,
    )
    assert shown.exit_code == 0, shown.output
    assert "Siti\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\u202e" in shown.output
    assert len(shown.output.splitlines()) > 5  # the text part is still shown line by line
    assert_inert(shown.output)
