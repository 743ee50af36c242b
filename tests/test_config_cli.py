"""``wcfollowup check`` as an owner runs it: exit code 2, a line per problem, no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "configs"
SECRETS = {
    "WC_CONSUMER_KEY": "ck_cli_key_1111",
    "WC_CONSUMER_SECRET": "cs_cli_secret_2222",
    "SENDGRID_API_KEY": "SG.cli_key_3333",
}
LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<where>[^:]+): (?P<what>.+)$")


def check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "WCFOLLOWUP_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "wcfollowup", "check", "--config", str(path)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_reports_every_problem_with_file_line_and_column() -> None:
    path = CONFIGS / "broken.yaml"
    result = check(path, SECRETS)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    *lines, summary = result.stderr.splitlines()
    assert summary == f"9 problem(s) in {path}; nothing was started."
    for line in lines:
        assert LINE.match(line), line
        assert line.startswith(f"{path}:")
    assert [line.removeprefix(f"{path}:") for line in lines] == [
        "4:8: store.url: 'batiksari.co.id' is not a URL; write it like https://shop.example.com",
        "6:3: store: unknown key 'consumer_secrt'; did you mean 'consumer_secret'?",
        "7:13: store.timezone: 'Asia/Jakrta' is not a known time zone; "
        "did you mean 'Asia/Jakarta'?",
        "11:15: sendgrid.from_email: 'halo(at)batiksari.co.id' is not a valid email address "
        "(an email address must have an @-sign)",
        "15:13: poll.interval: the number 30 has no unit; write it like 30s, 30m, 30h or 30d "
        "(s=seconds, m=minutes, h=hours, d=days, w=weeks)",
        "16:14: poll.page_size: expected a whole number, got 'ten'",
        "21:16: sequences[0].steps[0].after: '3 days' is not a duration (did you mean 3d?); "
        "write a whole number and a unit, like 30s, 30m, 2h, 3d or 1w "
        "(s=seconds, m=minutes, h=hours, d=days, w=weeks)",
        "23:11: sequences[1].name: sequence name 'thank-you' is already used by sequences[0]; "
        "sequence names must be unique",
        "27:19: sequences[1].steps[0].template: 'Review Request' is not a valid name; "
        "use lowercase letters, digits and dashes, like 'review-request'",
    ]
    for secret in SECRETS.values():
        assert secret not in result.stderr


def test_check_accepts_the_example_config() -> None:
    result = check(REPO / "config.example.yaml", SECRETS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{REPO / 'config.example.yaml'}: OK (3 sequence(s))"


def test_unset_variables_and_unknown_keys_are_both_reported() -> None:
    result = check(CONFIGS / "broken.yaml")
    assert result.returncode == 2
    assert (
        f"{CONFIGS / 'broken.yaml'}:6:3: store: unknown key 'consumer_secrt'; "
        "did you mean 'consumer_secret'?"
    ) in result.stderr.splitlines()
    assert result.stderr.count("is not set; export it or put it in the EnvironmentFile") == 3


def test_check_names_unset_variables() -> None:
    result = check(REPO / "config.example.yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "environment variable WC_CONSUMER_SECRET is not set" in result.stderr


def test_check_refuses_an_alias_bomb_fast() -> None:
    started = time.perf_counter()
    result = check(CONFIGS / "billion_laughs.yaml")
    assert time.perf_counter() - started < 10
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "expand to more than 100,000 values" in result.stderr


def test_check_on_unreadable_input_never_shows_a_traceback(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"store:\n  name: Caf\xe9\n")
    cases = {
        tmp_path / "missing.yaml": "(file): file not found",
        tmp_path: "(file): this is a directory, not a file",
        latin1: "(file): not UTF-8 text (bad byte at offset 18); save it as UTF-8",
    }
    for path, expected in cases.items():
        result = check(path)
        assert result.returncode == 2, path
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines()[0].endswith(expected)
