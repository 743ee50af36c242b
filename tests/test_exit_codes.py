"""``run --once`` under cron: each failure that stops the work has its own exit code.

The real executable against the real sandbox servers (a store refusing the keys, a certificate
that does not verify, a store that is down, SendGrid refusing its key), plus the TLS failure
in-process to show it is not retried, and ``verify_tls: false`` logging one structured warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import sandbox_env, thank_you_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock, SystemClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon
from wcfollowup.service.exit_codes import ExitCode


@pytest.fixture
def live_sandbox() -> Iterator[Sandbox]:
    """A sandbox on the real clock: the daemon runs in another process with its own clock."""
    with Sandbox(SystemClock(), timezone="Asia/Jakarta") as sb:
        yield sb


@pytest.fixture
def https_sandbox() -> Iterator[Sandbox]:
    with Sandbox(SystemClock(), timezone="Asia/Jakarta", https=True) as sb:
        yield sb


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wcfollowup", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def write(tmp_path: Path, sb: Sandbox, *, store: str = "") -> Path:
    """The thank-you config; ``store`` adds lines to the ``store`` block."""
    text = thank_you_config(sb, tmp_path / "state.db", after="0s")
    if store:
        text = text.replace("  timezone: Asia/Jakarta\n", f"  timezone: Asia/Jakarta\n{store}")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_once(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cli("run", "--once", "--config", str(path), env=env)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one plain ``error:`` line cron mails; never a traceback."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_codes_kept_their_meaning_and_the_new_ones_are_distinct() -> None:
    assert (ExitCode.CONFIG, ExitCode.STORE_INCOMPATIBLE, ExitCode.ALREADY_RUNNING) == (2, 3, 4)
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


def test_a_healthy_run_exits_0(tmp_path: Path, live_sandbox: Sandbox) -> None:
    result = run_once(write(tmp_path, live_sandbox), sandbox_env(live_sandbox))
    assert result.returncode == ExitCode.OK, result.stderr


def test_keys_the_store_refuses_exit_5(tmp_path: Path, live_sandbox: Sandbox) -> None:
    env = {**sandbox_env(live_sandbox), "WC_CONSUMER_KEY": "ck_" + "0" * 40}
    result = run_once(write(tmp_path, live_sandbox), env)
    assert result.returncode == ExitCode.STORE_AUTH == 5, result.stderr
    assert "refused the API keys" in error_line(result)


def test_a_certificate_that_does_not_verify_exits_6_and_says_what_to_change(
    tmp_path: Path, https_sandbox: Sandbox
) -> None:
    result = run_once(write(tmp_path, https_sandbox), sandbox_env(https_sandbox))
    assert result.returncode == ExitCode.STORE_TLS == 6, result.stderr
    line = error_line(result)
    assert "self-signed certificate" in line and "store.verify_tls: /path/to/ca.pem" in line


def test_the_same_store_with_its_ca_bundle_exits_0(tmp_path: Path, https_sandbox: Sandbox) -> None:
    path = write(tmp_path, https_sandbox, store=f"  verify_tls: {https_sandbox.ca_file}\n")
    result = run_once(path, sandbox_env(https_sandbox))
    assert result.returncode == ExitCode.OK, result.stderr


def test_a_store_that_is_down_exits_7(tmp_path: Path) -> None:
    with Sandbox(SystemClock()) as sb:
        path = write(tmp_path, sb)
        env = sandbox_env(sb)
        url = sb.store_url
    result = run_once(path, env)  # its port now refuses connections
    assert result.returncode == ExitCode.STORE_UNAVAILABLE == 7, result.stderr
    assert f"could not reach {url}: Connection refused" in error_line(result)


def test_sendgrid_refusing_its_key_exits_8(tmp_path: Path, live_sandbox: Sandbox) -> None:
    env = {**sandbox_env(live_sandbox), "SENDGRID_API_KEY": "SG.not-the-sandbox-key"}
    path = write(tmp_path, live_sandbox)
    # Completed orders of the seeded history become due now (nothing is sent by backfill).
    enrolled = cli("backfill", "--since", "300d", "--yes", "--config", str(path), env=env)
    assert enrolled.returncode == 0 and "enrolment(s) stored" in enrolled.stdout, enrolled
    result = run_once(path, env)
    assert result.returncode == ExitCode.MAIL_AUTH == 8, result.stderr
    assert "SendGrid refused the API key" in error_line(result)
    assert live_sandbox.sink.messages == []


def test_a_certificate_failure_is_not_retried(
    tmp_path: Path, clock: FakeClock, https_sandbox: Sandbox
) -> None:
    """Every retry would fail the same way: the first failure is reported, at once."""
    from wcfollowup.woo.errors import StoreTlsError

    slept: list[float] = []
    config = load_config(write(tmp_path, https_sandbox), env=sandbox_env(https_sandbox))
    daemon = Daemon(config, clock, sleep=slept.append)
    try:
        problem = daemon.run_once()
    finally:
        daemon.close()
    assert isinstance(problem, StoreTlsError)
    assert "verify_tls" in str(problem)
    assert slept == []


def test_verify_tls_false_logs_one_structured_warning_and_no_raw_python_warning(
    tmp_path: Path, https_sandbox: Sandbox
) -> None:
    path = write(tmp_path, https_sandbox, store="  verify_tls: false\n")
    result = run_once(path, sandbox_env(https_sandbox))
    assert result.returncode == ExitCode.OK, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    warned = [e for e in events if "verify_tls is false" in e["event"]]
    assert len(warned) == 1 and warned[0]["level"] == "warning"
    assert "InsecureRequestWarning" not in result.stderr
