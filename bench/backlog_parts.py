"""Where a backlog poll's time goes: the same pages polled with parts of the work left out.

    .venv/bin/python bench/backlog_parts.py                 # 50,000 orders, 5 pairs
    .venv/bin/python bench/backlog_parts.py --orders 20000 --pairs 3

A diagnostic beside ``backlog.py``, not a bar. One sandbox (a child process) holds N completed
orders; one daemon per poll to come has seen the store before they arrived, so every poll enrols
the same N orders from the same pages. Polls of three variants then alternate with bare loops
(the same client fetching the same pages, as in ``backlog.py``), in an order that flips every
pass so that a drift of the machine's speed cannot favour a variant:

- ``full``: the poll as it is;
- ``no-store``: everything but the database writes (the backlog writer returns at once);
- ``store-as-sleep``: the writer sleeps, for each batch, as long as the real writer took per
  enrolment in this run's ``full`` polls, and stores nothing: what the writes cost by their
  time alone (the last batch, which no fetching overlaps);
- ``store-as-burn``: the same time spent hashing, which keeps a CPU busy without the
  interpreter lock (``hashlib`` releases it for large buffers): what the writes cost by taking
  the CPU that the sandbox server and the fetch thread would otherwise have;
- ``fetch-only``: the poller fetches and pages, and nothing is parsed, planned or stored
  (an over-estimate of the fetching alone: with nothing to enrol, the cursor move after every
  page is its own small transaction, where a real backlog moves it once per batch).

``full`` minus ``store-as-burn`` is then what storing costs beyond its time and its CPU: mostly
the interpreter lock that the driver holds while it binds a statement's parameters.

Each poll is compared with the mean of the bare loops just before and after it. The differences
between the variants are what parsing-and-planning and storing add to the fetch chain, measured
where they run: next to it. The sandbox has a CPU of its own unless ``--shared-cpus`` is given
(see ``CpuSplit`` in backlog.py).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import backlog as bench

from wcfollowup.db.state import BacklogWriter, PreparedEnrolments
from wcfollowup.engine.poller import Poller


def _stored_nothing(_writer: BacklogWriter, prepared: PreparedEnrolments) -> list[Any]:
    return list(prepared.plans)


class WriterTime:
    """The real writer's seconds per enrolment, measured in this run's ``full`` polls."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.enrolments = 0

    def per_enrolment(self) -> float:
        return self.seconds / self.enrolments if self.enrolments else 0.0

    def timed(self, enroll: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        def timed_enroll(writer: BacklogWriter, prepared: PreparedEnrolments) -> list[Any]:
            started = time.perf_counter()
            try:
                return enroll(writer, prepared)
            finally:
                self.seconds += time.perf_counter() - started
                self.enrolments += len(prepared.plans)

        return timed_enroll


WRITER = WriterTime()
_HASHED = bytes(1 << 18)


def _slept_store(_writer: BacklogWriter, prepared: PreparedEnrolments) -> list[Any]:
    time.sleep(WRITER.per_enrolment() * len(prepared.plans))
    return list(prepared.plans)


def _burnt_store(_writer: BacklogWriter, prepared: PreparedEnrolments) -> list[Any]:
    until = time.perf_counter() + WRITER.per_enrolment() * len(prepared.plans)
    while time.perf_counter() < until:
        hashlib.sha256(_HASHED).digest()
    return list(prepared.plans)


def _handled_nothing(
    _poller: Poller, _store: Any, items: list[dict[str, Any]], totals: dict[str, int], *_: Any
) -> list[Any]:
    totals["seen"] += len(items)
    return []


@contextmanager
def variant(name: str) -> Iterator[None]:
    """Swap a part of the poll for nothing while one poll runs (a diagnostic, never a test)."""
    saved_enroll, saved_handle = BacklogWriter.enroll, Poller._handle_page
    if name == "full":
        BacklogWriter.enroll = WRITER.timed(saved_enroll)  # type: ignore[method-assign]
    if name == "store-as-sleep":
        BacklogWriter.enroll = _slept_store  # type: ignore[assignment]
    if name == "store-as-burn":
        BacklogWriter.enroll = _burnt_store  # type: ignore[assignment]
    if name in ("no-store", "fetch-only"):
        BacklogWriter.enroll = _stored_nothing  # type: ignore[assignment]
    if name == "fetch-only":
        Poller._handle_page = _handled_nothing  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        BacklogWriter.enroll = saved_enroll  # type: ignore[method-assign]
        Poller._handle_page = saved_handle  # type: ignore[method-assign]


VARIANTS = ("full", "no-store", "store-as-sleep", "store-as-burn", "fetch-only")


def run(
    n: int, pairs: int, say: Callable[[str], None], cpus: bench.CpuSplit | None
) -> dict[str, list[float]]:
    sandbox = bench.ChildProcess(cpus)
    say(sandbox.label)
    try:
        with tempfile.TemporaryDirectory(prefix="wcf-parts-") as tmp:
            workdir = Path(tmp)
            polls = 1 + pairs * len(VARIANTS)
            say(f"{polls} daemons see the store first ...")
            daemons = [bench.first_sight(sandbox, workdir / f"d{k}") for k in range(polls)]
            say(f"adding {n:,} completed orders ...")
            now = sandbox.add_completed(n)
            for _daemon, clock, _config in daemons:
                clock.set(now)
            sandbox.record(True)
            daemons[0][0].poll_once()
            replay = [r for r in bench.without_retries(sandbox.record(False)) if r.method == "GET"]
            daemons[0][0].close()
            timeout = daemons[0][2].store.request_timeout.total_seconds()
            ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
            before = bench.bare_loop(sandbox.endpoints, replay, timeout).seconds
            turn = 1
            for p in range(pairs):
                say(f"pass {p + 1} of {pairs} ...")
                for name in VARIANTS if p % 2 == 0 else VARIANTS[::-1]:
                    daemon = daemons[turn][0]
                    turn += 1
                    bench.settle_disk()
                    with variant(name):
                        started = time.perf_counter()
                        daemon.poll_once()
                        seconds = time.perf_counter() - started
                    daemon.close()
                    after = bench.bare_loop(sandbox.endpoints, replay, timeout).seconds
                    ratios[name].append(seconds / ((before + after) / 2))
                    before = after
            return ratios
    finally:
        sandbox.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=50_000, help="backlog size (50000)")
    parser.add_argument("--pairs", type=int, default=5, help="passes over the variants (5)")
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="let the sandbox child share the daemon's CPUs (as backlog.py --shared-cpus)",
    )
    args = parser.parse_args(argv)
    if args.orders < 1 or args.pairs < 1:
        parser.error("--orders and --pairs must be at least 1")

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    with bench.quiet_json_logs():
        cpus = None if args.shared_cpus else bench.CpuSplit.of_this_machine()
        ratios = run(args.orders, args.pairs, say, cpus)
    print(f"\npoll / mean of the bare loops beside it, {args.orders:,} orders")
    for name in VARIANTS:
        values = ratios[name]
        print(
            f"{name:<15} median {statistics.median(values):.2f}  mean {statistics.mean(values):.2f}"
            "  (" + ", ".join(f"{v:.2f}" for v in values) + ")"
        )
    full, no_store, slept, burnt, fetch = (statistics.median(ratios[name]) for name in VARIANTS)
    print(f"the writer took {WRITER.per_enrolment() * 1e6:.1f} µs per enrolment in the full polls")
    print(
        f"storing adds about {full - no_store:+.2f} (its time alone {slept - no_store:+.2f}, "
        f"its CPU {burnt - slept:+.2f}, the rest {full - burnt:+.2f}); "
        f"parsing and planning {no_store - fetch:+.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
