"""``make demo``: the real daemon against the sandbox store and mail sink, on a fast clock.

Everything runs in one process on 127.0.0.1: the sandbox servers, the daemon with its
APScheduler jobs, and a "shop floor" thread that completes, refunds and cancels orders the way a
busy afternoon would. No credentials, no internet.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from wcfollowup.core.clock import ScaledClock

if TYPE_CHECKING:
    from wcfollowup.sandbox import ReceivedMail, Sandbox
    from wcfollowup.service.daemon import Daemon

DEMO_SETTINGS = """\
# Demo delays are hours, not days, so the whole story fits in a minute.
poll:
  interval: 5s
dispatch:
  interval: 1s
delivery:
  status: delivered
  assume_after: 5d
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 30m
        template: thank-you
  - name: after-delivery
    steps:
      - name: survey
        kind: survey
        after: {delivered: 1h}
      - name: owner-alert
        to: owner
        template: low-score-alert
        after: {delivered: 4h}
        only_if: {survey_score_at_most: 3}
      - name: review
        kind: review
        after: {delivered: 4h}
        skip_if: {survey_score_at_most: 3}
  - name: reward
    steps:
      - name: coupon
        kind: coupon
        after: 2h
        coupon:
          amount: 10
          expires_in: 30d
          prefix: TERIMAKASIH
"""

KINDS = ("thank-you", "survey", "coupon", "review", "owner-alert")
SPEED = 360.0


def run_demo(speed: float = SPEED, timeout: float = 90.0) -> int:
    from wcfollowup.config import load_config
    from wcfollowup.db.state import StateStore
    from wcfollowup.sandbox import Sandbox
    from wcfollowup.service.daemon import Daemon
    from wcfollowup.service.logs import configure_logging
    from wcfollowup.tools.log_view import make_console, print_log

    console = make_console()
    clock = ScaledClock(speed=speed)
    workdir = Path(tempfile.mkdtemp(prefix="wcfollowup-demo-"))
    configure_logging(json=False)
    try:
        with Sandbox(clock, timezone="Asia/Jakarta") as sandbox:
            sandbox.store.register_status("delivered")
            config_path = workdir / "demo.yaml"
            config_path.write_text(
                "# Written by `wcfollowup demo`: the sandbox store and mail sink, a fast clock.\n"
                + sandbox.config_yaml(
                    workdir / "state.db", name="Toko Batik Sari (sandbox)", language="id"
                )
                + DEMO_SETTINGS,
                encoding="utf-8",
            )
            config = load_config(config_path, env=sandbox.config_env())
            console.rule(f"sandbox store {sandbox.store_url}  ·  mail sink {sandbox.sendgrid_host}")
            console.print(
                f"clock runs {speed:g}x: an hour passes in {3600 / speed:.0f} s. "
                f"Config: {config_path}"
            )
            daemon = Daemon(config, clock)
            stop = threading.Event()
            runner = threading.Thread(target=daemon.run_forever, args=(stop,), name="daemon")
            runner.start()
            try:
                floor = ShopFloor(sandbox, daemon, console)
                ok = floor.run(deadline=time.monotonic() + timeout)
                time.sleep(1.5)  # let the last dispatch tick record its outcome
            finally:
                stop.set()
                runner.join()
            state = StateStore(config.database.sqlalchemy_url)
            rows = state.messages()
            state.close()
            _show_examples(sandbox, console)
            print_log(rows, config.store.tz, console)
            counts = {kind: len(floor.mails(kind)) for kind in KINDS}
            statuses = [r.status for r in rows]
            console.print(
                "Reached the mail sink: "
                + ", ".join(f"{n} {kind}" for kind, n in counts.items())
                + f"; log: {statuses.count('answered')} survey answer(s), "
                f"{statuses.count('redeemed')} coupon redemption(s)."
            )
            console.print(
                "Try it with your own config: `wcfollowup sandbox` keeps this store running."
            )
            duplicates = _duplicates(sandbox)
            if duplicates:
                console.print(f"[red]duplicate emails: {duplicates}[/]")
            return 0 if ok and not duplicates else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _duplicates(sandbox: Sandbox) -> list[str]:
    seen: dict[str, int] = {}
    for mail in sandbox.sink.messages:
        key = str(mail.custom_args.get("wcf_step_id"))
        seen[key] = seen.get(key, 0) + 1
    return [key for key, n in seen.items() if n > 1]


def _show_examples(sandbox: Sandbox, console: Console) -> None:
    shown: set[str] = set()
    for mail in sandbox.sink.messages:
        kind = str(mail.custom_args.get("wcf_step"))
        if kind in shown:
            continue
        shown.add(kind)
        console.rule(f"{kind}, as {mail.to[0]} reads it: {mail.subject}")
        lines = [line for line in mail.text.splitlines() if line.strip()]
        console.print("\n".join(lines[:14]), markup=False, highlight=False)


SHOPPERS = (
    ("siti", [(11, 1), (15, 2)], 5),
    ("nurul", [(13, 1)], 2),
    ("putu", [(14, 2), (16, 1)], 4),
    ("farah_guest", [(12, 1)], None),
    ("andre", [(15, 3)], 5),
    ("tan", [(16, 1)], None),
)
"""(customer, items, survey score they give or None for no answer)."""


class ShopFloor:
    """A busy afternoon at the shop, and customers who read their email."""

    def __init__(self, sandbox: Sandbox, daemon: Daemon, console: Console) -> None:
        self.sandbox = sandbox
        self.daemon = daemon
        self.console = console
        self.store = sandbox.store

    def mails(self, kind: str) -> list[ReceivedMail]:
        return [m for m in self.sandbox.sink.messages if m.custom_args.get("wcf_step") == kind]

    def run(self, deadline: float) -> bool:
        time.sleep(1.0)  # let the daemon see the store first: the seeded orders are history
        history = len(self.store.orders_ids(status="completed"))
        self.console.print(f"The store has {history} completed orders from before: history.")
        self.store.add_review(11, "siti.rahmawati@example.test")
        self.console.print("  Siti already reviewed product 11 on the shop: not asked again")
        orders = {
            who: int(self.store.create_order(customer=who, items=items)["id"])
            for who, items, _ in SHOPPERS
        }
        *completing, cancelled = orders.values()
        for order_id in completing:
            self.store.complete(order_id)
        self.store.cancel(cancelled)
        self.console.print(f"  completed orders {completing}; cancelled {cancelled}")
        time.sleep(6.0)  # the daemon enrols them
        refunded = orders["farah_guest"]
        self.store.refund(refunded)
        self.console.print(f"  refunded order {refunded} before anything was due: it gets nothing")
        for order_id in completing:
            if order_id != refunded:
                self.store.set_status(order_id, "delivered")
        self.console.print("  the courier delivered the rest")
        customers = len(completing) - 1
        if not self._wait(lambda: len(self.mails("survey")) >= customers, deadline):
            return self._gave_up("surveys")
        self._answer_surveys()
        if not self._wait(lambda: len(self.mails("coupon")) >= customers, deadline):
            return self._gave_up("coupons")
        self._redeem_a_coupon()
        low = sum(1 for _, _, score in SHOPPERS if score is not None and score <= 3)
        reviews = customers - low
        done = self._wait(
            lambda: (
                len(self.mails("review")) >= reviews
                and len(self.mails("owner-alert")) >= low
                and any(m.status == "redeemed" for m in self.daemon.state.messages())
            ),
            deadline,
        )
        return done or self._gave_up("reviews, owner alerts and the redemption")

    def _answer_surveys(self) -> None:
        import requests

        signer = self.daemon.signer
        assert signer is not None
        scores = {self.store.get(oid)["billing"]["email"]: s for oid, s in self._scores()}
        for mail in self.mails("survey"):
            score = scores.get(mail.to[0])
            if score is None:
                continue
            for link in re.findall(r'href="(http[^"]+/survey/[^"]+)"', mail.html):
                token = link.rsplit("/", 1)[1]
                if signer.read_survey(token, self.daemon.clock.now()).score == score:
                    requests.get(link, timeout=10)  # the page; a mail scanner would stop here
                    requests.post(link, timeout=10)  # the customer's click records it
                    if score <= 3:
                        requests.post(
                            link + "/comment",
                            data={"comment": "Paketnya datang basah, kainnya luntur."},
                            timeout=10,
                        )
                    self.console.print(f"  {mail.to[0]} rated the order {score}/5 on the page")
                    break

    def _scores(self) -> list[tuple[int, int | None]]:
        ids = sorted(self.store.orders_ids())[-len(SHOPPERS) :]
        return [(oid, score) for oid, (_, _, score) in zip(ids, SHOPPERS, strict=True)]

    def _redeem_a_coupon(self) -> None:
        mail = next(m for m in self.mails("coupon") if m.to[0].startswith("siti"))
        code = re.search(r"TERIMAKASIH-[A-Z0-9]+", mail.text)
        assert code is not None
        order = self.store.create_order(customer="siti", items=[(16, 2)], coupons=[code.group()])
        self.store.complete(int(order["id"]))
        self.console.print(f"  Siti came back and used {code.group()} on order {order['id']}")

    def _wait(self, done: Callable[[], bool], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(0.5)
        return done()

    def _gave_up(self, what: str) -> bool:
        self.console.print(f"[red]the demo timed out waiting for {what}[/]")
        return False
