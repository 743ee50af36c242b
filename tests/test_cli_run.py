"""The real ``wcfollowup`` executable against the sandbox: exit codes, restarts, the log table."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import sandbox_env, thank_you_config

from wcfollowup.core.clock import SystemClock
from wcfollowup.sandbox import Sandbox


@pytest.fixture
def live_sandbox() -> Iterator[Sandbox]:
    """A sandbox on the real clock: the daemon runs in another process with its own clock."""
    with Sandbox(SystemClock(), timezone="Asia/Jakarta") as sb:
        yield sb


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wcfollowup", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def write(tmp_path: Path, sb: Sandbox, after: str = "0s") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(thank_you_config(sb, tmp_path / "state.db", after=after), encoding="utf-8")
    return path


def test_run_once_twice_sends_each_thank_you_once_and_log_shows_it(
    tmp_path: Path, live_sandbox: Sandbox
) -> None:
    config = write(tmp_path, live_sandbox)
    env = sandbox_env(live_sandbox)
    first = cli("run", "--once", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    assert live_sandbox.sink.messages == []

    # Completed after the daemon first saw the store, one second later at least.
    import time

    time.sleep(1.1)
    order_ids = live_sandbox.store.orders_ids(status="processing")[:2]
    for order_id in order_ids:
        live_sandbox.store.complete(order_id)
    for _ in range(2):
        result = cli("run", "--once", "--config", str(config), env=env)
        assert result.returncode == 0, result.stderr
    assert sorted(int(m.custom_args["wcf_order_id"]) for m in live_sandbox.sink.messages) == sorted(
        order_ids
    )

    shown = cli("log", "--config", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    for order_id in order_ids:
        number = live_sandbox.store.get(order_id)["number"]
        assert f"#{number}" in shown.stdout
    assert shown.stdout.count("sent") >= 2
    # No secret in anything the daemon printed.
    for secret in env.values():
        assert secret not in first.stderr + result.stderr + shown.stdout


def test_run_refuses_a_store_that_ignores_modified_after(tmp_path: Path) -> None:
    with Sandbox(SystemClock(), legacy_wc=True) as sb:
        config = write(tmp_path, sb)
        result = cli("run", "--once", "--config", str(config), env=sandbox_env(sb))
    assert result.returncode == 3
    assert "5.8" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("check", "run", "log", "sandbox", "demo"):
        assert command in result.stdout


def test_a_second_daemon_on_the_same_database_exits_4(
    tmp_path: Path, live_sandbox: Sandbox
) -> None:
    from wcfollowup.db.state import StateStore

    config = write(tmp_path, live_sandbox)
    running = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    running.lock()
    try:
        result = cli("run", "--once", "--config", str(config), env=sandbox_env(live_sandbox))
    finally:
        running.close()
    assert result.returncode == 4
    assert "already running" in result.stderr
    assert "Traceback" not in result.stderr


def test_unsubscribe_command_records_the_address(tmp_path: Path, live_sandbox: Sandbox) -> None:
    from wcfollowup.db.state import StateStore

    config = write(tmp_path, live_sandbox)
    result = cli(
        "unsubscribe", "Siti@Example.test", "--config", str(config), env=sandbox_env(live_sandbox)
    )
    assert result.returncode == 0, result.stderr
    assert "unsubscribed" in result.stdout
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert state.is_unsubscribed("siti@example.test")
    finally:
        state.close()
