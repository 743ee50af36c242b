"""The owner's tools on a big state (issue 17): ``log`` and ``stats --since 30d``.

Bars:
- ``wcfollowup log`` over 13,000 message rows: <= 2 s, as a table and with ``--json``.
- ``wcfollowup stats --since 30d``: its time must not grow with enrolments outside the
  period: 10,000 enrolments in the period alone vs the same plus 1,000,000 older ones,
  ratio <= 1.5.

Each command runs as the owner runs it: its own process (``python -m wcfollowup``), output to
a pipe that is read and dropped, against the built-in sandbox store (in this process; ``stats``
reads the store's orders of the period). The state is filled directly with bulk SQL inserts
(the daemon would take hours to write a million enrolments) after the real migrations created
it. Each figure is the best of ``--runs`` runs. A report, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wcfollowup.core.clock import SystemClock
from wcfollowup.db.state import StateStore
from wcfollowup.sandbox import Sandbox

LOG_ROWS = 13_000
WINDOW_ROWS = 10_000
OLD_ROWS = 1_000_000
LOG_BAR_S = 2.0
STATS_RATIO_BAR = 1.5

BODY = """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
"""


def _db_time(at: datetime) -> str:
    """How SQLAlchemy's DateTime stores a UTC instant in SQLite."""
    return at.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def make_state(folder: Path, sandbox: Sandbox) -> tuple[Path, int]:
    """A config aimed at the sandbox and a migrated, empty state; returns the store id."""
    folder.mkdir(parents=True)
    database = folder / "state.db"
    config = folder / "config.yaml"
    config.write_text(sandbox.config_yaml(database) + BODY, encoding="utf-8")
    state = StateStore(f"sqlite:///{database}")
    now = datetime.now(UTC)
    store_id = state.create_store(sandbox.store_url, now, now).id
    state.close()
    return config, store_id


def add_messages(database: Path, store_id: int, count: int, now: datetime) -> None:
    rows = [
        (
            _db_time(now - timedelta(minutes=count - i)),
            store_id,
            100_000 + i,
            str(100_000 + i),
            f"customer{i}@example.test",
            "thank-you",
            "thank-you",
            ("sent", "sent", "sent", "skipped", "failed")[i % 5],
            f"msg-{i}" if i % 5 < 3 else None,
            "" if i % 5 < 3 else "order refunded [before sending]",
        )
        for i in range(count)
    ]
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO messages (at, store_id, order_id, order_number, recipient, sequence, "
            "step, status, provider_message_id, reason) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )


def add_enrolments(
    database: Path, store_id: int, count: int, first_id: int, newest: datetime, span: timedelta
) -> None:
    """``count`` enrolments anchored at random moments in ``span`` before ``newest``."""
    rng = random.Random(first_id)
    chunk = 100_000
    with sqlite3.connect(database) as conn:
        for start in range(0, count, chunk):
            rows = []
            for i in range(start, min(count, start + chunk)):
                order_id = first_id + i
                at = _db_time(newest - span * rng.random())
                key = f"c{order_id}@example.test"
                rows.append((store_id, order_id, str(order_id), "thank-you", key, key, at, at))
            conn.executemany(
                "INSERT INTO enrollments (store_id, order_id, order_number, sequence, email, "
                "customer_key, anchor_at, enrolled_at) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )


def timed(args: list[str], config: Path, env: dict[str, str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "wcfollowup", *args, "--config", str(config)],
            env=env,
            capture_output=True,
            check=False,
        )
        best = min(best, time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{args} failed: {done.stderr.decode()[-2000:]}")
    return best


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old", type=int, default=OLD_ROWS, help="enrolments outside the period")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Sandbox(SystemClock()) as sandbox:
        env = {**os.environ, **sandbox.config_env()}
        now = datetime.now(UTC)
        root = Path(tmp)

        config, store_id = make_state(root / "log", sandbox)
        add_messages(config.parent / "state.db", store_id, LOG_ROWS, now)
        table = timed(["log"], config, env, options.runs)
        as_json = timed(["log", "--json"], config, env, options.runs)

        small, small_id = make_state(root / "small", sandbox)
        big, big_id = make_state(root / "big", sandbox)
        window = timedelta(days=29)
        for cfg, sid in ((small, small_id), (big, big_id)):
            add_enrolments(cfg.parent / "state.db", sid, WINDOW_ROWS, 1_000_000, now, window)
        filled = time.perf_counter()
        add_enrolments(
            big.parent / "state.db",
            big_id,
            options.old,
            10_000_000,
            now - timedelta(days=31),
            timedelta(days=3 * 365),
        )
        fill_s = time.perf_counter() - filled
        stats_small = timed(["stats", "--since", "30d", "--json"], small, env, options.runs)
        stats_big = timed(["stats", "--since", "30d", "--json"], big, env, options.runs)
        ratio = stats_big / stats_small

    print(f"{'figure':<58} {'value':>9}  bar")
    print(f"{f'log over {LOG_ROWS:,} rows, table (s)':<58} {table:>9.2f}  <= {LOG_BAR_S}")
    print(f"{f'log over {LOG_ROWS:,} rows, --json (s)':<58} {as_json:>9.2f}  <= {LOG_BAR_S}")
    print(f"{f'stats --since 30d, {WINDOW_ROWS:,} enrolments (s)':<58} {stats_small:>9.2f}")
    label = f"stats --since 30d, same + {options.old:,} older (s)"
    print(f"{label:<58} {stats_big:>9.2f}")
    print(f"{'stats ratio':<58} {ratio:>9.2f}  <= {STATS_RATIO_BAR}")
    print(f"(filling {options.old:,} older enrolments took {fill_s:.1f} s)")
    print(f"{verdict(table <= LOG_BAR_S)}  log table <= {LOG_BAR_S} s")
    print(f"{verdict(as_json <= LOG_BAR_S)}  log --json <= {LOG_BAR_S} s")
    print(f"{verdict(ratio <= STATS_RATIO_BAR)}  stats 10k vs +1M ratio <= {STATS_RATIO_BAR}")


if __name__ == "__main__":
    main()
