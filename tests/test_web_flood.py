"""The link listener cannot starve the daemon: 200 hostile connections against 48 descriptors.

The daemon runs as its own process (as systemd starts it) with ``RLIMIT_NOFILE`` at 48, the
sandbox in this process on the real clock. While 200 clients hold connections open idle, with
partial headers or with a body that trickles in (reconnecting whenever the listener drops them),
an order completed in the store is still polled and its email still sent, and every hostile
connection the listener accepts is dropped at its request deadline.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import FAST_THANK_YOU_SETTINGS, sandbox_env

from wcfollowup.core.clock import SystemClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.daemon_process import DaemonProcess

FD_LIMIT = 48
HOSTILE = 200
REQUEST_TIMEOUT_SECONDS = 1
# How late a drop may come on a loaded machine; still far below "never".
SLACK = 2.0
# The sandbox's order timestamps have one-second resolution (see test_service_signals).
TIMESTAMP_RESOLUTION = 1.1

LOW_FD_LIMIT = f"""\
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT}))
"""

ENGINE = FAST_THANK_YOU_SETTINGS


@pytest.fixture
def live_sandbox() -> Iterator[Sandbox]:
    with Sandbox(SystemClock(), timezone="Asia/Jakarta") as sb:
        yield sb


def write_config(path: Path, sandbox: Sandbox) -> tuple[Path, int]:
    base = sandbox.config_yaml(path.parent / "state.db")
    base = base.replace("http:\n", f"http:\n  request_timeout: {REQUEST_TIMEOUT_SECONDS}s\n", 1)
    path.write_text(base + ENGINE, encoding="utf-8")
    found = re.search(r"listen: 127\.0\.0\.1:(\d+)", base)
    assert found is not None
    return path, int(found.group(1))


def expect_event(daemon: DaemonProcess, event: str, timeout: float = 30.0) -> None:
    if daemon.wait_for(event, timeout) is None:
        raise AssertionError(
            f"no {event!r} in the daemon's log (exit code {daemon.proc.poll()}):\n"
            + "\n".join(daemon.lines)
        )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Flood:
    """``count`` clients, a third each idle, slowloris and slow body, reconnecting when dropped."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.connected = 0  # connections open right now (accepted or in the kernel's queue)
        self.dropped = 0  # connections the listener closed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _main(self) -> None:
        await asyncio.gather(*(self._client(i % 3) for i in range(self.count)))

    async def _client(self, kind: int) -> None:
        opening = [
            b"",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            b"POST /survey/x/comment HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
        ][kind]
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 2
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            self.connected += 1
            try:
                writer.write(opening)
                while not self._stop.is_set():
                    try:
                        data = await asyncio.wait_for(reader.read(1024), 0.3)
                    except TimeoutError:
                        if kind:
                            writer.write(b"a")  # one more byte: in time, but never the end
                        continue
                    if not data:
                        self.dropped += 1
                        break
            except OSError:  # reset by the listener
                self.dropped += 1
            finally:
                self.connected -= 1
                writer.close()


def dropped_after(port: int) -> float:
    """Seconds until the listener drops an idle connection (inf if it never does)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.settimeout(REQUEST_TIMEOUT_SECONDS + SLACK + 3)
        try:
            while conn.recv(1024):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            return float("inf")
    return time.monotonic() - started


def test_two_hundred_hostile_connections_do_not_stop_polling_or_sending(
    tmp_path: Path, live_sandbox: Sandbox
) -> None:
    config, port = write_config(tmp_path / "config.yaml", live_sandbox)
    daemon = DaemonProcess(config, sandbox_env(live_sandbox), prelude=LOW_FD_LIMIT)
    try:
        expect_event(daemon, "listening for survey and unsubscribe links")
        expect_event(daemon, "poll done")
        first_poll = time.monotonic()
        with Flood(port, HOSTILE) as flood:
            wait_until(lambda: flood.connected >= HOSTILE // 2, 20, "the hostile connections")
            time.sleep(max(0.0, TIMESTAMP_RESOLUTION - (time.monotonic() - first_poll)))
            order_id = live_sandbox.store.orders_ids(status="processing")[0]
            live_sandbox.store.complete(order_id)
            wait_until(
                lambda: any(
                    m.custom_args.get("wcf_order_id") == str(order_id)
                    for m in live_sandbox.sink.messages
                ),
                30,
                "the thank-you, polled and sent while the listener is flooded",
            )
            assert flood.connected >= HOSTILE // 2  # the attack was still on
            assert flood.dropped > 0  # and the listener kept dropping what it accepted
        assert daemon.proc.poll() is None
        # Each connection the listener accepts is dropped at its deadline.
        for _ in range(3):
            assert dropped_after(port) <= REQUEST_TIMEOUT_SECONDS + SLACK
        output = "\n".join(daemon.lines)
        assert "Too many open files" not in output
    finally:
        assert daemon.stop() == 0
