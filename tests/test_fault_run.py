"""The faults bar: the same weeks of orders run fault-free and with 20% of requests faulted.

Every kind of fault the injector has, on both servers, at 20% of the requests the daemon makes;
the daemon's retries sleep through ``sleep=lambda _s: None`` and time moves only on the
FakeClock. The faulted run must end where the fault-free run ends: the same steps sent, each
exactly once in the sink, each coupon made once in the store, nothing left half-done.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.schema import coupons as coupon_rows
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.sandbox import Fault, FaultPlan, Sandbox
from wcfollowup.sandbox.faults import MAIL_FAULTS, rule
from wcfollowup.service.daemon import Daemon

ORDERS = 200
RATE = 0.2
REJECTED = "farah_guest"  # SendGrid answers 400 for this customer's address
CUSTOMERS = ["siti", "nurul", "tan", "dewi", "putu", "andre", "budi_guest", REJECTED]
FINAL = {"sent", "failed", "skipped", "cancelled", "uncertain"}

SEQUENCES = """\
poll:
  interval: 60s
delivery:
  status: delivered
  assume_after: 5d
sequences:
  - name: thanks
    steps:
      - name: thank-you
        after: 10m
        template: thank-you
  - name: after-delivery
    steps:
      - name: survey
        kind: survey
        after: {delivered: 1d}
      - name: owner-alert
        to: owner
        template: low-score-alert
        after: {delivered: 2d}
        only_if: {survey_score_at_most: 3}
      - name: review
        kind: review
        after: {delivered: 3d}
        skip_if: {survey_score_at_most: 3}
  - name: reward
    steps:
      - name: coupon
        kind: coupon
        after: 1h
        coupon:
          discount_type: percent
          amount: 10
          expires_in: 30d
          prefix: TERIMAKASIH
"""

# Slow answers cost a real second of client timeout each, so they are rarer than the rest, but
# common enough (several per run) that every kind is injected whatever the threads' timing.
STORE_KINDS = {
    Fault.RATE_LIMITED: 1.0,
    Fault.ERROR_JSON: 1.0,
    Fault.ERROR_HTML: 1.0,
    Fault.RESET: 1.0,
    Fault.HTML_200: 1.0,
    Fault.NOT_JSON: 1.0,
    Fault.TRUNCATED: 1.0,
    Fault.LOST_ERROR: 1.0,
    Fault.LOST_RESET: 1.0,
    Fault.SLOW: 0.15,
    Fault.LOST_SLOW: 0.1,
}
PAGING_KINDS = {**STORE_KINDS, Fault.TOUCH: 1.0}
MAIL_KINDS = {kind: (0.12 if kind is Fault.LOST_SLOW else 1.0) for kind in MAIL_FAULTS}


@dataclass
class Outcome:
    """What a run left behind, keyed by the run's own order index (store ids may differ)."""

    final: dict[tuple[int, str, str], str] = field(default_factory=dict)
    finals_per_step: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    in_sink: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    sink_per_step_id: Counter[str] = field(default_factory=Counter)
    rejected_reasons: list[str] = field(default_factory=list)
    other_failures: list[str] = field(default_factory=list)
    step_states: dict[str, int] = field(default_factory=dict)
    coupon_steps: int = 0
    store_coupons_per_code: Counter[str] = field(default_factory=Counter)
    orphan_store_coupons: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    faults_by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: float = 0.0


def fault_plan(clock: FakeClock, created: list[int]) -> FaultPlan:
    return FaultPlan(
        [
            rule("GET .*/wc/v3/orders$", RATE, PAGING_KINDS),
            rule("POST .*/wc/v3/coupons$", RATE, STORE_KINDS),
            rule("GET .*/wc/v3/", RATE, STORE_KINDS),
            rule("POST /v3/mail/send$", RATE, MAIL_KINDS),
        ],
        seed=20,
        clock=clock,
        timeout=1.0,
        touchable=lambda: list(created),
    )


def config_text(sandbox: Sandbox, db_path: Path) -> str:
    """The sandbox config with 1 s request timeouts, so a stalled answer costs one second."""
    text = sandbox.config_yaml(db_path)
    text = text.replace(
        "  timezone: Asia/Jakarta\n", "  timezone: Asia/Jakarta\n  request_timeout: 1s\n"
    )
    text = text.replace("  from_email:", "  request_timeout: 1s\n  from_email:", 1)
    return text + SEQUENCES


def step(daemon: Daemon, clock: FakeClock) -> None:
    daemon.poll_once()
    for _ in range(1000):
        if not daemon.dispatch_once().outcomes:
            return
    raise AssertionError("dispatch never drained")


def run(workdir: Path, *, faulted: bool) -> Outcome:
    started = time.monotonic()
    clock = FakeClock(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
    rng = random.Random(42)
    outcome = Outcome()
    created: list[int] = []
    index_of: dict[int, int] = {}
    with Sandbox(clock, timezone="Asia/Jakarta") as sandbox:
        sandbox.store.register_status("delivered")
        seeded_coupons = set(sandbox.store.coupons)
        rejected_email = sandbox.store.get(
            int(sandbox.store.create_order(customer=REJECTED, items=[(11, 1)])["id"])
        )["billing"]["email"]
        path = workdir / "config.yaml"
        path.write_text(config_text(sandbox, workdir / "state.db"), encoding="utf-8")
        daemon = Daemon(load_config(path, env=sandbox.config_env()), clock, sleep=lambda _s: None)
        plan = fault_plan(clock, created)
        plan.reject_address(rejected_email)
        plan.enabled = faulted
        plan.install(sandbox)
        try:
            plan.enabled = False
            daemon.run_once()  # first sight: the seeded orders are history
            plan.enabled = faulted
            book = SurveyBook(daemon.state)
            answered: set[str] = set()
            # Each 20-minute tick: new orders, completions, deliveries, a few refunds, survey
            # answers for surveys that arrived; then the daemon polls and dispatches.
            timeline: dict[int, list[tuple[str, int]]] = {}
            for i in range(ORDERS):
                at = i // 2
                timeline.setdefault(at, []).append(("create", i))
                timeline.setdefault(at + 1, []).append(("complete", i))
                if i % 7 != 3:  # the rest are assumed delivered after 5 days
                    timeline.setdefault(at + 12 + i % 9, []).append(("deliver", i))
                if i % 29 == 5:
                    timeline.setdefault(at + 8, []).append(("refund", i))
            busy = max(timeline) + 1
            for tick in range(busy + 14 * 12):  # then two weeks in 2-hour ticks
                for action, i in timeline.get(tick, []):
                    if action == "create":
                        customer = CUSTOMERS[rng.randrange(len(CUSTOMERS))]
                        items = [(rng.choice([11, 12, 13, 14, 15]), rng.randint(1, 3))]
                        order = sandbox.store.create_order(customer=customer, items=items)
                        created.append(int(order["id"]))
                        index_of[int(order["id"])] = i
                    elif action == "complete":
                        sandbox.store.complete(created[i])
                    elif action == "deliver":
                        if sandbox.store.get(created[i])["status"] == "completed":
                            sandbox.store.set_status(created[i], "delivered")
                    else:
                        sandbox.store.refund(created[i])
                for mail in sandbox.sink.messages:
                    args = mail.custom_args
                    step_id = args.get("wcf_step_id", "")
                    if args.get("wcf_step") != "survey" or step_id in answered:
                        continue
                    answered.add(step_id)
                    i = index_of[int(args["wcf_order_id"])]
                    if i % 5 in (0, 2):  # some customers answer: low, high
                        score = 2 if i % 5 == 0 else 5
                        book.record_survey_score(int(step_id), int(args["wcf_order_id"]), score,
                                                 clock.now())  # fmt: skip
                clock.advance(timedelta(minutes=20 if tick < busy else 120))
                step(daemon, clock)
            plan.enabled = False
            clock.advance(timedelta(hours=2))  # anything postponed by the last faults
            step(daemon, clock)

            for entry in daemon.state.messages():
                if entry.status in FINAL and entry.order_id in index_of:
                    key = (index_of[entry.order_id], entry.sequence, entry.step)
                    outcome.final[key] = entry.status
                    outcome.finals_per_step[key] += 1
                    if entry.status == "failed":
                        if entry.recipient == rejected_email:
                            outcome.rejected_reasons.append(entry.reason)
                        else:
                            outcome.other_failures.append(f"{key}: {entry.reason}")
            for mail in sandbox.sink.messages:
                args = mail.custom_args
                if int(args.get("wcf_order_id", 0)) in index_of:
                    key = (index_of[int(args["wcf_order_id"])], args["wcf_sequence"],
                           args["wcf_step"])  # fmt: skip
                    outcome.in_sink[key] += 1
                    outcome.sink_per_step_id[args["wcf_step_id"]] += 1
            outcome.step_states = daemon.state.step_states()
            with daemon.state.tx() as conn:
                codes = {str(row.code) for row in conn.execute(select(coupon_rows.c.code))}
            outcome.coupon_steps = len(codes)
            for coupon_id, coupon in sandbox.store.coupons.items():
                if coupon_id in seeded_coupons:
                    continue
                if coupon.code in codes:
                    outcome.store_coupons_per_code[coupon.code] += 1
                else:
                    outcome.orphan_store_coupons += 1
            outcome.faults = plan.by_kind()
            outcome.faults_by_rule = plan.counts
        finally:
            plan.uninstall()
            daemon.close()
    outcome.seconds = time.monotonic() - started
    return outcome


def test_twenty_percent_faults_change_nothing(tmp_path: Path) -> None:
    (tmp_path / "clean").mkdir()
    (tmp_path / "faulted").mkdir()
    clean = run(tmp_path / "clean", faulted=False)
    faulted = run(tmp_path / "faulted", faulted=True)

    uncertain = {k for k, status in faulted.final.items() if status == "uncertain"}
    duplicates = sum(n - 1 for n in faulted.sink_per_step_id.values() if n > 1)
    print(
        f"\nfault-free: {len(clean.final)} steps in {clean.seconds:.1f}s; faulted: "
        f"{len(faulted.final)} steps in {faulted.seconds:.1f}s\n"
        f"faults injected: {sum(faulted.faults.values())} {faulted.faults}\n"
        f"statuses fault-free {Counter(clean.final.values())}\n"
        f"statuses faulted    {Counter(faulted.final.values())}\n"
        f"uncertain={len(uncertain)} duplicates={duplicates} "
        f"coupons={sum(faulted.store_coupons_per_code.values())}/{faulted.coupon_steps}"
    )

    # The faults really happened: every kind, on both servers.
    kinds = {kind for (_rule, kind) in faulted.faults_by_rule}
    assert kinds >= {k.value for k in Fault}, faulted.faults
    assert any(r == "POST /v3/mail/send$" for (r, _k) in faulted.faults_by_rule)
    assert faulted.faults.get("400-address", 0) >= 1
    assert clean.faults == {"400-address": clean.faults.get("400-address", 0)}

    # The fault-free run did every kind of follow-up.
    statuses = Counter(clean.final.values())
    steps_sent = {step for (_i, _seq, step), status in clean.final.items() if status == "sent"}
    assert steps_sent == {"thank-you", "survey", "owner-alert", "review", "coupon"}
    assert statuses["cancelled"] > 0 and statuses["failed"] > 0 and statuses["skipped"] > 0
    assert "uncertain" not in statuses

    # Uncertain only where SendGrid took the mail and the answer was lost: each such step is
    # in the sink exactly once. Counting it as sent makes the two runs comparable.
    assert all(faulted.in_sink[key] == 1 for key in uncertain), uncertain
    assert len(uncertain) <= faulted.faults.get("lost-slow", 0)
    as_if_sent = {k: ("sent" if s == "uncertain" else s) for k, s in faulted.final.items()}
    assert faulted.other_failures == clean.other_failures == []
    assert as_if_sent == clean.final
    assert faulted.in_sink == clean.in_sink
    assert duplicates == 0
    assert set(faulted.finals_per_step.values()) == {1}

    # The rejected address failed for good, with SendGrid's own words.
    assert faulted.rejected_reasons and all(
        "Does not contain a valid address." in reason for reason in faulted.rejected_reasons
    )
    assert len(faulted.rejected_reasons) == len(clean.rejected_reasons)

    # Each coupon step made exactly one coupon in the store; nothing else was made.
    for outcome in (clean, faulted):
        assert outcome.coupon_steps > 0
        assert len(outcome.store_coupons_per_code) == outcome.coupon_steps
        assert set(outcome.store_coupons_per_code.values()) == {1}
        assert outcome.orphan_store_coupons == 0
        assert not {"pending", "claimed", "sending"} & set(outcome.step_states), outcome
