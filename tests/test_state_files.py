"""The state files: private to their user, erased data overwritten, faults explained in one line.

These run the real command line in a subprocess (``python -m wcfollowup``) against the sandbox,
as cron or a shell would: the umask, the exit code and stderr are the process's own.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from support import write_engine_config

from wcfollowup.db.state import StateStore, _sqlite_pragmas
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.exit_codes import ExitCode

BODY = """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
"""
STATE_FILES = ("state.db", "state.db-wal", "state.db-shm", "state.db.lock", "signing.key")


def cli(
    sandbox: Sandbox, config: Path, *args: str, umask: int = 0o022, drop_root: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **sandbox.config_env()}
    env.pop("STATE_DIRECTORY", None)
    command = [sys.executable, "-m", "wcfollowup", *args, "--config", str(config)]
    if drop_root:  # root ignores file permissions; without these capabilities it does not
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, umask=umask, check=False
    )


def test_secure_delete_is_on(tmp_path: Path) -> None:
    """Erased addresses and comments are overwritten in the file, not just unlinked."""
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with state.engine.connect() as conn:
            assert conn.execute(text("PRAGMA secure_delete")).scalar() == 1
    finally:
        state.close()
    # Also where SQLite was built without SECURE_DELETE (this one may have been): our own
    # connection setup turns it on.
    raw = sqlite3.connect(tmp_path / "other.db")
    try:
        raw.execute("PRAGMA secure_delete=OFF")
        _sqlite_pragmas(raw, None)
        assert raw.execute("PRAGMA secure_delete").fetchone() == (1,)
    finally:
        raw.close()


def test_state_files_are_private_whatever_the_umask(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    env = {**os.environ, **sandbox.config_env()}
    env.pop("STATE_DIRECTORY", None)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "wcfollowup", "run", "--config", str(config)],
        env=env,
        umask=0o022,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / name).exists() for name in STATE_FILES):
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            assert time.monotonic() < deadline, sorted(p.name for p in tmp_path.iterdir())
            time.sleep(0.05)  # waiting for another process to start, not for a schedule
        modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in STATE_FILES}
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    assert modes == dict.fromkeys(STATE_FILES, 0o600)


def broken(path: Path, how: str) -> None:
    if how == "not a database":
        path.write_text("these are my notes, not a database\n" * 200, encoding="utf-8")
    elif how == "corrupt":
        data = bytearray(path.read_bytes())
        data[100:4096] = b"\xab" * (4096 - 100)  # the schema page, past the file header
        path.write_bytes(bytes(data))
    (path.parent / "state.db-wal").unlink(missing_ok=True)
    (path.parent / "state.db-shm").unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("not a database", "is not a SQLite database"),
        ("corrupt", "is damaged (corrupt)"),
    ],
)
@pytest.mark.parametrize("command", [["run", "--once"], ["log"]], ids=["run", "log"])
def test_a_broken_database_is_one_clear_message(
    tmp_path: Path, sandbox: Sandbox, how: str, said: str, command: list[str]
) -> None:
    config = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    assert cli(sandbox, config, "run", "--once").returncode == 0
    broken(tmp_path / "state.db", how)
    done = cli(sandbox, config, *command)
    assert done.returncode == ExitCode.DATABASE_UNAVAILABLE, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: the state database {tmp_path / 'state.db'} {said}")


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="as root, a read-only file needs setpriv to drop the override capability",
)
def test_a_read_only_database_stops_the_daemon_with_one_message(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    assert cli(sandbox, config, "run", "--once").returncode == 0
    (tmp_path / "state.db").chmod(0o400)
    as_root = os.geteuid() == 0
    done = cli(sandbox, config, "run", "--once", drop_root=as_root)
    assert done.returncode == ExitCode.DATABASE_UNAVAILABLE, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: the state database {tmp_path / 'state.db'} cannot be written")
    assert "write access" in line
    # The owner may still read the log of a database they may not write.
    assert cli(sandbox, config, "log", drop_root=as_root).returncode == 0
