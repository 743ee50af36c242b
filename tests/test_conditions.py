"""The condition evaluator: every test by example, and its algebra by property."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wcfollowup.config import Condition
from wcfollowup.core.conditions import (
    OrderFacts,
    evaluate,
    explain,
    needs_categories,
    needs_history,
    required_fields,
)

ORDER: dict[str, Any] = {
    "id": 7,
    "total": "150000.00",
    "currency": "IDR",
    "customer_id": 3,
    "billing": {"country": "id", "email": "sari@example.test"},
    "payment_method": "bacs",
    "line_items": [
        {"product_id": 11, "variation_id": 0, "sku": "BTK-01"},
        {"product_id": 20, "variation_id": 21, "sku": "SRG-02"},
    ],
    "coupon_lines": [{"code": "hemat10"}],
    "meta_data": [{"key": "gift", "value": "yes"}, {"key": "count", "value": 2}],
}
FACTS = OrderFacts(
    ORDER,
    prior_orders=2,
    product_categories={11: frozenset({"batik-tulis", "15"}), 20: frozenset({"sarung"})},
    survey_score=4,
)


def cond(data: object) -> Condition:
    return Condition.model_validate(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"total_at_least": 150000}, True),
        ({"total_at_least": "150000.01"}, False),
        ({"total_at_most": 150000}, True),
        ({"total_at_most": 149999}, False),
        ({"products": 11}, True),
        ({"products": [21]}, True),  # a variation id counts
        ({"products": [99, 12]}, False),
        ({"products": {"all": [11, 20]}}, True),
        ({"products": {"all": [11, 99]}}, False),
        ({"skus": "btk-01"}, True),
        ({"skus": {"all": ["BTK-01", "SRG-02"]}}, True),
        ({"skus": ["nope"]}, False),
        ({"categories": "batik-tulis"}, True),
        ({"categories": [15]}, True),
        ({"categories": {"all": ["sarung", "batik-tulis"]}}, True),
        ({"categories": {"all": ["sarung", "kebaya"]}}, False),
        ({"customer": "repeat"}, True),
        ({"customer": "first"}, False),
        ({"country": "ID"}, True),
        ({"country": ["my", "sg"]}, False),
        ({"payment_method": "BACS"}, True),
        ({"payment_method": ["cod"]}, False),
        ({"coupon_used": True}, True),
        ({"coupon_used": False}, False),
        ({"coupon_used": "HEMAT10"}, True),
        ({"coupon_used": ["lebaran"]}, False),
        ({"meta": {"gift": "yes"}}, True),
        ({"meta": {"count": 2}}, True),
        ({"meta": {"gift": "no"}}, False),
        ({"meta": {"gift": None}}, True),
        ({"meta": {"missing": None}}, False),
        ({"survey_score_at_least": 4}, True),
        ({"survey_score_at_least": 5}, False),
        ({"country": "ID", "customer": "first"}, False),  # several keys: all of them
        ({"any": [{"customer": "first"}, {"country": "ID"}]}, True),
        ({"all": [{"customer": "repeat"}, {"not": {"payment_method": "cod"}}]}, True),
        ({"not": {"coupon_used": True}}, False),
        ([{"country": "ID"}, {"total_at_least": 1}], True),
    ],
)
def test_each_condition(data: object, expected: bool) -> None:
    condition = cond(data)
    assert evaluate(condition, FACTS) is expected
    assert (explain(condition, FACTS) == "") is expected


def test_explanations_are_short_and_human() -> None:
    assert explain(cond({"total_at_least": 200000}), FACTS) == (
        "order total Rp 150.000 is below 200000"
    )
    myr = OrderFacts({**ORDER, "currency": "MYR", "total": "49.9"})
    assert explain(cond({"total_at_least": 50}), myr) == "order total RM49.90 is below 50"
    assert explain(cond({"country": ["MY", "SG"]}), FACTS) == (
        "billing country ID is not one of MY, SG"
    )
    assert explain(cond({"customer": "first"}), FACTS) == (
        "the customer ordered before (2 earlier orders)"
    )
    assert explain(cond({"not": {"payment_method": "bacs"}}), FACTS) == (
        "the order matches the excluded condition (payment_method bacs)"
    )
    assert explain(cond({"any": [{"country": "MY"}, {"coupon_used": False}]}), FACTS) == (
        "none of these holds: billing country ID is not MY; coupon hemat10 was used"
    )


def test_missing_facts_make_a_condition_false() -> None:
    bare = OrderFacts({"id": 1})
    for data in (
        {"total_at_least": 0},
        {"total_at_most": 10**9},
        {"products": 11},
        {"categories": "x"},
        {"customer": "first"},
        {"customer": "repeat"},
        {"country": "ID"},
        {"payment_method": "cod"},
        {"coupon_used": "x"},
        {"meta": {"a": "b"}},
        {"survey_score_at_least": 1},
    ):
        assert evaluate(cond(data), bare) is False, data
    assert evaluate(cond({"coupon_used": False}), bare) is True
    assert evaluate(cond({"not": {"country": "ID"}}), bare) is True
    assert explain(cond({"customer": "first"}), bare) == "the customer's order history is unknown"


def test_first_customer() -> None:
    assert evaluate(cond({"customer": "first"}), OrderFacts(ORDER, prior_orders=0))
    assert not evaluate(cond({"customer": "repeat"}), OrderFacts(ORDER, prior_orders=0))


def test_what_the_engine_must_fetch() -> None:
    tree = cond(
        {
            "any": [{"customer": "first"}, {"not": {"categories": ["x"]}}],
            "total_at_least": 5,
            "country": "ID",
        }
    )
    assert needs_history(tree) and needs_categories(tree)
    assert not needs_history(cond({"country": "ID"}))
    assert not needs_categories(None) and not needs_history(None)
    assert required_fields(tree) == {
        "customer_id",
        "billing.email",
        "line_items",
        "total",
        "currency",
        "billing.country",
    }
    assert required_fields(
        cond(
            {
                "payment_method": "cod",
                "coupon_used": True,
                "meta": {"a": "b"},
                "skus": "x",
                "products": 1,
            }
        )
    ) == {
        "payment_method",
        "coupon_lines",
        "meta_data",
        "line_items",
    }
    assert required_fields(cond({"survey_score_at_least": 1})) == frozenset()
    assert required_fields(None) == frozenset()


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["150000.00", "NaN", "-Infinity", "1e999999", "12,5", " 7 ", "sNaN"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
# Orders with WooCommerce's keys holding arbitrary JSON, so the evaluator meets real shapes
# as well as nonsense.
order_keys = st.sampled_from(
    [
        "total",
        "currency",
        "billing",
        "line_items",
        "payment_method",
        "coupon_lines",
        "meta_data",
        "customer_id",
        "status",
    ]
)
orders = st.dictionaries(order_keys, json_values, max_size=9)
realistic_orders = st.fixed_dictionaries(
    {
        "total": st.decimals(min_value=0, max_value=10**9, places=2).map(str),
        "currency": st.sampled_from(["IDR", "MYR", "SGD"]),
        "billing": st.fixed_dictionaries({"country": st.sampled_from(["ID", "MY", "SG", ""])}),
        "payment_method": st.sampled_from(["cod", "bacs", "midtrans"]),
        "line_items": st.lists(
            st.fixed_dictionaries(
                {
                    "product_id": st.integers(1, 6),
                    "variation_id": st.integers(0, 3),
                    "sku": st.sampled_from(["a", "B", ""]),
                }
            ),
            max_size=4,
        ),
        "coupon_lines": st.lists(
            st.fixed_dictionaries({"code": st.sampled_from(["x", "Y"])}), max_size=2
        ),
        "meta_data": st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.sampled_from(["gift", "src"]),
                    "value": st.sampled_from(["yes", "no", 1]),
                }
            ),
            max_size=3,
        ),
    }
)
facts = st.builds(
    OrderFacts,
    order=realistic_orders | orders,
    prior_orders=st.none() | st.integers(0, 3),
    product_categories=st.dictionaries(
        st.integers(1, 6),
        st.frozensets(st.sampled_from(["a", "b", "1"]), max_size=2),
        max_size=6,
    ),
    survey_score=st.none() | st.integers(1, 5),
)

leaves = st.sampled_from(
    [
        {"total_at_least": 100000},
        {"total_at_most": 5000},
        {"products": [1, 2]},
        {"products": {"all": [1, 2]}},
        {"skus": "b"},
        {"categories": {"all": ["a", "1"]}},
        {"customer": "first"},
        {"customer": "repeat"},
        {"country": ["ID", "MY"]},
        {"payment_method": "cod"},
        {"coupon_used": True},
        {"coupon_used": False},
        {"coupon_used": ["y"]},
        {"meta": {"gift": "yes"}},
        {"meta": {"src": None}},
        {"survey_score_at_least": 3},
    ]
).map(cond)
trees: st.SearchStrategy[Condition] = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: Condition.model_construct(all_of=tuple(xs))),
        st.lists(inner, max_size=3).map(lambda xs: Condition.model_construct(any_of=tuple(xs))),
        inner.map(lambda x: Condition(not_=x)),
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(trees, facts)
def test_evaluate_never_raises_and_explain_agrees(condition: Condition, fact: OrderFacts) -> None:
    result = evaluate(condition, fact)
    assert isinstance(result, bool)
    assert (explain(condition, fact) == "") is result


@given(trees, facts)
def test_not_inverts(condition: Condition, fact: OrderFacts) -> None:
    assert evaluate(Condition(not_=condition), fact) is not evaluate(condition, fact)


@given(facts)
def test_empty_all_is_true_and_empty_any_is_false(fact: OrderFacts) -> None:
    assert evaluate(Condition.model_construct(all_of=()), fact)
    assert not evaluate(Condition.model_construct(any_of=()), fact)


@given(st.lists(trees, max_size=4), facts)
def test_de_morgan(children: list[Condition], fact: OrderFacts) -> None:
    negated = tuple(Condition(not_=child) for child in children)
    not_all = Condition(not_=Condition.model_construct(all_of=tuple(children)))
    not_any = Condition(not_=Condition.model_construct(any_of=tuple(children)))
    assert evaluate(not_all, fact) == evaluate(Condition.model_construct(any_of=negated), fact)
    assert evaluate(not_any, fact) == evaluate(Condition.model_construct(all_of=negated), fact)


@given(st.lists(trees, min_size=1, max_size=4), facts)
def test_all_and_any_match_python(children: list[Condition], fact: OrderFacts) -> None:
    results = [evaluate(child, fact) for child in children]
    assert evaluate(Condition(all_of=tuple(children)), fact) == all(results)
    assert evaluate(Condition(any_of=tuple(children)), fact) == any(results)


@given(trees, trees, facts)
def test_a_mapping_with_several_tests_means_all(
    first: Condition, second: Condition, fact: OrderFacts
) -> None:
    merged = Condition(all_of=(first,), not_=Condition(not_=second))
    assert evaluate(merged, fact) == (evaluate(first, fact) and evaluate(second, fact))


@given(orders | realistic_orders, st.sampled_from(list(Condition.model_fields)))
def test_any_leaf_on_any_order_never_raises(order: dict[str, Any], name: str) -> None:
    samples: dict[str, object] = {
        "all_of": [{"country": "ID"}],
        "any_of": [{"country": "ID"}],
        "not_": {"country": "ID"},
        "total_at_least": 1,
        "total_at_most": 1,
        "products": 1,
        "skus": "a",
        "categories": "a",
        "customer": "first",
        "country": "ID",
        "payment_method": "cod",
        "coupon_used": True,
        "meta": {"a": "b"},
        "survey_score_at_least": 1,
        "survey_score_at_most": 3,
    }
    condition = Condition.model_validate({name: samples[name]})
    assert isinstance(evaluate(condition, OrderFacts(order)), bool)


amounts = st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False)


@given(amounts, amounts)
def test_total_comparisons_agree_with_decimal_arithmetic(total: Decimal, limit: Decimal) -> None:
    fact = OrderFacts({"total": str(total), "currency": "IDR"})
    assert evaluate(Condition(total_at_least=limit), fact) == (total >= limit)
    assert evaluate(Condition(total_at_most=limit), fact) == (total <= limit)
    both = Condition(total_at_least=limit, total_at_most=limit)
    assert evaluate(both, fact) == (total == limit)
