"""Helpers shared by the tests (importable, unlike conftest)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

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


def drain(daemon: Any) -> None:
    """Dispatch until nothing due is left (a batch is at most batch_size steps)."""
    for _ in range(1000):
        if not daemon.dispatch_once().outcomes:
            return
    raise AssertionError("dispatch never drained")


def one_due_thank_you(sandbox: Sandbox, clock: Any, daemon: Any) -> int:
    """First sight of the store, then one order completed and enrolled with its step due now
    (for a config with ``after: 0s``). Returns the order id."""
    daemon.run_once()
    order_id = sandbox.store.orders_ids(status="processing")[0]
    clock.advance(timedelta(minutes=1))
    sandbox.store.complete(order_id)
    clock.advance(timedelta(seconds=2))
    daemon.poll_once()
    return order_id


def hides(text: str, secret: str) -> bool:
    """True when ``secret`` cannot be read from ``text``: not plainly, percent-encoded, nor in
    standard or URL-safe base64 starting anywhere (every alignment a prefix can give it)."""
    import base64
    import binascii
    import re
    from urllib.parse import unquote

    wanted = secret.encode("utf-8").lower()
    plain = unquote(text)
    if wanted in plain.encode("utf-8").lower():
        return False
    for alphabet, to_standard in ((r"[A-Za-z0-9+/]", "+/"), (r"[A-Za-z0-9_\-]", "-_")):
        for run in re.findall(alphabet + "{4,}", plain):
            run = run.translate(str.maketrans(to_standard, "+/"))
            for start in range(len(run) - 3):
                part = run[start:]
                if len(part) % 4 == 1:
                    part = part[:-1]
                part += "=" * (-len(part) % 4)
                try:
                    decoded = base64.b64decode(part, validate=True)
                except (binascii.Error, ValueError):
                    continue
                if wanted in decoded.lower():
                    return False
    return True


# The daemon-as-a-process tests' settings: quick polls and sends, one immediate thank-you.
FAST_THANK_YOU_SETTINGS = """\
poll:
  interval: 5s
  overlap: 2m
dispatch:
  interval: 1s
  workers: 2
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
        window: always
"""
