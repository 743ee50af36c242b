"""Crash bench: SIGKILL the real daemon at random moments, restart it, count what customers got.

    .venv/bin/python bench/chaos.py                          # 300 orders, 50 kills
    .venv/bin/python bench/chaos.py --orders 40 --kills 8    # a quick run (what the test does)

What happens, in one run:

1. A seeded sandbox (store and mail sink) starts in this process on the real clock, because the
   daemon is another process (``python -m wcfollowup.service --config ...``) on the system clock.
   Every order gets a thank-you, a survey and a review request (one sequence) and a personal
   coupon (another), all due within seconds, so steps are always in flight.
2. Some sends and coupon POSTs are held at the sandbox's fault seam for a moment, so that about
   half the kills land while a request is in flight: the dangerous window between "sending" being
   committed and the outcome being recorded.
3. Orders are completed in a steady stream while the daemon is killed (SIGKILL, no warning) at
   random moments and restarted at once: the kernel releases its flock, so the new one starts.
4. A last daemon runs without kills until every step is final, then stops on SIGTERM.

The verdict comes from the sink's and the store's own records, not the daemon's: no email twice
(by ``custom_args["wcf_step_id"]``), every planned step sent, failed, skipped or ``uncertain``
(at most one ``uncertain`` per kill), every coupon created once. ``problems`` lists what broke
the bar ("crashes" in ../shared/BRIEF.md); the exit status is 0 either way: it is a report.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcfollowup.core.clock import SystemClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.daemon_process import DaemonProcess

SEQUENCES = """\
poll:
  interval: 5s
  overlap: 2m
dispatch:
  interval: 1s
  batch_size: 20
  # One send at a time, so a kill interrupts at most one: the bar is one uncertain per kill.
  workers: 1
sequences:
  - name: after-purchase
    steps:
      - {name: thank-you, after: 0s, template: thank-you, window: always}
      - {name: survey, kind: survey, after: 2s, window: always}
      - {name: review, kind: review, after: 4s, window: always}
  - name: reward
    steps:
      - name: coupon
        kind: coupon
        after: 1s
        window: always
        coupon: {discount_type: percent, amount: 10, expires_in: 30d, prefix: TERIMAKASIH}
"""
STEPS_PER_ORDER = 4
SEQUENCES_PER_ORDER = 2

OPEN_STATES = ("waiting", "pending", "claimed", "sending")
# Synthetic guests from this number on have no order history in the seeded store.
FIRST_GUEST = 70_000
# The sandbox's order timestamps have one-second resolution: an order completed in the second of
# the daemon's first look would count as history.
TIMESTAMP_RESOLUTION = 1.1


class HeldRequests:
    """The fault seam's hook: holds a share of sends and coupon POSTs so kills land mid-request."""

    def __init__(self, sandbox: Sandbox, share: float, seconds: float, rng: random.Random) -> None:
        self.share = share
        self.seconds = seconds
        self.rng = rng
        self.mail_app: ASGIApp = sandbox.mail_faults.app
        self.store_app: ASGIApp = sandbox.store_faults.app
        self.in_flight = 0
        self.held = 0
        self._lock = threading.Lock()
        sandbox.mail_faults.hook = self._mail_hook
        sandbox.store_faults.hook = self._store_hook

    def _mail_hook(self, scope: Scope) -> ASGIApp | None:
        if scope["path"].endswith("/mail/send") and self._draw():
            return self._hold(self.mail_app)
        return None

    def _store_hook(self, scope: Scope) -> ASGIApp | None:
        if scope["method"] == "POST" and scope["path"].endswith("/coupons") and self._draw():
            return self._hold(self.store_app)
        return None

    def _draw(self) -> bool:
        with self._lock:
            return self.rng.random() < self.share

    def _hold(self, app: ASGIApp) -> ASGIApp:
        async def held(scope: Scope, receive: Receive, send: Send) -> None:
            with self._lock:
                self.in_flight += 1
                self.held += 1
            try:
                # The whole request is in before the pause: if the daemon dies now, the
                # provider still acts on it, as SendGrid or WooCommerce would.
                body = await _read_body(receive)
                await asyncio.sleep(self.seconds)
                await app(scope, _replay(body), send)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return held

    def wait_in_flight(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.in_flight:
                    return True
            time.sleep(0.01)
        return False


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


@dataclass
class ChaosReport:
    orders: int = 0
    kills: int = 0
    kills_in_flight: int = 0
    held_requests: int = 0
    steps_expected: int = 0
    steps: int = 0
    states: dict[str, int] = field(default_factory=dict)
    mails: int = 0
    duplicates: int = 0
    sent_not_in_sink: int = 0
    in_sink_not_recorded: int = 0
    uncertain_delivered: int = 0
    coupon_steps: int = 0
    store_coupons: int = 0
    coupon_duplicates: int = 0
    coupons_missing: int = 0
    restarts_refused: int = 0
    final_exit_code: int | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def uncertain(self) -> int:
        return self.states.get("uncertain", 0)

    @property
    def sent(self) -> int:
        return self.states.get("sent", 0)

    def lines(self) -> list[str]:
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
        verdict = "PASS" if not self.problems else "FAIL"
        return [
            f"orders {self.orders}, kills {self.kills} ({self.kills_in_flight} with a request "
            f"in flight, {self.held_requests} requests held), {self.seconds:.1f} s",
            f"steps {self.steps} of {self.steps_expected} planned: {states}",
            f"sent {self.sent}, uncertain {self.uncertain} ({self.uncertain_delivered} of them "
            f"reached the sink), mails in the sink {self.mails}, duplicates {self.duplicates}",
            f"recorded sent but not in the sink {self.sent_not_in_sink}; in the sink but not "
            f"recorded sent/uncertain {self.in_sink_not_recorded}",
            f"coupon steps {self.coupon_steps}, store coupons {self.store_coupons}, "
            f"duplicated {self.coupon_duplicates}, missing {self.coupons_missing}",
            f"crashes bar: {verdict}" + "".join(f"\n  - {p}" for p in self.problems),
        ]


def run_chaos(
    *,
    orders: int,
    kills: int,
    seed: int = 1,
    workdir: Path | None = None,
    hold_share: float = 0.3,
    hold_seconds: float = 0.6,
    life_seconds: tuple[float, float] = (0.8, 3.5),
    settle_timeout: float = 120.0,
    echo: Callable[[str], None] | None = None,
) -> ChaosReport:
    """One crash run; ``life_seconds`` bounds how long each daemon lives before its SIGKILL."""
    say = echo or (lambda _line: None)
    rng = random.Random(seed)
    report = ChaosReport(orders=orders, steps_expected=orders * STEPS_PER_ORDER)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wcf-chaos-", dir=workdir) as folder:
        db_path = Path(folder) / "state.db"
        with Sandbox(SystemClock(), timezone="Asia/Jakarta") as sandbox:
            config = Path(folder) / "config.yaml"
            config.write_text(sandbox.config_yaml(db_path) + SEQUENCES, encoding="utf-8")
            env = sandbox.config_env()
            held = HeldRequests(sandbox, hold_share, hold_seconds, rng)
            daemon = DaemonProcess(config, env)
            lives = [daemon]
            try:
                if daemon.wait_for("poll done", 30) is None:
                    report.problems.append("the first daemon never polled:\n" + _tail(daemon))
                    return report
                time.sleep(TIMESTAMP_RESOLUTION)
                stream = OrderStream(sandbox, orders, rng, spread=sum(life_seconds) / 2 * kills)
                stream.start()
                for kill in range(kills):
                    if rng.random() < 0.5 and held.wait_in_flight(timeout=life_seconds[1]):
                        time.sleep(rng.uniform(0, hold_seconds))
                        in_flight = held.in_flight > 0
                    else:
                        time.sleep(rng.uniform(*life_seconds))
                        in_flight = held.in_flight > 0
                    daemon.kill()
                    report.kills += 1
                    report.kills_in_flight += in_flight
                    say(f"kill {kill + 1}/{kills}{' (request in flight)' if in_flight else ''}")
                    daemon = DaemonProcess(config, env)
                    lives.append(daemon)
                stream.join()
                # The last life runs undisturbed; holding requests only slows it down now.
                sandbox.mail_faults.hook = None
                sandbox.store_faults.hook = None
                report.held_requests = held.held
                _settle(db_path, report.steps_expected, settle_timeout)
                report.final_exit_code = daemon.stop()
            finally:
                for life in lives:
                    if life.proc.poll() is None:
                        life.kill()
            report.restarts_refused = sum(
                1 for life in lives if any("already running" in line for line in life.lines)
            )
            _judge(report, sandbox, db_path, lives)
    report.seconds = time.monotonic() - started
    return report


class OrderStream(threading.Thread):
    """Completes ``count`` orders evenly over ``spread`` seconds, each for a new guest."""

    def __init__(self, sandbox: Sandbox, count: int, rng: random.Random, spread: float) -> None:
        super().__init__(name="order-stream", daemon=True)
        self.sandbox = sandbox
        self.count = count
        self.gap = spread / max(count, 1)
        self.items = [[(11, 1)], [(12, 2)], [(13, 1), (15, 1)], [(14, 1)]]
        self.rng = rng
        self.order_ids: list[int] = []

    def run(self) -> None:
        store = self.sandbox.store
        for n in range(self.count):
            items = self.items[n % len(self.items)]
            order = store.create_order(customer=f"shopper{FIRST_GUEST + n}", items=items)
            store.complete(int(order["id"]))
            self.order_ids.append(int(order["id"]))
            time.sleep(self.gap)


def _settle(db_path: Path, expected_steps: int, timeout: float) -> None:
    """Wait until every planned step is final (or the timeout): the last daemon's work is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _read_only(db_path) as conn:
            total, still_open = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(state IN (?, ?, ?, ?)), 0) FROM steps",
                OPEN_STATES,
            ).fetchone()
        if total >= expected_steps and not still_open:
            return
        time.sleep(0.5)


class _read_only:
    """A short read-only connection to the daemon's database (WAL lets us read meanwhile)."""

    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *_exc: object) -> None:
        self.conn.close()


def _judge(
    report: ChaosReport, sandbox: Sandbox, db_path: Path, lives: list[DaemonProcess]
) -> None:
    """Figures and problems from the sink's and the store's records, against the database."""
    problems = report.problems
    with _read_only(db_path) as conn:
        step_rows = conn.execute("SELECT id, kind, state FROM steps").fetchall()
        enrolled = conn.execute("SELECT COUNT(*) FROM enrollments").fetchone()[0]
        planned = dict(conn.execute("SELECT step_id, code FROM coupons").fetchall())
        uncertain_logged = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE status = 'uncertain'"
        ).fetchone()[0]
        sent_logged = Counter(
            r[0] for r in conn.execute("SELECT step_id FROM messages WHERE status = 'sent'")
        )
    state_of = {int(r[0]): str(r[2]) for r in step_rows}
    report.steps = len(step_rows)
    report.states = dict(Counter(state_of.values()))

    delivered = Counter(int(m.custom_args["wcf_step_id"]) for m in sandbox.sink.messages)
    report.mails = sum(delivered.values())
    report.duplicates = sum(n - 1 for n in delivered.values() if n > 1)
    report.sent_not_in_sink = sum(
        1 for step_id, state in state_of.items() if state == "sent" and step_id not in delivered
    )
    report.in_sink_not_recorded = sum(
        1 for step_id in delivered if state_of.get(step_id) not in ("sent", "uncertain")
    )
    report.uncertain_delivered = sum(
        1 for step_id, state in state_of.items() if state == "uncertain" and step_id in delivered
    )

    coupon_steps = {int(r[0]) for r in step_rows if r[1] == "coupon"}
    store_codes = Counter(c.code.lower() for c in sandbox.store.coupons.values())
    per_order = Counter(c.description for c in sandbox.store.coupons.values())
    report.coupon_steps = len(coupon_steps)
    report.store_coupons = sum(store_codes.values())
    report.coupon_duplicates = sum(n - 1 for n in store_codes.values() if n > 1) + sum(
        n - 1 for n in per_order.values() if n > 1
    )
    report.coupons_missing = sum(
        1
        for step_id in coupon_steps
        if state_of.get(step_id) == "sent" and store_codes.get(planned.get(step_id, ""), 0) != 1
    )

    if enrolled != report.orders * SEQUENCES_PER_ORDER:
        problems.append(f"{enrolled} enrolments for {report.orders} orders × {SEQUENCES_PER_ORDER}")
    if report.steps != report.steps_expected:
        problems.append(f"{report.steps} steps planned, {report.steps_expected} expected")
    still_open = sum(report.states.get(s, 0) for s in OPEN_STATES)
    if still_open:
        problems.append(f"{still_open} step(s) never finished: {report.states}")
    if report.duplicates:
        problems.append(f"{report.duplicates} email(s) delivered twice")
    if any(n > 1 for n in sent_logged.values()):
        problems.append("a step was logged as sent more than once")
    if report.sent_not_in_sink:
        problems.append(f"{report.sent_not_in_sink} step(s) recorded sent never reached the sink")
    if report.in_sink_not_recorded:
        problems.append(f"{report.in_sink_not_recorded} delivered email(s) not recorded")
    if report.uncertain > report.kills:
        problems.append(f"{report.uncertain} uncertain steps for {report.kills} kills")
    if uncertain_logged != report.uncertain:
        problems.append(f"{uncertain_logged} uncertain log lines for {report.uncertain} steps")
    if report.coupon_duplicates:
        problems.append(f"{report.coupon_duplicates} coupon(s) created more than once")
    if report.coupons_missing:
        problems.append(f"{report.coupons_missing} sent coupon email(s) without their coupon")
    if report.restarts_refused:
        problems.append(f"{report.restarts_refused} restart(s) refused as 'already running'")
    if report.final_exit_code not in (0, None):
        problems.append(
            f"the last daemon exited with {report.final_exit_code}:\n{_tail(lives[-1])}"
        )
    crashed = [e for life in lives for e in life.events() if e.get("event") == "step crashed"]
    if crashed:
        problems.append(f"{len(crashed)} step(s) crashed, e.g. {crashed[0]}")


def _tail(daemon: DaemonProcess, lines: int = 15) -> str:
    return "\n".join(daemon.lines[-lines:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = run_chaos(orders=args.orders, kills=args.kills, seed=args.seed, echo=print)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
