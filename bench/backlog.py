"""Backlog bench: enrol N completed orders in one poll and compare with a bare fetch loop.

    .venv/bin/python bench/backlog.py                  # 100,000 orders, sandbox in a child process
    .venv/bin/python bench/backlog.py --orders 5000    # a quick run
    .venv/bin/python bench/backlog.py --in-process     # sandbox threads inside this process
    .venv/bin/python bench/backlog.py --shared-cpus    # sandbox child not on a CPU of its own
    .venv/bin/python bench/backlog.py --rounds 7       # more timed polls (5 by default)

What happens, in one run:

1. A sandbox store (seeded) starts on a FakeClock. One Daemon per poll to come (a rehearsal and
   ``--rounds`` timed ones), each with a fresh SQLite database in a temporary directory, polls
   it once: first sight sets their baseline, nothing is enrolled.
2. N orders are added to the store as completed, one second apart, all after the baselines.
3. The *rehearsal*: the first daemon polls and enrols the N orders; every HTTP request the store
   receives is recorded at the sandbox (``store_faults.hook``), with its query.
4. The *bare loop*: the recorded requests are replayed with the same ``woocommerce`` client and
   keys, parsing each JSON body and doing nothing else. The store has not changed, so it returns
   exactly the pages the poller got, whatever parameters the poller uses today.
5. Rounds: a timed ``poll_once()`` by the next daemon (the same N orders, the same pages) while a
   thread samples this process's RSS, then the bare loop again. Each round's ratio is its poll
   over the faster of the bare loops just before and just after it: the stricter baseline (any
   noise, and any drift of the machine's speed, makes the faster one faster than the bare loop
   would have been during the poll). The bar figure is the median round; every round, and the
   rehearsal, is printed, and so is the median ratio to the *mean* of the two bare loops beside
   each poll, which a steady drift does not bias (for information; it is not the bar).

Before each timed phase the disk is synced, so that the kernel does not write one poll's
database back while the next poll or bare loop is being timed.

The bars (../shared/BRIEF.md, "backlog" and "poll cost") are printed as PASS/FAIL. It is a report:
the exit status is 0 whatever the figures are.

By default the sandbox runs in a child process (``multiprocessing``, spawn) so the RSS figures are
the daemon's alone and the two do not share a GIL; ``--in-process`` keeps it in this process, as
the tests do, and then the RSS includes the sandbox's store and server threads.

The child also gets a CPU of its own where the platform can pin processes (Linux, two CPUs or
more; see ``CpuSplit``): the daemon and the bare loop run on the other CPUs, as a daemon does
beside a store on another server. ``--shared-cpus`` lets the sandbox share the daemon's CPUs,
which on a 2-CPU machine times the store and the daemon fighting for them; both figures are in
bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

import psutil

from wcfollowup.config import Config, load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.engine.poller import PollResult
from wcfollowup.sandbox import sandbox_config_yaml
from wcfollowup.service.daemon import Daemon

START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
API_PREFIX = "/wp-json/wc/v3/"
MB = 1024 * 1024

REQUESTS_SLACK = 1  # ceil(N/100) + 1
MAX_RATIO = 1.3
MAX_PEAK_RSS_MB = 200.0
MAX_FIELDS_SHARE = 1 / 3

SETTINGS = """\
poll:
  interval: 60s
  overlap: 2m
dispatch:
  interval: 10s
  batch_size: 50
  workers: 4
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 30m
        template: thank-you
"""

# -- what the store saw ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    method: str
    path: str
    query: bytes

    def same_request(self, other: Recorded) -> bool:
        """The same call signed again (a retry): only the OAuth parameters differ."""
        return (self.method, self.path, self.params()) == (other.method, other.path, other.params())

    @property
    def is_order_list(self) -> bool:
        return self.method == "GET" and self.path.rstrip("/") == API_PREFIX + "orders"

    def params(self) -> dict[str, str]:
        """The query minus OAuth; a repeated name keeps its last value, as PHP does."""
        pairs = parse_qsl(self.query.decode("latin-1"), keep_blank_values=True)
        return {k: v for k, v in pairs if not k.startswith("oauth_")}


class Recorder:
    """A ``store_faults.hook`` that only watches: it records the request and passes it on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Recorded] = []

    def __call__(self, scope: dict[str, Any]) -> None:
        item = Recorded(scope["method"], scope["path"], scope.get("query_string", b""))
        with self._lock:
            self._seen.append(item)

    def take(self) -> list[Recorded]:
        with self._lock:
            seen, self._seen = self._seen, []
        return seen


def without_retries(seen: list[Recorded]) -> list[Recorded]:
    """The requests minus those that repeat the one before them, signed anew.

    The ``woocommerce`` client's OAuth nonce is a hash of 8 random digits, and the sandbox
    refuses any nonce it saw in the last 15 minutes (stricter than WooCommerce, which keeps one
    per second), so over the ~12,000 requests of a run one clash is likely; the gateway then
    signs the same request again. That is a transport retry, not a request the poll's paging
    asked for: it is counted apart from the "requests" bar, and the bare loop does not replay it.
    """
    return seen[:1] + [
        after for before, after in itertools.pairwise(seen) if not after.same_request(before)
    ]


def retries(seen: list[Recorded]) -> int:
    return len(seen) - len(without_retries(seen))


# -- the sandbox, here or in a child process ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoints:
    store_url: str
    mail_url: str
    consumer_key: str
    consumer_secret: str
    sendgrid_api_key: str


class SandboxHandle(Protocol):
    endpoints: Endpoints
    label: str

    def add_completed(self, n: int) -> datetime: ...
    def record(self, on: bool) -> list[Recorded]: ...
    def now(self) -> datetime: ...
    def rss_mb(self) -> tuple[float, float]: ...
    def close(self) -> None: ...


class StoreDriver:
    """The part that owns the store: shared by both handles (runs where the store lives)."""

    def __init__(self) -> None:
        from wcfollowup.sandbox import Sandbox

        self.clock = FakeClock(START)
        self.sandbox = Sandbox(self.clock, timezone="Asia/Jakarta").start()
        self.recorder = Recorder()

    def endpoints(self) -> Endpoints:
        sb = self.sandbox
        return Endpoints(
            sb.store_url, sb.sendgrid_host, sb.consumer_key, sb.consumer_secret, sb.sendgrid_api_key
        )

    def add_completed(self, n: int) -> datetime:
        """N completed orders one second apart, the oldest a few seconds after now (baseline)."""
        self.clock.advance(timedelta(seconds=n + 5))
        self.sandbox.store.add_orders(n, status="completed", spread_seconds=max(n - 1, 0))
        return self.clock.advance(timedelta(seconds=5))

    def record(self, on: bool) -> list[Recorded]:
        seen = self.recorder.take()
        self.sandbox.store_faults.hook = self.recorder if on else None  # type: ignore[assignment]
        return seen

    def close(self) -> None:
        self.sandbox.stop()


def _rss_mb() -> tuple[float, float]:
    """(current RSS, lifetime high-water mark from getrusage) of this process, in MB."""
    current = psutil.Process().memory_info().rss / MB
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return current, maxrss / (MB if sys.platform == "darwin" else 1024)


class InProcess:
    label = "in-process (sandbox threads share this process: RSS includes the store)"

    def __init__(self) -> None:
        self.driver = StoreDriver()
        self.endpoints = self.driver.endpoints()

    def add_completed(self, n: int) -> datetime:
        return self.driver.add_completed(n)

    def record(self, on: bool) -> list[Recorded]:
        return self.driver.record(on)

    def now(self) -> datetime:
        return self.driver.clock.now()

    def rss_mb(self) -> tuple[float, float]:
        return _rss_mb()

    def close(self) -> None:
        self.driver.close()


def _child(conn: Connection) -> None:
    driver = StoreDriver()
    conn.send(driver.endpoints())
    while True:
        command, arg = conn.recv()
        if command == "add":
            conn.send(driver.add_completed(arg))
        elif command == "record":
            conn.send(driver.record(arg))
        elif command == "now":
            conn.send(driver.clock.now())
        elif command == "rss":
            conn.send(_rss_mb())
        elif command == "stop":
            driver.close()
            conn.send(None)
            return


@dataclass(frozen=True, slots=True)
class CpuSplit:
    """The store on a CPU of its own, this process (daemon and bare loop) on the others.

    A real store answers from its own server, so in the field the daemon never competes with
    the store for a CPU. On a small machine a sandbox that shares the daemon's CPUs takes them
    from the daemon's threads and the daemon's threads take them from the store, which times
    the two fighting rather than the daemon's cost; a split keeps that artefact out of both the
    polls and the bare loops (it is harsher on the daemon, which then has one CPU fewer).
    """

    store: frozenset[int]
    daemon: frozenset[int]

    @classmethod
    def of_this_machine(cls) -> CpuSplit | None:
        """None where the platform cannot pin processes (macOS) or has a single CPU."""
        getaffinity = getattr(os, "sched_getaffinity", None)
        if getaffinity is None:
            return None
        cpus = sorted(getaffinity(0))
        if len(cpus) < 2:
            return None
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:]))

    def describe(self) -> str:
        def names(cpus: frozenset[int]) -> str:
            return ",".join(str(c) for c in sorted(cpus))

        return f"sandbox on CPU {names(self.store)}, daemon and bare loops on {names(self.daemon)}"


class ChildProcess:
    def __init__(self, cpus: CpuSplit | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child_conn,), daemon=True)
        if cpus is None:
            self._proc.start()
            where = "sharing the daemon's CPUs"
        else:
            # The child inherits the affinity it starts with, and so do the threads this
            # process starts afterwards (fetcher, writer, samplers).
            os.sched_setaffinity(0, cpus.store)
            try:
                self._proc.start()
            finally:
                os.sched_setaffinity(0, cpus.daemon)
            where = cpus.describe()
        self.label = f"child process (RSS below is the daemon's alone); {where}"
        self.endpoints: Endpoints = self._conn.recv()

    def _ask(self, command: str, arg: object = None) -> Any:
        self._conn.send((command, arg))
        return self._conn.recv()

    def add_completed(self, n: int) -> datetime:
        return self._ask("add", n)  # type: ignore[no-any-return]

    def record(self, on: bool) -> list[Recorded]:
        return self._ask("record", on)  # type: ignore[no-any-return]

    def now(self) -> datetime:
        return self._ask("now")  # type: ignore[no-any-return]

    def rss_mb(self) -> tuple[float, float]:
        return self._ask("rss")  # type: ignore[no-any-return]

    def close(self) -> None:
        self._ask("stop")
        self._proc.join(timeout=10)


# -- measuring ------------------------------------------------------------------------------


class RssSampler:
    """Samples this process's RSS on a thread; ``peak`` is the high-water mark seen."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


@contextmanager
def quiet_json_logs() -> Iterator[None]:
    """Production log rendering (JSON, secrets redacted) written to /dev/null, not the terminal."""
    from wcfollowup.service.logs import configure_logging

    with open(os.devnull, "w", encoding="utf-8") as devnull:
        saved, sys.stderr = sys.stderr, devnull
        try:
            configure_logging(json=True)
        finally:
            sys.stderr = saved
        yield


@dataclass(frozen=True, slots=True)
class BareRun:
    seconds: float
    requests: int
    items: int
    body_bytes: int
    nonce_retries: int = 0


def settle_disk() -> None:
    """Write back what earlier phases left dirty before the next one is timed.

    Linux writes dirty pages back about 30 s after they were written (vm.dirty_expire_centisecs),
    so without this the kernel would flush one poll's database while a later poll or bare loop
    is being timed, on the same two CPUs.
    """
    os.sync()


def bare_loop(endpoints: Endpoints, requests_: list[Recorded], timeout: float) -> BareRun:
    """Fetch the same pages with the same client, parse them, and do nothing with them."""
    from woocommerce import API

    settle_disk()

    api = API(
        url=endpoints.store_url,
        consumer_key=endpoints.consumer_key,
        consumer_secret=endpoints.consumer_secret,
        version="wc/v3",
        timeout=timeout,
        user_agent="wcfollowup-bench",
    )
    items = body_bytes = nonce_retries = 0
    started = time.perf_counter()
    for request in requests_:
        for _attempt in range(3):
            response = api.get(request.path[len(API_PREFIX) :], params=request.params())
            # The client's nonce is 8 random digits and the sandbox remembers every nonce it
            # has seen, so over thousands of requests one can collide (401): sign again.
            if response.status_code != 401 or "nonce" not in response.text:
                break
            nonce_retries += 1
        response.raise_for_status()
        body = response.json()
        body_bytes += len(response.content)
        items += len(body) if isinstance(body, list) else 1
    return BareRun(time.perf_counter() - started, len(requests_), items, body_bytes, nonce_retries)


def full_order_bytes(endpoints: Endpoints, page: Recorded, timeout: float) -> tuple[int, int]:
    """(bytes, orders) of one poll page fetched again without ``_fields``."""
    from woocommerce import API

    api = API(
        url=endpoints.store_url,
        consumer_key=endpoints.consumer_key,
        consumer_secret=endpoints.consumer_secret,
        version="wc/v3",
        timeout=timeout,
    )
    params = {k: v for k, v in page.params().items() if k != "_fields"}
    response = api.get("orders", params=params)
    response.raise_for_status()
    return len(response.content), len(response.json())


@dataclass
class Figures:
    orders: int
    mode: str
    poll_seconds: float
    ratio: float
    round_ratios: list[float]
    ratio_to_mean: float
    round_seconds: list[float]
    rehearsal_seconds: float
    enrolled: int | None
    orders_seen: int | None
    poll_result_requests: int | None
    store_requests: int
    store_retries: int
    order_list_requests: int
    other_requests: dict[str, int]
    bare: BareRun
    bare_runs: list[float]
    rss_before_mb: float
    rss_peak_mb: float
    rss_samples: int
    maxrss_mb: float
    sandbox_rss: tuple[float, float] | None
    fields_bytes_per_order: float
    full_bytes_per_order: float
    all_enrolled: bool


def build_config(endpoints: Endpoints, workdir: Path) -> Config:
    path = workdir / "config.yaml"
    path.write_text(
        sandbox_config_yaml(endpoints.store_url, endpoints.mail_url, workdir / "state.db")
        + SETTINGS,
        encoding="utf-8",
    )
    env = {
        "WC_CONSUMER_KEY": endpoints.consumer_key,
        "WC_CONSUMER_SECRET": endpoints.consumer_secret,
        "SENDGRID_API_KEY": endpoints.sendgrid_api_key,
    }
    return load_config(path, env=env)


def first_sight(sandbox: SandboxHandle, workdir: Path) -> tuple[Daemon, FakeClock, Config]:
    """A daemon with its own database that has seen the store once (baseline set)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = build_config(sandbox.endpoints, workdir)
    clock = FakeClock(sandbox.now())
    daemon = Daemon(config, clock, sleep=lambda _s: None)
    if daemon.poll_once() is None:  # first sight: sets the baseline, enrols nothing
        daemon.close()
        raise SystemExit("the first poll failed; is the sandbox up?")
    return daemon, clock, config


@dataclass(frozen=True, slots=True)
class TimedPoll:
    seconds: float
    ratio: float  # to the faster bare loop of the two around it
    ratio_to_mean: float  # to the mean of those two
    result: PollResult | None
    requests: list[Recorded]
    rss_before_mb: float
    rss_peak_mb: float
    rss_samples: int


def measure(
    n: int, rounds: int, sandbox: SandboxHandle, workdir: Path, say: Callable[[str], None]
) -> Figures:
    # Every daemon gets its own database and sees the store before the backlog arrives, so each
    # enrols the same N orders from the same pages. The first poll is a rehearsal: it records
    # the requests the bare loop replays. Then bare loops and timed polls alternate, and each
    # timed poll is compared with the faster bare loop on either side of it: this 2-core VM's
    # speed drifts by 20% from minute to minute, so the baseline is measured next to the poll;
    # taking the faster one can only favour the bare loop. The bar figure is the median round.
    rehearsal, rehearsal_clock, config = first_sight(sandbox, workdir / "rehearsal")
    timed = [first_sight(sandbox, workdir / f"timed-{k}") for k in range(rounds)]
    open_daemons = [rehearsal, *(daemon for daemon, _, _ in timed)]
    try:
        say(f"adding {n:,} completed orders one second apart after the baseline ...")
        now = sandbox.add_completed(n)
        rehearsal_clock.set(now)
        for _, clock, _ in timed:
            clock.set(now)
        timeout = config.store.request_timeout.total_seconds()

        say("rehearsal poll (records the requests) ...")
        sandbox.record(True)
        settle_disk()
        started = time.perf_counter()
        rehearsed = rehearsal.poll_once()
        rehearsal_seconds = time.perf_counter() - started
        rehearsal_requests = sandbox.record(False)
        rehearsal.close()  # its memory is not the timed polls'
        open_daemons.remove(rehearsal)
        if rehearsed is None:
            say("WARNING: the rehearsal poll failed (see the logs)")
        replay = [
            r
            for r in without_retries(rehearsal_requests)
            if r.method == "GET" and r.path.startswith(API_PREFIX)
        ]
        say(f"bare loop: replaying {len(replay):,} GET requests ...")
        runs = [bare_loop(sandbox.endpoints, replay, timeout)]
        polls: list[TimedPoll] = []
        for k, (daemon, _, _) in enumerate(timed, start=1):
            say(f"round {k} of {rounds}: timed poll, then the bare loop again ...")
            sandbox.record(True)
            settle_disk()
            rss_before, _ = _rss_mb()
            with RssSampler() as sampler:
                started = time.perf_counter()
                result = daemon.poll_once()
                seconds = time.perf_counter() - started
            recorded = sandbox.record(False)
            daemon.close()
            open_daemons.remove(daemon)
            if result is None:
                say("WARNING: poll_once() returned None (the poll failed; see the logs)")
            runs.append(bare_loop(sandbox.endpoints, replay, timeout))
            baseline = min(runs[-2].seconds, runs[-1].seconds)
            mean = (runs[-2].seconds + runs[-1].seconds) / 2
            polls.append(
                TimedPoll(
                    seconds,
                    seconds / baseline if baseline else float("inf"),
                    seconds / mean if mean else float("inf"),
                    result,
                    recorded,
                    rss_before,
                    sampler.peak / MB,
                    sampler.samples,
                )
            )
        _, maxrss = _rss_mb()
        median = sorted(polls, key=lambda poll: poll.ratio)[len(polls) // 2]
        bare = min(runs, key=lambda run: run.seconds)
        recorded = median.requests
        lists = [r for r in recorded if r.is_order_list]
        others: dict[str, int] = {}
        for r in recorded:
            if not r.is_order_list:
                key = f"{r.method} {r.path}"
                others[key] = others.get(key, 0) + 1
        full_bytes, full_orders = (0, 0)
        if lists:
            full_bytes, full_orders = full_order_bytes(sandbox.endpoints, lists[0], timeout)
        list_items = max(bare.items, 1)
        result = median.result
        return Figures(
            orders=n,
            mode=sandbox.label,
            poll_seconds=median.seconds,
            ratio=median.ratio,
            round_ratios=[poll.ratio for poll in polls],
            ratio_to_mean=sorted(poll.ratio_to_mean for poll in polls)[len(polls) // 2],
            round_seconds=[poll.seconds for poll in polls],
            rehearsal_seconds=rehearsal_seconds,
            enrolled=result.enrolled if result else None,
            orders_seen=result.orders_seen if result else None,
            poll_result_requests=result.requests if result else None,
            store_requests=max(len(without_retries(poll.requests)) for poll in polls),
            store_retries=max(retries(poll.requests) for poll in polls),
            order_list_requests=len(lists),
            other_requests=others,
            bare=bare,
            bare_runs=[run.seconds for run in runs],
            rss_before_mb=polls[0].rss_before_mb,
            rss_peak_mb=max(poll.rss_peak_mb for poll in polls),
            rss_samples=sum(poll.rss_samples for poll in polls),
            maxrss_mb=maxrss,
            sandbox_rss=sandbox.rss_mb() if isinstance(sandbox, ChildProcess) else None,
            fields_bytes_per_order=bare.body_bytes / list_items,
            full_bytes_per_order=full_bytes / max(full_orders, 1),
            all_enrolled=all(
                poll.result is not None and poll.result.enrolled == n for poll in polls
            ),
        )
    finally:
        for daemon in open_daemons:
            daemon.close()


# -- the report -----------------------------------------------------------------------------


def report(f: Figures) -> None:
    n = f.orders
    max_requests = math.ceil(n / 100) + REQUESTS_SLACK
    ratio = f.ratio
    rows: list[tuple[str, str]] = [
        ("orders in the backlog", f"{n:,}"),
        ("sandbox", f.mode),
        ("enrolled / seen (PollResult)", f"{f.enrolled} / {f.orders_seen}"),
        (
            "timed polls (rounds)",
            ", ".join(f"{s:.2f} s" for s in f.round_seconds)
            + "  (ratios: "
            + ", ".join(f"{r:.2f}" for r in f.round_ratios)
            + ")",
        ),
        ("poll wall time (median round)", f"{f.poll_seconds:.2f} s"),
        ("orders/s (poll)", f"{n / f.poll_seconds:,.0f}" if f.poll_seconds else "-"),
        (
            "requests at the store (hook)",
            f"{f.store_requests:,}  (GET /orders: {f.order_list_requests:,})"
            + (f", and {f.store_retries} signed again" if f.store_retries else ""),
        ),
        ("requests per PollResult", f"{f.poll_result_requests}"),
        (
            "bare loop wall time (fastest)",
            f"{f.bare.seconds:.2f} s  (runs, around the polls: "
            + ", ".join(f"{r:.2f}" for r in f.bare_runs)
            + ")",
        ),
        (
            "rehearsal poll (first, not a bar)",
            f"{f.rehearsal_seconds:.2f} s  (ratio {f.rehearsal_seconds / f.bare.seconds:.2f})"
            if f.bare.seconds
            else "-",
        ),
        ("bare loop pages / orders received", f"{f.bare.requests:,} / {f.bare.items:,}"),
        ("orders/s (bare loop)", f"{n / f.bare.seconds:,.0f}" if f.bare.seconds else "-"),
        ("ratio poll / bare (median round)", f"{ratio:.2f}  (to the faster bare loop beside it)"),
        ("ratio to the mean bare loop beside", f"{f.ratio_to_mean:.2f}  (median; not the bar)"),
        ("RSS before the poll", f"{f.rss_before_mb:.1f} MB"),
        (
            "peak RSS during the poll (sampled)",
            f"{f.rss_peak_mb:.1f} MB  ({f.rss_samples:,} samples)",
        ),
        ("RSS growth during the poll", f"{f.rss_peak_mb - f.rss_before_mb:+.1f} MB"),
        ("getrusage maxrss (whole run)", f"{f.maxrss_mb:.1f} MB"),
        ("bytes/order with _fields", f"{f.fields_bytes_per_order:,.0f}"),
        ("bytes/order without _fields", f"{f.full_bytes_per_order:,.0f}"),
    ]
    retries = f.bare.nonce_retries
    if retries:
        rows.append(("bare loop re-signed after a nonce clash", f"{retries}"))
    if f.other_requests:
        rows.append(("other requests", ", ".join(f"{k} x{v}" for k, v in f.other_requests.items())))
    if f.sandbox_rss is not None:
        rows.append(
            (
                "sandbox child RSS now / maxrss",
                f"{f.sandbox_rss[0]:.1f} MB / {f.sandbox_rss[1]:.1f} MB (not the daemon)",
            )
        )
    width = max(len(label) for label, _ in rows)
    print()
    print(
        f"backlog bench - {n:,} orders - Python {platform.python_version()} "
        f"on {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print("-" * (width + 40))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print("-" * (width + 40))

    share = (f.fields_bytes_per_order / f.full_bytes_per_order) if f.full_bytes_per_order else 0.0
    bars = [
        (
            f"requests <= ceil(N/100)+1 = {max_requests:,}",
            f.store_requests <= max_requests,
            f"{f.store_requests:,}",
        ),
        (f"ratio poll/bare <= {MAX_RATIO} (median)", ratio <= MAX_RATIO, f"{ratio:.2f}"),
        (
            f"peak RSS < {MAX_PEAK_RSS_MB:.0f} MB",
            f.rss_peak_mb < MAX_PEAK_RSS_MB,
            f"{f.rss_peak_mb:.1f} MB" + ("" if f.sandbox_rss else " (includes the sandbox)"),
        ),
        ("all N enrolled, every round", f.all_enrolled, f"{f.enrolled}"),
        (
            "_fields bytes/order <= 1/3 of full",
            share <= MAX_FIELDS_SHARE and share > 0,
            f"{share:.2f}",
        ),
    ]
    for name, ok, value in bars:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<40}  {value}")
    if f.sandbox_rss is None:
        print(
            "note: the sandbox ran in this process, so RSS includes its store and server "
            "threads, and both share one GIL; drop --in-process for the daemon alone."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=100_000, help="backlog size (100000)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed polls, each between bare loops (5)"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the sandbox in this process (RSS then includes it)",
    )
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="let the sandbox child share the daemon's CPUs instead of having one of its own",
    )
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    with quiet_json_logs(), tempfile.TemporaryDirectory(prefix="wcf-backlog-") as tmp:
        say(
            "starting the sandbox "
            + ("in this process" if args.in_process else "in a child process")
        )
        cpus = None if args.shared_cpus else CpuSplit.of_this_machine()
        sandbox: SandboxHandle = InProcess() if args.in_process else ChildProcess(cpus)
        try:
            figures = measure(args.orders, args.rounds, sandbox, Path(tmp), say)
        finally:
            sandbox.close()
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
