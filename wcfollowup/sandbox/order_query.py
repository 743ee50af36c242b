"""``GET /orders`` arguments: validated like WooCommerce 6.6, answered from the store's indexes.

The common polling query (statuses + a ``modified_after`` window, ordered by modified, date or
id) never looks at individual orders: the total is a sum of bisects over the per-status sorted
keys, and the requested page is found by selecting the k-th key across those lists. Anything
else (customer, search, product, exclude, a date window on the other column) falls back to
walking the candidates in order and filtering, which is still linear only in the candidates.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from wcfollowup.sandbox.order_records import ID_BITS, ID_MASK, OrderRecord
from wcfollowup.sandbox.store_state import SandboxStore
from wcfollowup.sandbox.wp_params import (
    FieldTree,
    ParamErrors,
    PhpValue,
    as_list,
    date_bound,
    parse_fields,
    parse_wp_date,
    read_bool,
    read_enum,
    read_int,
    read_int_list,
    wp_list,
)

ORDERBY = ["date", "id", "include", "title", "slug", "modified"]
Predicate = Callable[[OrderRecord], bool]


@dataclass
class OrderQuery:
    statuses: list[str]
    orderby: str = "date"
    descending: bool = True
    page: int = 1
    per_page: int = 10
    offset: int | None = None
    modified_after: int | None = None
    modified_before: int | None = None
    created_after: int | None = None
    created_before: int | None = None
    include: list[int] | None = None
    exclude: list[int] | None = None
    customer: int | None = None
    search: str | None = None
    product: int | None = None
    dp: int = 2
    fields: FieldTree | None = None


@dataclass
class QueryResult:
    ids: list[int]
    total: int
    total_pages: int


def parse_order_query(params: dict[str, PhpValue], store: SandboxStore) -> OrderQuery | ParamErrors:
    errors = ParamErrors()
    enum = ["any", "trash", *store.statuses]
    raw_statuses = as_list(params.get("status")) if "status" in params else ["any"]
    for position, status in enumerate(raw_statuses):
        if status not in enum:
            errors.add(
                "status", "rest_not_in_enum", f"status[{position}] is not one of {wp_list(enum)}."
            )
            break
    statuses: list[str] = []
    for status in raw_statuses:
        for expanded in store.statuses_for_any() if status == "any" else [status]:
            if expanded not in statuses:
                statuses.append(expanded)

    query = OrderQuery(statuses=statuses)
    query.page = read_int(params, "page", 1, errors, minimum=1)
    query.per_page = read_int(params, "per_page", 10, errors, minimum=1, maximum=100)
    if "offset" in params:
        query.offset = read_int(params, "offset", 0, errors)
    query.dp = max(0, read_int(params, "dp", 2, errors))
    query.orderby = read_enum(params, "orderby", ORDERBY, "date", errors)
    query.descending = read_enum(params, "order", ["asc", "desc"], "desc", errors) == "desc"
    query.include = read_int_list(params, "include", errors)
    query.exclude = read_int_list(params, "exclude", errors)
    if "customer" in params:
        query.customer = read_int(params, "customer", 0, errors)
    if "product" in params:
        query.product = read_int(params, "product", 0, errors)
    search = params.get("search")
    query.search = search.lower() if isinstance(search, str) and search else None
    query.fields = parse_fields(params.get("_fields"))

    gmt = read_bool(params, "dates_are_gmt", errors)
    date_names = ["after", "before"]
    if not store.legacy_wc:  # WC < 5.8 has no such arguments and WordPress ignores unknown ones
        date_names += ["modified_after", "modified_before"]
    bounds: dict[str, int] = {}
    for name in date_names:
        raw = params.get(name)
        if raw is None:
            continue
        parsed = parse_wp_date(raw) if isinstance(raw, str) else None
        if parsed is None:
            errors.add(name, "rest_invalid_date", "Invalid date.")
            continue
        bounds[name] = date_bound(parsed, gmt, store.tz)
    if errors:
        return errors
    query.created_after = bounds.get("after")
    query.created_before = bounds.get("before")
    query.modified_after = bounds.get("modified_after")
    query.modified_before = bounds.get("modified_before")
    return query


def _ts_range(keys: list[int], after: int | None, before: int | None) -> tuple[int, int]:
    """Positions of keys with ``after < ts < before`` (WordPress date_query is exclusive)."""
    lo = 0 if after is None else bisect_left(keys, (after + 1) << ID_BITS)
    hi = len(keys) if before is None else bisect_left(keys, before << ID_BITS)
    return lo, max(lo, hi)


def _select(ranges: list[tuple[list[int], int, int]], start: int, count: int) -> list[int]:
    """Keys at ascending positions ``[start, start+count)`` of the union of sorted ranges."""
    ranges = [(keys, lo, hi) for keys, lo, hi in ranges if hi > lo]
    if not ranges or count <= 0:
        return []
    if len(ranges) == 1:
        keys, lo, _ = ranges[0]
        return keys[lo + start : lo + start + count]
    low = min(keys[lo] for keys, lo, _ in ranges)
    high = max(keys[hi - 1] for keys, _, hi in ranges)
    while low < high:  # the smallest key with at least start+1 keys <= it
        mid = (low + high) // 2
        if sum(bisect_right(keys, mid, lo, hi) - lo for keys, lo, hi in ranges) >= start + 1:
            high = mid
        else:
            low = mid + 1
    streams = [islice(keys, bisect_left(keys, low, lo, hi), hi) for keys, lo, hi in ranges]
    return list(islice(heapq.merge(*streams), count))


def _descending(keys: list[int], lo: int, hi: int) -> Iterator[int]:
    return (keys[i] for i in range(hi - 1, lo - 1, -1))


def _search_text(record: OrderRecord) -> str:
    c = record.customer
    return " ".join((c.first_name, c.last_name, c.email, c.address_1, c.city, c.phone)).lower()


def run_order_query(store: SandboxStore, query: OrderQuery) -> QueryResult:
    """Call with ``store.lock`` held."""
    start = query.offset if query.offset is not None else (query.page - 1) * query.per_page
    predicates: list[Predicate] = []
    excluded: set[int] = set(query.exclude or ())
    if excluded:
        predicates.append(lambda r: r.id not in excluded)
    if query.customer is not None:
        wanted_customer = query.customer
        predicates.append(lambda r: r.customer.id == wanted_customer)
    if query.search:
        needle = query.search
        predicates.append(lambda r: needle in _search_text(r))
    if query.product is not None:
        wanted_product = query.product
        predicates.append(lambda r: any(pid == wanted_product for pid, _ in r.items))

    sort_by = {"modified": "modified", "id": "id", "include": "include"}.get(query.orderby, "date")
    if sort_by != "modified" and (query.modified_after, query.modified_before) != (None, None):
        m_after, m_before = query.modified_after, query.modified_before
        predicates.append(
            lambda r: (
                (m_after is None or r.modified > m_after)
                and (m_before is None or r.modified < m_before)
            )
        )
    if sort_by != "date" and (query.created_after, query.created_before) != (None, None):
        c_after, c_before = query.created_after, query.created_before
        predicates.append(
            lambda r: (
                (c_after is None or r.created > c_after)
                and (c_before is None or r.created < c_before)
            )
        )

    if query.include is not None or sort_by == "include":
        return _run_small(store, query, predicates, start)

    ranges: list[tuple[list[int], int, int]] = []
    for status in query.statuses:
        index = store.indexes.get(status)
        if index is None:
            continue
        if sort_by == "modified":
            keys = index.by_modified
            lo, hi = _ts_range(keys, query.modified_after, query.modified_before)
        elif sort_by == "date":
            keys = index.by_created
            lo, hi = _ts_range(keys, query.created_after, query.created_before)
        else:
            keys, lo, hi = index.by_id, 0, len(index.by_id)
        ranges.append((keys, lo, hi))
    mask = ID_MASK if sort_by != "id" else -1

    if not predicates:
        total = sum(hi - lo for _, lo, hi in ranges)
        count = max(0, min(query.per_page, total - start))
        if query.descending:
            keys_page = _select(ranges, total - start - count, count)[::-1]
        else:
            keys_page = _select(ranges, start, count)
        return QueryResult(
            [key & mask for key in keys_page], total, math.ceil(total / query.per_page)
        )

    if len(predicates) == 1 and excluded and start == 0 and not query.descending:
        return _first_page_excluding(store, query, ranges, excluded, sort_by, mask)

    if query.descending:
        stream = heapq.merge(*(_descending(k, lo, hi) for k, lo, hi in ranges), reverse=True)
    else:
        stream = heapq.merge(*(islice(k, lo, hi) for k, lo, hi in ranges))
    total = 0
    page: list[int] = []
    orders = store.orders
    for key in stream:
        record = orders[key & mask]
        if all(predicate(record) for predicate in predicates):
            if start <= total < start + query.per_page:
                page.append(record.id)
            total += 1
    return QueryResult(page, total, math.ceil(total / query.per_page))


def _first_page_excluding(
    store: SandboxStore,
    query: OrderQuery,
    ranges: list[tuple[list[int], int, int]],
    excluded: set[int],
    sort_by: str,
    mask: int,
) -> QueryResult:
    """A keyset poll's request (first page, a few ids excluded) stays indexed, not a scan."""
    wanted = set(query.statuses)

    def in_ranges(record: OrderRecord) -> bool:
        if record.status not in wanted:
            return False
        if sort_by == "modified":
            value, low, high = record.modified, query.modified_after, query.modified_before
        elif sort_by == "date":
            value, low, high = record.created, query.created_after, query.created_before
        else:
            return True
        return (low is None or value > low) and (high is None or value < high)

    hidden = sum(1 for i in excluded if (r := store.orders.get(i)) is not None and in_ranges(r))
    total = sum(hi - lo for _, lo, hi in ranges) - hidden
    keys = _select(ranges, 0, query.per_page + len(excluded))
    page = [key & mask for key in keys if key & mask not in excluded][: query.per_page]
    return QueryResult(page, total, math.ceil(total / query.per_page))


def _run_small(
    store: SandboxStore, query: OrderQuery, predicates: list[Predicate], start: int
) -> QueryResult:
    """``include`` lists are at most a page or two long: filter them directly."""
    wanted = set(query.statuses)
    m_after, m_before = query.modified_after, query.modified_before
    c_after, c_before = query.created_after, query.created_before
    candidates = query.include if query.include is not None else sorted(store.orders)
    found: list[OrderRecord] = []
    for order_id in dict.fromkeys(candidates):
        record = store.orders.get(order_id)
        if record is None or record.status not in wanted:
            continue
        if m_after is not None and record.modified <= m_after:
            continue
        if m_before is not None and record.modified >= m_before:
            continue
        if c_after is not None and record.created <= c_after:
            continue
        if c_before is not None and record.created >= c_before:
            continue
        if all(predicate(record) for predicate in predicates):
            found.append(record)
    if query.orderby == "include" and query.include is not None:
        position = {order_id: i for i, order_id in enumerate(query.include)}
        found.sort(key=lambda r: position[r.id], reverse=query.descending)
    else:
        attr = {"modified": "modified", "id": "id"}.get(query.orderby, "created")
        found.sort(key=lambda r: (getattr(r, attr), r.id), reverse=query.descending)
    ids = [record.id for record in found[start : start + query.per_page]]
    return QueryResult(ids, len(found), math.ceil(len(found) / query.per_page))
