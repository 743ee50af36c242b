"""Footprint bench: what an idle daemon costs the owner's small VPS, and how fast ``--help`` is.

    .venv/bin/python bench/footprint.py                # 60 s CPU window (the bar's definition)
    .venv/bin/python bench/footprint.py --seconds 15   # a quick run

What happens, in one run:

1. A seeded sandbox (store + mail sink, real clock) starts in this process; the daemon runs in its
   own process exactly as systemd starts it (``python -m wcfollowup.service --config ...``), with
   the config's default intervals (poll every 60 s, dispatch every 10 s) and the link listener on.
   Nothing is completed in the store, so it stays idle: the figures are the daemon's resting cost.
2. After its first poll and a warm-up, the daemon's RSS is read (psutil) and its CPU time (user +
   system) is measured over ``--seconds`` of wall time, as a percentage of one core. The sandbox
   lives in this process, so its CPU and memory are not counted.
3. ``wcfollowup --help`` (the venv's console script) is run 5 times; the median wall time from
   process start to exit is the figure. When it misses the bar, the slowest imports
   (``python -X importtime``) are listed so it is clear what should be imported lazily.

The bars (../shared/BRIEF.md, "footprint"): idle RSS under 80 MB, idle CPU under 1% of a core,
``--help`` under 0.3 s. It is a report: the exit status is 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from wcfollowup.core.clock import SystemClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.daemon_process import DaemonProcess

MB = 1024 * 1024
MAX_RSS_MB = 80.0
MAX_CPU_PERCENT = 1.0
MAX_HELP_SECONDS = 0.3
HELP_RUNS = 5
IMPORTS_SHOWN = 15

SEQUENCES = """\
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 30m
        template: thank-you
"""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def start_polled(config: Path, env: dict[str, str]) -> DaemonProcess:
    """The daemon, once it has polled; a bench stops with its log if it never does."""
    daemon = DaemonProcess(config, env)
    if daemon.wait_for("poll done", 60) is None:
        daemon.kill()
        raise SystemExit("the daemon did not poll within 60 s:\n" + "\n".join(daemon.lines[-20:]))
    return daemon


def first_start_rss(config: Path, env: dict[str, str]) -> float:
    """The very first start creates and migrates the database, which loads Alembic (~10 MB
    that stays until the process ends). A daemon runs for months after a restart on a database
    that is already current, so the bar is measured on the second start; this figure is shown
    beside it."""
    daemon = start_polled(config, env)
    try:
        return float(psutil.Process(daemon.proc.pid).memory_info().rss / MB)
    finally:
        daemon.stop()


FIRST_START: list[float] = []


def measure_idle(seconds: float, warmup: float) -> tuple[float, float, float, float]:
    """RSS MB after warm-up, its private part (USS), peak RSS MB, CPU % of one core."""
    with (
        tempfile.TemporaryDirectory(prefix="wcf-footprint-") as folder,
        Sandbox(SystemClock()) as sandbox,
    ):
        config = Path(folder) / "config.yaml"
        config.write_text(
            sandbox.config_yaml(Path(folder) / "state.db") + SEQUENCES, encoding="utf-8"
        )
        FIRST_START.append(first_start_rss(config, sandbox.config_env()))
        daemon = start_polled(config, sandbox.config_env())
        try:
            time.sleep(warmup)
            process = psutil.Process(daemon.proc.pid)
            rss = process.memory_info().rss / MB
            uss = process.memory_full_info().uss / MB
            peak = rss
            before = process.cpu_times()
            started = time.monotonic()
            while (left := seconds - (time.monotonic() - started)) > 0:
                time.sleep(min(left, 1.0))
                peak = max(peak, process.memory_info().rss / MB)
            after = process.cpu_times()
            wall = time.monotonic() - started
        finally:
            code = daemon.stop()
        if code != 0:
            print(f"note: the daemon exited with {code} on SIGTERM:", *daemon.lines[-20:], sep="\n")
    busy = (after.user - before.user) + (after.system - before.system)
    return rss, uss, peak, 100 * busy / wall


def help_script() -> Path:
    return Path(sys.executable).parent / "wcfollowup"


def time_help(runs: int) -> list[float]:
    script = help_script()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(script), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return times


def slowest_imports(limit: int) -> list[tuple[float, str]]:
    """The top-level imports ``wcfollowup --help`` pays for, by cumulative time (ms)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(help_script()), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[tuple[float, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|", 2)
        # Top-level imports only (no leading spaces before the name): nested ones add up in them.
        if not name.startswith("  ") and name.strip():
            found.append((int(cumulative) / 1000, name.strip()))
    return sorted(found, reverse=True)[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU window (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="after the first poll")
    args = parser.parse_args()

    print(
        f"footprint bench: Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, idle window {args.seconds:.0f} s"
    )
    rss, uss, peak, cpu = measure_idle(args.seconds, args.warmup)
    helps = time_help(HELP_RUNS)
    median = statistics.median(helps)

    rows = [
        (
            "idle RSS after warm-up (restart)",
            f"{rss:.1f} MB",
            f"< {MAX_RSS_MB:.0f} MB",
            rss < MAX_RSS_MB,
        ),
        ("idle RSS, peak in window", f"{peak:.1f} MB", f"< {MAX_RSS_MB:.0f} MB", peak < MAX_RSS_MB),
        (
            f"idle CPU over {args.seconds:.0f} s",
            f"{cpu:.2f} % of a core",
            f"< {MAX_CPU_PERCENT:.0f} %",
            cpu < MAX_CPU_PERCENT,
        ),
        (
            f"wcfollowup --help, median of {HELP_RUNS}",
            f"{median:.3f} s",
            f"< {MAX_HELP_SECONDS} s",
            median < MAX_HELP_SECONDS,
        ),
    ]
    print()
    print(f"{'figure':<32} {'measured':>18}  {'bar':>10}  result")
    for name, measured, bar, ok in rows:
        print(f"{name:<32} {measured:>18}  {bar:>10}  {verdict(ok)}")
    print(f"private memory (USS) after warm-up: {uss:.1f} MB; the rest of RSS is shared libraries")
    if FIRST_START:
        print(
            f"first start on a new database (migrates, loads Alembic): {FIRST_START[0]:.1f} MB "
            "RSS until the next restart; the bar rows are a restart on the current database"
        )
    print(f"--help runs: {', '.join(f'{t:.3f}' for t in helps)} s")

    if median >= MAX_HELP_SECONDS:
        print(f"\n--help is slow; its {IMPORTS_SHOWN} costliest top-level imports (cumulative):")
        for ms, name in slowest_imports(IMPORTS_SHOWN):
            print(f"  {ms:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
