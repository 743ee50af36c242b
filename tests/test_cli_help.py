"""Every command explains itself with an example, and ``--help`` stays fast."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from wcfollowup.cli import app

COMMANDS = [
    ["check"],
    ["run"],
    ["log"],
    ["queue"],
    ["queue", "cancel"],
    ["queue", "skip"],
    ["queue", "retry"],
    ["preview"],
    ["simulate"],
    ["backfill"],
    ["stats"],
    ["unsubscribe"],
    ["sandbox"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_top_level_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        # The console entry point itself (main() sets the umask first): it must stay light.
        "import contextlib, io, sys; sys.argv = ['wcfollowup', '--help']\n"
        "from wcfollowup.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main()\n"
        "heavy = [m for m in ('sqlalchemy', 'requests', 'sendgrid', 'apscheduler') "
        "if m in sys.modules]\nprint(heavy)"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"
    assert time.perf_counter() - started < 2.0  # generous: CI machines vary; measured ~0.13 s
