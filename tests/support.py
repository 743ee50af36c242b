"""Helpers shared by the tests (importable, unlike conftest)."""

from __future__ import annotations

from pathlib import Path

from wcfollowup.sandbox import Sandbox

CONFIG_TEMPLATE = """\
store:
  name: Toko Batik Sari
  url: {store_url}
  consumer_key: ${{WC_CONSUMER_KEY}}
  consumer_secret: ${{WC_CONSUMER_SECRET}}
  timezone: Asia/Jakarta
  language: {language}
sendgrid:
  api_key: ${{SENDGRID_API_KEY}}
  host: {mail_url}
  from_email: halo@tokobatiksari.example
  from_name: Toko Batik Sari
database:
  path: {db_path}
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


def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    return {
        "WC_CONSUMER_KEY": sandbox.consumer_key,
        "WC_CONSUMER_SECRET": sandbox.consumer_secret,
        "SENDGRID_API_KEY": sandbox.sendgrid_api_key,
    }


STORE_BLOCK = """\
store:
  name: Toko Batik Sari
  url: {store_url}
  consumer_key: ${{WC_CONSUMER_KEY}}
  consumer_secret: ${{WC_CONSUMER_SECRET}}
  timezone: Asia/Jakarta
  language: en
sendgrid:
  api_key: ${{SENDGRID_API_KEY}}
  host: {mail_url}
  from_email: halo@tokobatiksari.example
database:
  path: {db_path}
"""


def write_engine_config(path: Path, sandbox: Sandbox, body: str) -> Path:
    """A config with the sandbox's store and mail sink plus the given YAML (sequences etc.)."""
    path.write_text(
        STORE_BLOCK.format(
            store_url=sandbox.store_url,
            mail_url=sandbox.sendgrid_host,
            db_path=path.parent / "state.db",
        )
        + body,
        encoding="utf-8",
    )
    return path
