"""The crash bar, short enough for CI: the real daemon SIGKILLed eight times while orders flow.

The harness is ``bench/chaos.py`` (the bench runs it with 50 kills); this test runs it small and
asserts its figures, which come from the mail sink's and the sandbox store's own records.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench" / "chaos.py"


def load_chaos() -> ModuleType:
    """bench/ is scripts, not a package: load the harness from its file."""
    spec = importlib.util.spec_from_file_location("wcf_bench_chaos", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_sigkill_at_random_moments_sends_nothing_twice_and_loses_nothing(
    tmp_path: Path,
) -> None:
    chaos = load_chaos()
    report = chaos.run_chaos(orders=30, kills=8, seed=7, workdir=tmp_path, settle_timeout=60)
    summary = "\n".join(report.lines())
    print(summary)

    assert report.kills == 8
    assert report.kills_in_flight >= 1, summary  # some kills really landed mid-request
    assert report.steps == report.steps_expected == 30 * chaos.STEPS_PER_ORDER, summary
    assert report.duplicates == 0, summary
    assert not {"waiting", "pending", "claimed", "sending"} & set(report.states), summary
    assert report.uncertain <= report.kills, summary
    assert report.sent + report.uncertain + report.states.get("skipped", 0) == report.steps, (
        summary  # nothing here has a reason to fail or be cancelled
    )
    assert report.sent_not_in_sink == 0 and report.in_sink_not_recorded == 0, summary
    # Every coupon step made exactly one coupon in the store, whatever its email's fate.
    assert report.store_coupons == report.coupon_steps == 30, summary
    assert report.coupon_duplicates == 0 and report.coupons_missing == 0, summary
    assert report.restarts_refused == 0 and report.final_exit_code == 0, summary
    assert report.problems == [], summary
