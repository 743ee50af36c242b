"""One order that cannot be read, planned or stored never stops the others.

WooCommerce order ids are BIGINT UNSIGNED; a plugin can write anything into an order. Before,
one such order made every poll fail, forever, on it: nothing after it was ever enrolled. Now it
is skipped with a log line naming it and a metric, in the same poll the good orders are enrolled.
The store's answers are rewritten on their way out (the sandbox's fault seam), so the daemon
reads them exactly as it would read a real store's; both databases run the same checks.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.testing import capture_logs
from support import sandbox_env, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.schema import enrollments
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HUGE_ID = 2**64 - 1
ORDER_LIST = re.compile(r"/wc/v3/orders$")
ONE_SEQUENCE = """\
poll:
  interval: 60s
  page_size: 3
sequences:
  - name: thank-you
    steps:
      - {name: thank-you, template: thank-you, after: 30m}
"""

Mutator = Callable[[dict[str, Any]], None]


class RewriteOrders:
    """Rewrites chosen orders in the store's order lists, as a broken plugin would."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner: ASGIApp = sandbox.store_faults.app
        self.mutators: dict[int, Mutator] = {}
        self.replacements: dict[int, object] = {}

    def __call__(self, scope: Scope) -> ASGIApp | None:
        if scope["method"] == "GET" and ORDER_LIST.search(scope["path"]):
            return self._rewrite
        return None

    async def _rewrite(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        start: Message = {}

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = json.loads(b"".join(chunks))
            for order in body if isinstance(body, list) else []:
                mutate = self.mutators.get(order.get("id"))
                if mutate is not None:
                    mutate(order)
            if isinstance(body, list):
                body = [self.replacements.get(order.get("id"), order) for order in body]
            data = json.dumps(body).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(data)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        await self.inner(scope, receive, collect)


def setting(**values: object) -> Mutator:
    return lambda order: order.update(values)


@pytest.fixture(params=["sqlite", "postgresql"])
def daemon(
    request: pytest.FixtureRequest, sandbox: Sandbox, clock: FakeClock, tmp_path: Path
) -> Iterator[Daemon]:
    path = write_engine_config(tmp_path / "config.yaml", sandbox, ONE_SEQUENCE)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    if request.param == "postgresql":
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        path.write_text(
            path.read_text(encoding="utf-8")
            .replace(
                f"  path: {tmp_path / 'state.db'}",
                f"  url: {PG_URL}?options=-csearch_path%3D{schema}",
            )
            .replace("http:\n", "http:\n  signing_key: pg-test-signing-key-0123456789abcdef\n"),
            encoding="utf-8",
        )
    daemon = Daemon(load_config(path, env=sandbox_env(sandbox)), clock, sleep=lambda _s: None)
    try:
        daemon.run_once()  # first sight: the seeded orders are history
        yield daemon
    finally:
        daemon.close()
        if request.param == "postgresql":
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def rewrite(sandbox: Sandbox) -> Iterator[RewriteOrders]:
    hook = RewriteOrders(sandbox)
    sandbox.store_faults.hook = hook
    yield hook
    sandbox.store_faults.hook = None


def complete_orders(sandbox: Sandbox, clock: FakeClock, n: int) -> list[int]:
    ids = [
        int(sandbox.store.create_order(customer="siti", items=[(11, 1)])["id"]) for _ in range(n)
    ]
    clock.advance(timedelta(minutes=1))
    for order_id in ids:
        sandbox.store.complete(order_id)
        clock.advance(timedelta(seconds=1))
    clock.advance(timedelta(seconds=30))
    return ids


def enrolled(daemon: Daemon) -> set[int]:
    with daemon.state.engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(select(enrollments.c.order_id))}


def skipped_metric(daemon: Daemon) -> float:
    total = 0.0
    for metric in daemon.metrics.registry.collect():
        if metric.name == "wcfollowup_orders_skipped":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def test_poison_orders_are_skipped_logged_and_counted_and_the_rest_go_on(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, rewrite: RewriteOrders
) -> None:
    ids = complete_orders(sandbox, clock, 6)
    good = [ids[0], ids[2], ids[5]]
    # Each bad order sits between good ones; the last order of the page is a good one.
    rewrite.mutators[ids[1]] = setting(id=HUGE_ID)  # beyond any 64-bit signed column
    rewrite.mutators[ids[3]] = setting(date_completed_gmt="9999-12-31T23:59:59")  # no due time
    # Too long for the order_number column: PostgreSQL refuses it when it is stored (SQLite
    # keeps any length, and enrols it).
    rewrite.mutators[ids[4]] = setting(number="N" * 200)
    dialect = daemon.state.dialect
    with capture_logs() as logs:
        result = daemon.poll_once()
    assert result is not None, "the poll failed as a whole"
    assert set(good) <= enrolled(daemon), "good orders were held up by a bad one"

    skips = {e.get("order_id"): e for e in logs if str(e["event"]).startswith("order skipped")}
    expected = {HUGE_ID, ids[3]} | ({ids[4]} if dialect == "postgresql" else set())
    assert set(skips) == expected, logs
    assert all(e["reason"] for e in skips.values())
    assert skipped_metric(daemon) == len(expected)
    assert (ids[4] in enrolled(daemon)) == (dialect == "sqlite")

    # The next polls go on: the bad orders are behind the cursor, new orders are enrolled.
    for _ in range(2):
        later = complete_orders(sandbox, clock, 2)
        assert daemon.poll_once() is not None
        assert set(later) <= enrolled(daemon)
    assert skipped_metric(daemon) == len(expected), "a skipped order was counted again"


@pytest.mark.parametrize("garbage", [None, "garbage"])
def test_an_unreadable_entry_last_on_a_full_page_is_skipped(
    sandbox: Sandbox, clock: FakeClock, daemon: Daemon, rewrite: RewriteOrders, garbage: object
) -> None:
    """The last entry of a full page decides where the next page starts: even there, an
    entry that is no order at all is skipped instead of failing the scan."""
    ids = complete_orders(sandbox, clock, 5)
    rewrite.replacements[ids[2]] = garbage  # last of the first page of 3
    with capture_logs() as logs:
        assert daemon.poll_once() is not None
    assert {ids[0], ids[1], ids[3], ids[4]} <= enrolled(daemon)
    assert [e for e in logs if e.get("stage") == "unreadable"], logs
    later = complete_orders(sandbox, clock, 1)
    assert daemon.poll_once() is not None
    assert set(later) <= enrolled(daemon)
