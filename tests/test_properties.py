"""Properties over broken input: whatever a store or an owner hands us, nothing unexpected raises.

Order-shaped garbage keeps WooCommerce's keys and nesting but lets any value be anything JSON
can hold, so the readers meet both the real shapes and nonsense inside them. Config garbage is
YAML-ish text built from the config's own vocabulary (so validation is reached, not only the
parser) and arbitrary structures dumped to YAML. The condition evaluator's algebra is covered
in ``test_conditions.py``; here it meets the nested garbage.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from test_conditions import trees

from wcfollowup.config import Condition, ConfigError, load_config
from wcfollowup.core.conditions import OrderFacts, evaluate, explain
from wcfollowup.core.context import MAX_LISTED_ITEMS, email_context
from wcfollowup.core.language import SUPPORTED_LANGUAGES, language_for
from wcfollowup.core.orders import OrderSnapshot
from wcfollowup.core.shapes import tidy_order
from wcfollowup.render.check import sample_extras
from wcfollowup.render.renderer import Renderer

MODEST = settings(max_examples=150, deadline=None)
JAKARTA = ZoneInfo("Asia/Jakarta")

# -- order-shaped garbage -------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "150000.00",
            "NaN",
            "-Infinity",
            "1e999999",
            "12,5",
            "",
            "<script>alert(1)</script>",
            '"><img src=x onerror=alert(1)>',
            "javascript:alert(1)",
            "محمد",
            "🌸",
            "2026-02-30T25:61:00",
            "2026-11-22T03:00:00",
            "1772589600",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is usually the right shape and sometimes anything at all."""
    return strategy | json_values


line_items = st.lists(
    maybe(
        st.fixed_dictionaries(
            {},
            optional={
                "name": maybe(st.text(max_size=20)),
                "product_id": maybe(st.integers(-3, 40)),
                "variation_id": maybe(st.integers(0, 3)),
                "quantity": maybe(st.integers(-2, 5)),
                "subtotal": maybe(st.decimals(0, 10**6, places=2).map(str)),
                "total": maybe(st.decimals(0, 10**6, places=2).map(str)),
                "price": scalars,
                "sku": scalars,
                "image": maybe(st.fixed_dictionaries({"src": scalars})),
            },
        )
    ),
    max_size=6,
)
tracking_items = st.fixed_dictionaries(
    {},
    optional={
        "tracking_number": scalars,
        "tracking_provider": scalars,
        "custom_tracking_provider": scalars,
        "custom_tracking_link": scalars,
        "date_shipped": scalars,
    },
)
meta_data = st.lists(
    maybe(
        st.fixed_dictionaries(
            {
                "key": st.sampled_from(["_wc_shipment_tracking_items", "gift", ""]) | scalars,
                "value": maybe(st.lists(maybe(tracking_items), max_size=3) | tracking_items),
            }
        )
    ),
    max_size=4,
)
garbage_orders = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe(st.integers(1, 10**6)),
        "number": scalars,
        "status": maybe(st.sampled_from(["completed", "refunded", "delivered"])),
        "currency": maybe(st.sampled_from(["IDR", "MYR", "XYZ", "", "idr", "EUR"])),
        "total": scalars,
        "total_tax": scalars,
        "shipping_total": scalars,
        "discount_total": scalars,
        "payment_method_title": scalars,
        "date_created_gmt": scalars,
        "date_created": scalars,
        "date_modified_gmt": maybe(st.just("2026-11-22T03:00:00")),
        "date_completed_gmt": scalars,
        "customer_id": scalars,
        "billing": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "first_name": scalars,
                    "last_name": scalars,
                    "email": scalars,
                    "country": maybe(st.sampled_from(["ID", "MY", "BN", "SG", "id", ""])),
                    "state": scalars,
                },
            )
        ),
        "line_items": maybe(line_items),
        "coupon_lines": maybe(st.lists(maybe(st.fixed_dictionaries({"code": scalars})))),
        "meta_data": maybe(meta_data),
    },
)
big_carts = st.integers(MAX_LISTED_ITEMS - 1, 3 * MAX_LISTED_ITEMS).map(
    lambda n: {
        "currency": "IDR",
        "line_items": [
            {"name": f"Item {i}", "product_id": i + 1, "quantity": 1, "total": "1000.00"}
            for i in range(n)
        ],
    }
)

# -- templates -------------------------------------------------------------------------------

RENDERER = Renderer()
BUILT_IN = sorted(
    {
        name.split("/")[1].split(".")[0]
        for name in RENDERER.env.list_templates()
        if name.count("/") == 1
        and not name.split("/")[1].startswith("_")
        and not name.startswith("_")
    }
)


def context_for(order: dict[str, Any], language: str) -> dict[str, Any]:
    return email_context(
        order,
        store_name="Toko <Batik> & Sari",
        store_url="https://toko.example",
        store_tz=JAKARTA,
        language=language,
        returns_url="https://toko.example/returns",
        extras=sample_extras(None, language, "https://toko.example"),
    )


def test_every_built_in_template_is_covered() -> None:
    assert set(BUILT_IN) >= {"thank-you", "review-request", "survey", "coupon", "low-score-alert"}


@MODEST
@given(garbage_orders, st.sampled_from(SUPPORTED_LANGUAGES))
def test_any_order_renders_every_built_in_template(order: dict[str, Any], language: str) -> None:
    context = context_for(order, language)
    for template in BUILT_IN:
        email = RENDERER.render(template, language, context)
        assert email.subject and "\n" not in email.subject
        assert "<script" not in email.html and "<img src=x" not in email.html
        assert 'href="javascript:' not in email.html


@settings(max_examples=20, deadline=None)
@given(big_carts)
def test_a_big_cart_lists_the_first_lines_and_counts_the_rest(order: dict[str, Any]) -> None:
    order_section = context_for(order, "en")["order"]
    lines = len(order["line_items"])
    assert len(order_section["items"]) == min(lines, MAX_LISTED_ITEMS)
    assert order_section["item_count"] == lines
    assert order_section["items_not_listed"] == max(0, lines - MAX_LISTED_ITEMS)
    assert f"{lines * 1000:,}" in order_section["subtotal"]  # the totals cover every line


@MODEST
@given(garbage_orders)
def test_readers_at_the_edge_never_raise_anything_unexpected(order: dict[str, Any]) -> None:
    assert language_for(order, "en", {"ID": "id"}) in {"en", "id"}
    tidy = tidy_order(order)
    for key in ("billing", "shipping"):
        assert isinstance(tidy.get(key, {}), dict)
    for key in ("line_items", "coupon_lines", "meta_data"):
        assert all(isinstance(item, dict) for item in tidy.get(key, []))
    try:  # the poller skips (and logs) an order that raises one of these
        snapshot = OrderSnapshot.from_wc(order)
    except (KeyError, TypeError, ValueError):
        return
    assert isinstance(snapshot.email, str) and isinstance(snapshot.number, str)


# -- conditions on nested garbage -------------------------------------------------------------

LEAF_SAMPLES: dict[str, object] = {
    "total_at_least": 1,
    "total_at_most": 1,
    "products": [1, 2],
    "skus": "a",
    "categories": {"all": ["a", "1"]},
    "customer": "repeat",
    "country": ["ID", "MY"],
    "payment_method": "cod",
    "coupon_used": ["x"],
    "meta": {"gift": "yes", "_wc_shipment_tracking_items": None},
    "survey_score_at_least": 1,
    "survey_score_at_most": 3,
}
garbage_facts = st.builds(
    OrderFacts,
    order=garbage_orders,
    prior_orders=st.none() | st.integers(0, 3),
    product_categories=st.dictionaries(
        st.integers(-3, 40), st.frozensets(st.sampled_from(["a", "1"]), max_size=2), max_size=4
    ),
    survey_score=st.none() | st.integers(1, 5),
)


def test_every_leaf_condition_is_sampled() -> None:
    combinators = {"all_of", "any_of", "not_"}
    assert set(LEAF_SAMPLES) == set(Condition.model_fields) - combinators


@MODEST
@given(garbage_facts, trees)
def test_every_condition_on_nested_garbage_is_a_bool(fact: OrderFacts, tree: Condition) -> None:
    for name, sample in LEAF_SAMPLES.items():
        leaf = Condition.model_validate({name: sample})
        assert isinstance(evaluate(leaf, fact), bool)
        assert isinstance(explain(leaf, fact), str)
    assert isinstance(evaluate(tree, fact), bool)


# -- config files ----------------------------------------------------------------------------

PROBLEM = re.compile(r"^.+:\d+:\d+: .+: .+$")
KEYS = [
    "store", "name", "url", "consumer_key", "consumer_secret", "timezone", "language",
    "sendgrid", "api_key", "from_email", "database", "path", "sequences", "steps", "kind",
    "after", "template", "to", "coupon", "amount", "discount_type", "expires_in", "window",
    "days", "hours", "cap", "max", "per", "only_if", "skip_if", "all", "any", "not",
    "total_at_least", "country", "delivery", "status", "assume_after", "send_window", "poll",
    "interval", "dispatch", "workers", "http", "public_url", "<<", "conditions",
]  # fmt: skip
VALUES = [
    "", "3d", "30m", "-1", "0", "1e9", "yes", "null", "~", "[]", "{}", "[a, b]", "{a: 1}",
    "Asia/Jakarta", "Asia/Jakata", "https://toko.example", "not a url", "${UNSET}", "$${X}",
    "&a x", "*a", "!!python/object:os.system", "'unterminated", '"\\x"', "|", ">-", "09:00-20:00",
    "mon-sat", "customer", "owner", "survey", "coupon", "review", "percent", "☃", "\t",
]  # fmt: skip
yaml_lines = st.tuples(
    st.integers(0, 3), st.sampled_from(KEYS), st.sampled_from(["", "- "]), st.sampled_from(VALUES)
).map(lambda p: f"{'  ' * p[0]}{p[2]}{p[1]}: {p[3]}")
yaml_ish = st.lists(yaml_lines | st.text(max_size=20), max_size=25).map("\n".join)


def dump_yaml(data: object) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return out.getvalue()


structures = st.recursive(
    scalars | st.sampled_from(VALUES),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=20,
).map(dump_yaml)


def assert_loads_or_explains(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, env={"WC_KEY": "ck_x"})
    except ConfigError as error:
        assert error.problems, "a ConfigError must say what is wrong"
        for problem in error.problems:
            assert PROBLEM.match(str(problem)), str(problem)
            assert str(problem).startswith(str(path)) or str(problem).startswith(path.name)


@MODEST
@given(yaml_ish)
def test_yaml_ish_text_loads_or_raises_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    assert_loads_or_explains(tmp_path_factory.mktemp("cfg") / "config.yaml", text)


@MODEST
@given(structures)
def test_any_structure_dumped_to_yaml_loads_or_raises_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    assert_loads_or_explains(tmp_path_factory.mktemp("cfg") / "config.yaml", text)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_ish | structures)
def test_check_exits_0_or_2_without_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("cli") / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    done = subprocess.run(
        [sys.executable, "-m", "wcfollowup", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
