"""``make demo``: the real daemon against the sandbox store and mail sink, on a fast clock.

Everything runs in one process on 127.0.0.1: the sandbox servers, the daemon with its
APScheduler jobs, and a "shop floor" thread that completes, refunds and cancels orders the way a
busy afternoon would. No credentials, no internet.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from wcfollowup.clock import ScaledClock

if TYPE_CHECKING:
    from wcfollowup.sandbox import Sandbox

DEMO_SETTINGS = """\
poll:
  interval: 5s
dispatch:
  interval: 1s
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 30m
        template: thank-you
"""


def run_demo(speed: float = 120.0, timeout: float = 75.0) -> int:
    from wcfollowup.config import load_config
    from wcfollowup.daemon import Daemon
    from wcfollowup.db.state import StateStore
    from wcfollowup.log_view import make_console, print_log
    from wcfollowup.logs import configure_logging
    from wcfollowup.sandbox import Sandbox

    console = make_console()
    clock = ScaledClock(speed=speed)
    workdir = Path(tempfile.mkdtemp(prefix="wcfollowup-demo-"))
    configure_logging(json=False)
    try:
        with Sandbox(clock, timezone="Asia/Jakarta") as sandbox:
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
                f"clock runs {speed:g}x: a 30-minute delay passes in "
                f"{30 * 60 / speed:.0f} s. Config: {config_path}"
            )
            daemon = Daemon(config, clock)
            stop = threading.Event()
            runner = threading.Thread(target=daemon.run_forever, args=(stop,), name="daemon")
            runner.start()
            try:
                expected = _shop_floor(sandbox, console, config.poll.interval.total_seconds())
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if len(sandbox.sink.messages) >= expected:
                        break
                    time.sleep(0.5)
                time.sleep(1.5)  # let the last dispatch tick record its outcome
            finally:
                stop.set()
                runner.join()
            state = StateStore(config.database.sqlalchemy_url)
            rows = state.messages()
            state.close()
            if sandbox.sink.messages:
                first = sandbox.sink.messages[0]
                console.rule(f"one of them, as the customer reads it: {first.subject}")
                console.print(first.text, markup=False, highlight=False)
            print_log(rows, config.store.tz, console)
            sent = [r for r in rows if r.status == "sent"]
            console.print(
                "Try it with your own config: `wcfollowup sandbox` keeps this store running."
            )
            console.print(
                f"{len(sandbox.sink.messages)} email(s) reached the mail sink; "
                f"{len(sent)} thank-you(s) logged as sent; expected {expected}."
            )
            return 0 if len(sent) == expected == len(sandbox.sink.messages) else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


SHOPPERS = (
    ("siti", [(11, 1), (15, 2)]),
    ("nurul", [(13, 1)]),
    ("putu", [(14, 2), (16, 1)]),
    ("farah_guest", [(12, 1)]),
    ("andre", [(15, 3)]),
    ("tan", [(16, 1)]),
)


def _shop_floor(sandbox: Sandbox, console: Console, poll_interval: float) -> int:
    """Complete, refund and cancel orders while the daemon runs; return the thank-yous due."""
    store = sandbox.store
    time.sleep(1.0)  # let the daemon see the store first: the seeded orders are history
    history = len(store.orders_ids(status="completed"))
    console.print(f"The store has {history} completed orders from before: those are history.")
    new_orders = [store.create_order(customer=who, items=items)["id"] for who, items in SHOPPERS]
    *to_complete, to_cancel = new_orders
    for order_id in to_complete:
        store.complete(order_id)
        console.print(f"  completed order {order_id}")
        time.sleep(0.3)
    store.cancel(to_cancel)
    console.print(f"  cancelled order {to_cancel} (never completed: nothing to send)")
    time.sleep(poll_interval + 1.0)  # the daemon enrols the completed orders
    refunded = to_complete[-1]
    store.refund(refunded)
    console.print(f"  refunded order {refunded} before its thank-you was due: it gets none")
    return len(to_complete) - 1
