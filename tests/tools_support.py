"""Helpers for the tests of the owner's tools (log, queue, simulate, backfill, stats)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from support import sandbox_env, write_engine_config

from wcfollowup.config import Config, load_config
from wcfollowup.sandbox import Sandbox

# Two sequences, one with conditions; a step guarded by a country and one by the survey.
SEQUENCES = """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
      - name: check-in
        after: 2d
        template: thank-you
  - name: big-orders
    conditions: {total_at_least: 300000}
    steps:
      - name: survey
        kind: survey
        after: 1h
      - name: sorry
        after: 2h
        template: thank-you
        only_if: {survey_score_at_most: 3}
      - name: local-thanks
        after: 3h
        template: thank-you
        only_if: {country: ID}
"""


def tools_config(tmp_path: Path, sandbox: Sandbox, body: str = SEQUENCES) -> tuple[Path, Config]:
    path = write_engine_config(tmp_path / "config.yaml", sandbox, body)
    return path, load_config(path, env=sandbox_env(sandbox))


def complete_orders(sandbox: Sandbox, clock: Any, count: int) -> list[int]:
    """Complete ``count`` processing orders (new ones if the seed runs out), a minute apart."""
    ids = sandbox.store.orders_ids(status="processing")[:count]
    while len(ids) < count:
        ids.append(int(sandbox.store.create_order()["id"]))
    for order_id in ids:
        clock.advance(timedelta(minutes=1))
        sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))
    return ids
