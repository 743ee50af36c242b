"""Persistent connections: the daemon reuses its connections to the store and to SendGrid.

A new connection per request costs a TCP (and in production a TLS) handshake each time; the
sandbox servers count the distinct client connections they took requests on.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from support import drain

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.runner import CONSUMER_KEY, CONSUMER_SECRET
from wcfollowup.service.daemon import Daemon
from wcfollowup.woo.gateway import WooGateway

MakeDaemon = Callable[..., Daemon]
WORKERS = 4  # tests/support.py's ENGINE_SETTINGS


def test_a_dispatch_of_twenty_emails_and_a_poll_reuse_a_few_connections(
    sandbox: Sandbox, clock: FakeClock, make_daemon: MakeDaemon
) -> None:
    new = sandbox.store.add_orders(110)
    daemon = make_daemon(after="0s")
    daemon.run_once()  # first sight: the store's past is history
    to_complete, to_touch = new[:20], new[20:]
    clock.advance(timedelta(minutes=1))
    for order_id in to_complete:
        sandbox.store.complete(order_id)
    for order_id in to_touch:  # modified too: the poll reads 110 orders, two pages of 100
        sandbox.store.touch(order_id)
    clock.advance(timedelta(minutes=1))
    sandbox.store_peers.reset()
    sandbox.mail_peers.reset()

    daemon.poll_once()
    drain(daemon)

    assert len(sandbox.sink.messages) == 20
    assert sandbox.mail_peers.requests == 20
    assert sandbox.store_peers.requests >= 20  # the poll and a re-read per step
    # One connection per thread that talks to each server, not one per request.
    assert sandbox.store_peers.connections <= WORKERS + 1
    assert sandbox.mail_peers.connections <= WORKERS


def test_a_multi_page_scan_from_several_threads_keeps_one_connection_per_thread(
    sandbox: Sandbox,
) -> None:
    sandbox.store.add_orders(50)
    gateway = WooGateway(sandbox.store_url, CONSUMER_KEY, CONSUMER_SECRET, pool_size=3)
    sandbox.store_peers.reset()

    def scan(_: int) -> int:
        pages = [gateway.list_orders({"per_page": 5, "page": p}) for p in range(1, 9)]
        assert all(page.total_pages > 8 for page in pages)
        return sum(len(page.items) for page in pages)

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(scan, range(6))) == [40] * 6

    assert sandbox.store_peers.requests == 48
    assert sandbox.store_peers.connections <= 3


def test_the_environment_is_read_once_when_the_gateway_is_made(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxies come from the environment once; a later change (or a scan per call) does not
    reach the requests already configured. Before, every call re-read it and went to the
    proxy set afterwards (here a closed port)."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    gateway = WooGateway(sandbox.store_url, CONSUMER_KEY, CONSUMER_SECRET, attempts=1)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert gateway.list_orders({"per_page": 1}).items
