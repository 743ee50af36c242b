"""Helpers shared by the tests (importable, unlike conftest)."""

from __future__ import annotations

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
