"""Helpers shared by the tests (importable, unlike conftest)."""

from __future__ import annotations

from pathlib import Path

from wcfollowup.sandbox import Sandbox

ENGINE_SETTINGS = """\
poll:
  interval: 60s
  overlap: 2m
dispatch:
  interval: 10s
  batch_size: {batch_size}
  workers: 4
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: {after}
        template: thank-you
"""


def thank_you_config(
    sandbox: Sandbox,
    db_path: Path,
    *,
    after: str = "30m",
    batch_size: int = 50,
    language: str = "en",
) -> str:
    """A whole config: the sandbox's store and mail sink, one thank-you sequence."""
    return sandbox.config_yaml(db_path, language=language) + ENGINE_SETTINGS.format(
        after=after, batch_size=batch_size
    )


def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    return sandbox.config_env()


def write_engine_config(path: Path, sandbox: Sandbox, body: str) -> Path:
    """A config with the sandbox's store and mail sink plus the given YAML (sequences etc.)."""
    path.write_text(sandbox.config_yaml(path.parent / "state.db") + body, encoding="utf-8")
    return path
