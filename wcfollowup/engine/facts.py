"""Gather what conditions need beyond the order itself, asking the store only when needed.

Conditions are pure; some need facts the order does not carry: how many orders the customer
placed before (first or repeat customer) and which categories the products belong to. This
adapter fetches those lazily and caches product categories, which rarely change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wcfollowup.config import Condition
from wcfollowup.core.conditions import OrderFacts, needs_categories, needs_history
from wcfollowup.core.shapes import dicts, integer
from wcfollowup.woo.gateway import WooGateway


class FactsSource:
    def __init__(self, gateway: WooGateway) -> None:
        self.gateway = gateway
        self._categories: dict[int, frozenset[str]] = {}

    def facts(
        self,
        order: Mapping[str, Any],
        conditions: list[Condition | None],
        survey_score: int | None = None,
    ) -> OrderFacts:
        present = [c for c in conditions if c is not None]
        prior = None
        if any(needs_history(c) for c in present):
            prior = self.gateway.count_prior_orders(dict(order))
        categories: Mapping[int, frozenset[str]] = {}
        if any(needs_categories(c) for c in present):
            categories = self._categories_for(order)
        return OrderFacts(
            order=order,
            prior_orders=prior,
            product_categories=categories,
            survey_score=survey_score,
        )

    def _categories_for(self, order: Mapping[str, Any]) -> Mapping[int, frozenset[str]]:
        ids: set[int] = set()
        for item in dicts(order.get("line_items")):
            for key in ("product_id", "variation_id"):
                value = integer(item.get(key))
                if value > 0:
                    ids.add(value)
        missing = sorted(i for i in ids if i not in self._categories)
        if missing:
            found = self.gateway.product_categories(missing)
            for product_id in missing:
                self._categories[product_id] = found.get(product_id, frozenset())
        return {i: self._categories[i] for i in ids}
