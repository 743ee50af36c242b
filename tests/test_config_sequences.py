"""The sequence vocabulary: anchors, send windows, caps, delivery and conditions in YAML."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from test_config_loader import ENV, HTTP_BLOCK, VALID

from wcfollowup.config import (
    Condition,
    ConfigError,
    ConfigProblem,
    DeliveryConfig,
    FrequencyCap,
    SendWindow,
    StepConfig,
    load_config,
)
from wcfollowup.config.schedule import format_days, parse_days

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def with_step(extra: str, top: str = "") -> str:
    """VALID with the step's ``after: 30m`` line replaced by ``extra`` (and ``top`` appended)."""
    return before_http(
        VALID.replace("        after: 30m\n", extra, 1).removesuffix(HTTP_BLOCK), top
    )


def before_http(body: str, extra: str) -> str:
    return body + extra + HTTP_BLOCK


def with_conditions(text: str) -> str:
    return VALID.replace("    steps:\n", "    conditions:\n" + text + "    steps:\n", 1)


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=ENV)
    return caught.value.problems


def one(path: Path) -> tuple[int, int, str, str]:
    found = problems(path)
    assert len(found) == 1, [str(p) for p in found]
    p = found[0]
    return p.line, p.column, p.location, p.message


# --- the example ---------------------------------------------------------------------------


def test_example_shows_every_new_option() -> None:
    cfg = load_config(REPO / "config.example.yaml", env=ENV)
    assert cfg.delivery == DeliveryConfig(status="delivered", assume_after=timedelta(days=5))
    assert cfg.send_window == SendWindow(hours=(time(8), time(21)))
    thanks, review, win_back = cfg.sequences
    assert thanks.steps[0].window_always
    assert thanks.steps[0].effective_window(cfg.send_window) is None
    survey, owner_alert, step = review.steps
    assert (survey.kind, survey.after, survey.template) == ("survey", timedelta(days=1), "survey")
    assert owner_alert.to == "owner"
    assert owner_alert.only_if == Condition(survey_score_at_most=3)
    assert (step.anchor, step.after, step.template) == (
        "delivered",
        timedelta(days=3),
        "review-request",
    )
    assert step.kind == "review"
    assert step.window == SendWindow(
        days=frozenset(range(6)), hours=(time(9), time(20)), timezone="customer"
    )
    assert step.effective_window(cfg.send_window) is step.window
    assert step.cap == FrequencyCap(max=1, per=timedelta(days=30))
    assert step.skip_if == Condition.model_validate(
        {"any": [{"survey_score_at_most": 3}, {"meta": {"_review_requested": "yes"}}]}
    )
    assert review.conditions == Condition.model_validate(
        {"not": {"payment_method": "cod"}, "country": ["ID", "MY"]}
    )
    assert win_back.once_per_customer
    coupon_step = win_back.steps[0]
    assert (coupon_step.kind, coupon_step.template) == ("coupon", "coupon")
    assert coupon_step.coupon is not None and coupon_step.coupon.prefix == "TERIMAKASIH"
    assert cfg.http is not None and cfg.http.listen == ("127.0.0.1", 8780)
    assert win_back.steps[0].effective_window(cfg.send_window) == cfg.send_window
    assert win_back.conditions is not None and win_back.conditions.all_of is not None


def test_the_loader_does_not_check_that_templates_exist(write: Callable[[str], Path]) -> None:
    cfg = load_config(write(VALID.replace("template: thank-you", "template: not-written-yet")), ENV)
    assert cfg.sequences[0].steps[0].template == "not-written-yet"


# --- after and anchors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "anchor", "delay"),
    [
        ("after: 30m", "completed", timedelta(minutes=30)),
        ("after: {completed: 1h}", "completed", timedelta(hours=1)),
        ("after: {delivered: 3d}", "delivered", timedelta(days=3)),
        ("after:\n          delivered: 1w2d", "delivered", timedelta(days=9)),
        ("anchor: delivered\n        after: 2d", "delivered", timedelta(days=2)),
    ],
)
def test_after_with_an_anchor(
    write: Callable[[str], Path], after: str, anchor: str, delay: timedelta
) -> None:
    cfg = load_config(write(with_step(f"        {after}\n", "delivery: {assume_after: 7d}\n")), ENV)
    step = cfg.sequences[0].steps[0]
    assert (step.anchor, step.after) == (anchor, delay)
    assert step.model_dump(mode="json")["after"] == step.model_dump(mode="json")["after"]


def test_step_defaults_keep_the_old_api() -> None:
    step = StepConfig(name="a", template="b")
    assert (step.kind, step.after, step.anchor, step.window, step.cap) == (
        "email",
        timedelta(0),
        "completed",
        None,
        None,
    )
    assert (step.skip_if, step.only_if, step.window_always) == (None, None, False)
    default = SendWindow(days=frozenset({0}))
    assert step.effective_window(default) is default
    assert StepConfig(name="a", template="b", window_always=True).effective_window(default) is None


@pytest.mark.parametrize(
    ("after", "where", "message"),
    [
        (
            "after: {delivered: 3x}",
            (16, 28, "sequences[0].steps[0].after.delivered"),
            "'3x' is not a duration (unknown unit 'x'); write a whole number and a unit, like "
            "30s, 30m, 2h, 3d or 1w (s=seconds, m=minutes, h=hours, d=days, w=weeks)",
        ),
        (
            "after: {deliverd: 3d}",
            (16, 27, "sequences[0].steps[0].after.deliverd"),
            "'deliverd' is not something to wait for; did you mean 'delivered'?",
        ),
        (
            "after: {delivered: 3d, completed: 1h}",
            (16, 9, "sequences[0].steps[0].after"),
            "choose one anchor; write a delay like 30m, or anchor it: {delivered: 3d} or "
            "{completed: 1h}",
        ),
    ],
)
def test_after_mistakes(
    write: Callable[[str], Path], after: str, where: tuple[int, int, str], message: str
) -> None:
    path = write(with_step(f"        {after}\n", "delivery: {assume_after: 7d}\n"))
    assert one(path) == (*where, message)


def test_a_delivery_step_needs_a_delivery_section(write: Callable[[str], Path]) -> None:
    assert one(write(with_step("        after: {delivered: 3d}\n"))) == (
        16,
        9,
        "sequences[0].steps[0].after",
        "step 'thank-you' waits for delivery, but the config has no 'delivery' section saying "
        "how delivery is known; add one (see config.example.yaml), or count from completion: "
        "after: 3d",
    )


# --- delivery --------------------------------------------------------------------------------


def test_delivery_options(write: Callable[[str], Path]) -> None:
    top = (
        "delivery:\n  status: wc-Delivered\n  meta_key: _delivered_at\n"
        "  tracking:\n    transit: 3d\n  assume_after: 10d\n"
    )
    delivery = load_config(write(VALID + top), ENV).delivery
    assert delivery is not None
    assert (delivery.status, delivery.meta_key, delivery.assume_after) == (
        "delivered",
        "_delivered_at",
        timedelta(days=10),
    )
    assert delivery.tracking is not None
    assert delivery.tracking.meta_key == "_wc_shipment_tracking_items"
    assert delivery.tracking.transit == timedelta(days=3)


@pytest.mark.parametrize(
    ("top", "where", "message"),
    [
        (
            "delivery: {}\n",
            (18, 1, "delivery"),
            "say how delivery is known: set at least one of 'status', 'meta_key', 'tracking' or "
            "'assume_after' (or remove the 'delivery' section)",
        ),
        (
            "delivery: {status: completed}\n",
            (18, 20, "delivery.status"),
            "'completed' is a WooCommerce core status; the delivered status must be a custom one "
            "that your store sets when the parcel arrives, such as 'delivered'",
        ),
        (
            "delivery: {tracking: {}}\n",
            (18, 12, "delivery.tracking"),
            "missing required key 'transit'",
        ),
        (
            "delivery: {asume_after: 3d}\n",
            (18, 12, "delivery"),
            "unknown key 'asume_after'; did you mean 'assume_after'?",
        ),
    ],
)
def test_delivery_mistakes(
    write: Callable[[str], Path], top: str, where: tuple[int, int, str], message: str
) -> None:
    assert one(write(before_http(VALID.removesuffix(HTTP_BLOCK), top))) == (*where, message)


# --- send windows and caps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon-sat", {0, 1, 2, 3, 4, 5}),
        ("sat,sun", {5, 6}),
        ("Sat, Sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("every day", set(range(7))),
        ("daily", set(range(7))),
        ("weekdays", {0, 1, 2, 3, 4}),
        ("weekend", {5, 6}),
        (["mon", "wed"], {0, 2}),
        (["Monday", "fri-sun"], {0, 4, 5, 6}),
        ("senin-jumat", {0, 1, 2, 3, 4}),
        ("isnin - khamis, ahad", {0, 1, 2, 3, 6}),
    ],
)
def test_day_spellings(days: str | list[str], expected: set[int]) -> None:
    assert parse_days(days) == frozenset(expected)
    assert parse_days(format_days(frozenset(expected))) == frozenset(expected)


def test_window_hours_and_defaults() -> None:
    window = SendWindow.model_validate({"hours": "9:00 - 20:30"})
    assert (window.start, window.end, window.days, window.timezone) == (
        time(9),
        time(20, 30),
        frozenset(range(7)),
        "store",
    )
    assert SendWindow.model_validate({"hours": "20:00-24:00"}).end == time.max
    assert SendWindow(start=time(9), end=time(17)).hours == (time(9), time(17))  # type: ignore[call-arg]
    assert SendWindow.model_validate({"days": "mon"}).model_dump(mode="json") == {
        "days": "mon",
        "hours": "00:00-24:00",
        "timezone": "store",
    }


@pytest.mark.parametrize(
    ("window", "where", "message"),
    [
        (
            "window: sometimes",
            (17, 17, "sequences[0].steps[0].window"),
            "'sometimes' is not a send window; write 'always' or a mapping like "
            '{days: mon-sat, hours: "09:00-20:00"}',
        ),
        (
            "window: {days: mon-frj}",
            (17, 24, "sequences[0].steps[0].window.days"),
            "'mon-frj' is not a list of days ('frj' is not a day; did you mean 'fri'?); write days "
            "like mon-fri, mon-sat, sat,sun, daily or a list [mon, wed]",
        ),
        (
            "window: {days: [mon, tuseday]}",
            (17, 30, "sequences[0].steps[0].window.days[1]"),
            "'tuseday' is not a day (did you mean 'tue'?); write days like mon-fri, mon-sat, "
            "sat,sun, daily or a list [mon, wed]",
        ),
        (
            "window: {hours: '20:00-09:00'}",
            (17, 25, "sequences[0].steps[0].window.hours"),
            "'20:00-09:00' is not a time range (the end must be after the start; a window cannot "
            "run past midnight, so split it or use 24:00 as the end); write hours like "
            '"09:00-20:00" (24-hour clock, start before end)',
        ),
        (
            "window: {hours: 9-25}",
            (17, 25, "sequences[0].steps[0].window.hours"),
            "'9-25' is not a time range ('25' is not a time of day); write hours like "
            '"09:00-20:00" (24-hour clock, start before end)',
        ),
        (
            "window: {timezone: customr}",
            (17, 28, "sequences[0].steps[0].window.timezone"),
            "expected 'store' or 'customer', got 'customr'",
        ),
        (
            "cap: {max: 0}",
            (17, 20, "sequences[0].steps[0].cap.max"),
            "must be at least 1, got the number 0",
        ),
        (
            "cap: {per: 30}",
            (17, 20, "sequences[0].steps[0].cap.per"),
            "the number 30 has no unit; write it like 30s, 30m, 30h or 30d (s=seconds, m=minutes, "
            "h=hours, d=days, w=weeks)",
        ),
        (
            "cap: {kye: x}",
            (17, 15, "sequences[0].steps[0].cap"),
            "unknown key 'kye'; did you mean 'key'?",
        ),
    ],
)
def test_window_and_cap_mistakes(
    write: Callable[[str], Path], window: str, where: tuple[int, int, str], message: str
) -> None:
    assert one(write(with_step(f"        after: 30m\n        {window}\n"))) == (*where, message)


def test_caps_and_always(write: Callable[[str], Path]) -> None:
    text = with_step(
        "        window: always\n        cap: {max: 2, per: ever, key: reviews}\n",
        "send_window: {days: mon-fri, hours: '09:00-17:00'}\n",
    )
    cfg = load_config(write(text), ENV)
    step = cfg.sequences[0].steps[0]
    assert step.cap == FrequencyCap(max=2, per=None, key="reviews")
    assert step.window_always and step.effective_window(cfg.send_window) is None
    assert cfg.send_window == SendWindow(days=frozenset(range(5)), hours=(time(9), time(17)))


# --- conditions ----------------------------------------------------------------------------------


def test_every_condition_parses(write: Callable[[str], Path]) -> None:
    text = with_conditions(
        "      total_at_least: 150000\n"
        "      total_at_most: 499999.50\n"
        "      products: 11\n"
        "      skus: {all: [BTK-01, '007']}\n"
        "      categories: [batik-tulis, 15]\n"
        "      customer: repeat\n"
        "      country: [id, MY]\n"
        "      payment_method: COD\n"
        "      coupon_used: [HEMAT10]\n"
        "      meta: {gift: 'yes', count: 2, anything: null}\n"
        "      survey_score_at_least: 4\n"
    )
    cfg = load_config(write(text), ENV)
    condition = cfg.sequences[0].conditions
    assert condition is not None
    assert condition.total_at_least == Decimal(150000)
    assert condition.total_at_most == Decimal("499999.50")
    assert condition.products is not None and condition.products.any_of == frozenset({11})
    assert condition.skus is not None and condition.skus.all_of == frozenset({"btk-01", "007"})
    assert condition.categories is not None
    assert condition.categories.any_of == frozenset({"batik-tulis", "15"})
    assert condition.customer == "repeat"
    assert condition.country == frozenset({"ID", "MY"})
    assert condition.payment_method == frozenset({"cod"})
    assert condition.coupon_used == frozenset({"hemat10"})
    assert condition.meta == {"gift": "yes", "count": "2", "anything": None}
    assert condition.survey_score_at_least == 4
    assert "total_at_least=Decimal('150000')" in repr(condition)
    assert "all_of=None" not in repr(condition) and "not_=" not in repr(condition)


@pytest.mark.parametrize(("written", "expected"), [("true", True), ("no", False), ("yes", True)])
def test_coupon_used_flags(written: str, expected: bool) -> None:
    assert Condition.model_validate({"coupon_used": written}).coupon_used is expected


def test_a_list_means_all_and_code_may_use_python_names() -> None:
    listed = Condition.model_validate([{"country": "ID"}, {"customer": "first"}])
    assert listed.all_of == (Condition(country=frozenset({"ID"})), Condition(customer="first"))
    built = Condition(not_=Condition(payment_method=frozenset({"cod"})))
    assert built == Condition.model_validate({"not": {"payment_method": "cod"}})


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "      total_atleast: 100\n",
            (15, 7, "sequences[0].conditions"),
            "unknown condition 'total_atleast'; did you mean 'total_at_least'?",
        ),
        (
            "      min_total: 100\n",
            (15, 7, "sequences[0].conditions"),
            "unknown condition 'min_total'; did you mean 'total_at_least'?",
        ),
        (
            "      weather: sunny\n",
            (15, 7, "sequences[0].conditions"),
            "unknown condition 'weather'; the conditions are: all, any, not, total_at_least, "
            "total_at_most, products, skus, categories, customer, country, payment_method, "
            "coupon_used, meta, survey_score_at_least, survey_score_at_most",
        ),
        (
            "      any:\n        - country: ID\n        - not: {paymnt_method: cod}\n",
            (17, 17, "sequences[0].conditions.any[1].not"),
            "unknown condition 'paymnt_method'; did you mean 'payment_method'?",
        ),
        (
            "      total_at_least: 150.000\n",
            (15, 23, "sequences[0].conditions.total_at_least"),
            "'150.000' is ambiguous; write the amount without thousands separators, like 150000",
        ),
        (
            "      total_at_least: Rp 150000\n",
            (15, 23, "sequences[0].conditions.total_at_least"),
            "'Rp 150000' is not an amount; write digits only, like 150000 or 49.90 "
            "(no currency symbol, no thousands separators)",
        ),
        (
            "      country: [ID, Malaysia]\n",
            (15, 21, "sequences[0].conditions.country[1]"),
            "'Malaysia' is not a two-letter country code; did you mean MY?",
        ),
        (
            "      customer: frist\n",
            (15, 17, "sequences[0].conditions.customer"),
            "expected 'first' or 'repeat', got 'frist'",
        ),
        (
            "      any: []\n",
            (15, 7, "sequences[0].conditions.any"),
            "the list is empty; write at least one condition below 'any'",
        ),
        (
            "      products: {all: [11, abc]}\n",
            (15, 28, "sequences[0].conditions.products.all[1]"),
            "expected a whole number, got 'abc'",
        ),
        (
            "      products: {some: [11]}\n",
            (15, 18, "sequences[0].conditions.products"),
            "unknown key 'some'; the keys allowed here are: any, all",
        ),
        (
            "      meta: {gift: true}\n",
            (15, 20, "sequences[0].conditions.meta.gift"),
            "true is ambiguous here; write the exact text the order stores, in quotes, like "
            "'yes' or '1'",
        ),
        (
            "      not:\n",
            (14, 5, "sequences[0].conditions"),
            "write at least one condition, like 'total_at_least: 150000' or 'country: ID'",
        ),
    ],
)
def test_condition_mistakes_point_at_their_line(
    write: Callable[[str], Path], text: str, where: tuple[int, int, str], message: str
) -> None:
    assert one(write(with_conditions(text))) == (*where, message)


def test_step_guards_report_their_own_place(write: Callable[[str], Path]) -> None:
    text = with_step(
        "        after: 30m\n        skip_if: {coupon_usd: true}\n"
        "        only_if: {country: Indonesia}\n"
    )
    found = [(p.line, p.location, p.message) for p in problems(write(text))]
    assert found == [
        (
            17,
            "sequences[0].steps[0].skip_if",
            "unknown condition 'coupon_usd'; did you mean 'coupon_used'?",
        ),
        (
            18,
            "sequences[0].steps[0].only_if.country",
            "'Indonesia' is not a two-letter country code; did you mean ID?",
        ),
    ]


def test_conditions_as_text_are_refused(write: Callable[[str], Path]) -> None:
    text = VALID.replace("    steps:\n", "    conditions: country ID\n    steps:\n", 1)
    assert one(write(text))[3] == (
        "'country ID' is not a condition; write it as 'name: value', like 'country: ID' or "
        "'customer: repeat'"
    )
