"""The WooCommerce-REST-compatible HTTP surface of the sandbox store.

Requests go through the same stages as in WordPress, in the same order, because the order decides
which error a client sees: authentication (a bad signature is a 401 even on an unknown route),
key permissions, route matching (``rest_no_route``), the route's own permission check (no
credentials: ``woocommerce_rest_cannot_view``), then argument validation and the handler.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wcfollowup.sandbox import seed
from wcfollowup.sandbox.catalog_render import (
    render_customer,
    render_product,
    rest_index,
    system_status,
)
from wcfollowup.sandbox.control_api import control_routes, json_object
from wcfollowup.sandbox.coupons_reviews import (
    REVIEW_STATUSES,
    CouponError,
    create_coupon,
    create_review,
    render_coupon,
    render_review,
)
from wcfollowup.sandbox.oauth import Authenticator
from wcfollowup.sandbox.order_query import ORDERBY, parse_order_query, run_order_query
from wcfollowup.sandbox.order_render import BUILDERS, order_links, render_order
from wcfollowup.sandbox.store_state import SandboxStore
from wcfollowup.sandbox.wp_params import (
    ParamErrors,
    PhpValue,
    as_list,
    filter_fields,
    parse_fields,
    php_query,
    read_int,
)
from wcfollowup.sandbox.wp_responses import NO_ROUTE, pagination_headers, wp_error, wp_json

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CANNOT_LIST = ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
CANNOT_VIEW = ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
CANNOT_CREATE = (
    "woocommerce_rest_cannot_create",
    "Sorry, you are not allowed to create resources.",
)


@dataclass(frozen=True)
class Call:
    """One authenticated REST call, already parsed the way WordPress would."""

    request: Request
    base_url: str
    params: dict[str, PhpValue]
    match: re.Match[str]

    def fields(self) -> dict[str, Any] | None:
        return parse_fields(self.params.get("_fields"))


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class WpRoute:
    pattern: re.Pattern[str]
    handlers: dict[str, Handler]
    denied: tuple[str, str]  # the route's permission error when nobody is logged in


def base_url_of(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


class StoreApp:
    def __init__(self, store: SandboxStore, auth: Authenticator) -> None:
        self.store = store
        self.auth = auth
        self.routes = [
            WpRoute(
                re.compile(r"wc/v3/orders"),
                {"GET": self.list_orders, "OPTIONS": self.orders_schema},
                CANNOT_LIST,
            ),
            WpRoute(re.compile(r"wc/v3/orders/(?P<id>\d+)"), {"GET": self.get_order}, CANNOT_VIEW),
            WpRoute(re.compile(r"wc/v3/products"), {"GET": self.list_products}, CANNOT_LIST),
            WpRoute(
                re.compile(r"wc/v3/products/(?P<id>\d+)"), {"GET": self.get_product}, CANNOT_VIEW
            ),
            WpRoute(re.compile(r"wc/v3/customers"), {"GET": self.list_customers}, CANNOT_LIST),
            WpRoute(
                re.compile(r"wc/v3/coupons"),
                {"GET": self.list_coupons, "POST": self.create_coupon},
                CANNOT_LIST,
            ),
            WpRoute(
                re.compile(r"wc/v3/coupons/(?P<id>\d+)"), {"GET": self.get_coupon}, CANNOT_VIEW
            ),
            WpRoute(
                re.compile(r"wc/v3/products/reviews"),
                {"GET": self.list_reviews, "POST": self.create_review},
                CANNOT_LIST,
            ),
            WpRoute(
                re.compile(r"wc/v3/products/reviews/(?P<id>\d+)"),
                {"GET": self.get_review},
                CANNOT_VIEW,
            ),
            WpRoute(
                re.compile(r"wc/v3/system_status"), {"GET": self.get_system_status}, CANNOT_LIST
            ),
        ]
        self.app = Starlette(
            routes=[
                Route("/wp-json", self.index, methods=["GET"]),
                Route("/wp-json/", self.index, methods=["GET"]),
                Route("/wp-json/{rest:path}", self.rest, methods=ALL_METHODS),
                *control_routes(store),
                Route("/", self.home, methods=["GET"]),
            ]
        )

    # -- dispatch ------------------------------------------------------------------------------

    async def rest(self, request: Request) -> Response:
        raw_query = request.scope.get("query_string", b"").decode("latin-1")
        params = php_query(raw_query)
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        method = request.method
        result = self.auth.authenticate(
            method=method,
            scheme=request.url.scheme,
            host=request.headers.get("host", ""),
            path=raw_path.decode("latin-1"),
            query=params,
            authorization=request.headers.get("authorization", ""),
        )
        if result.error is not None:
            return wp_json(result.error.body(), result.error.status)
        if result.key is not None:
            denied = self.auth.check_permissions(result.key, method)
            if denied is not None:
                return wp_json(denied.body(), denied.status)

        rest_path = request.path_params["rest"].rstrip("/")
        for route in self.routes:
            match = route.pattern.fullmatch(rest_path)
            if match is None:
                continue
            handler = route.handlers.get("GET" if method == "HEAD" else method)
            if handler is None:
                break
            if result.key is None and method != "OPTIONS":
                return wp_error(*(CANNOT_CREATE if method == "POST" else route.denied), 401)
            return await handler(Call(request, base_url_of(request), params, match))
        return wp_error(*NO_ROUTE, 404)

    async def index(self, request: Request) -> Response:
        return wp_json(rest_index(self.store, base_url_of(request)))

    async def home(self, request: Request) -> Response:
        route = request.query_params.get("rest_route", "")
        if route.startswith("/wc/"):
            # WooCommerce only authenticates keys when REQUEST_URI contains wp-json/wc/.
            return wp_error(*CANNOT_LIST, 401)
        page = (
            f"<!doctype html><title>{seed.STORE_NAME}</title>"
            f"<h1>{seed.STORE_NAME}</h1><p>wcfollowup sandbox store.</p>"
        )
        return Response(page, media_type="text/html")

    # -- orders --------------------------------------------------------------------------------

    async def list_orders(self, call: Call) -> Response:
        query = parse_order_query(call.params, self.store)
        if isinstance(query, ParamErrors):
            return wp_json(query.body(), 400)
        tree = query.fields
        only = set(tree) if tree is not None else set(BUILDERS)
        with self.store.lock:
            result = run_order_query(self.store, query)
            items = [
                render_order(
                    self.store, self.store.orders[order_id], call.base_url, dp=query.dp, only=only
                )
                for order_id in result.ids
            ]
        if tree is not None:
            items = [filter_fields(item, tree) for item in items]
        headers = pagination_headers(
            call.base_url,
            "wc/v3/orders",
            call.params,
            query.page,
            result.total,
            query.per_page,
            {"status": {"0": "any"}, "dp": "2", "context": "view"},
        )
        headers["Allow"] = "GET, POST"
        return wp_json(items, headers=headers)

    async def get_order(self, call: Call) -> Response:
        order_id = int(call.match["id"])
        errors = ParamErrors()
        dp = max(0, read_int(call.params, "dp", 2, errors))
        with self.store.lock:
            record = self.store.orders.get(order_id)
            if record is None:
                return wp_error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
            body = render_order(self.store, record, call.base_url, dp=dp)
            links = order_links(record, call.base_url)
        tree = call.fields()
        if tree is not None:
            body = filter_fields(body, tree)
            body["_links"] = links
        return wp_json(body, headers={"Allow": "GET, POST, PUT, PATCH, DELETE"})

    async def orders_schema(self, call: Call) -> Response:
        """The route schema: the cheap way to ask "does this store know ``modified_after``?"."""
        arg_names = ["context", "page", "per_page", "search", "after", "before"]
        if not self.store.legacy_wc:
            arg_names += ["modified_after", "modified_before"]
        arg_names += [
            "dates_are_gmt",
            "exclude",
            "include",
            "offset",
            "order",
            "orderby",
            "parent",
            "parent_exclude",
            "status",
            "customer",
            "product",
            "dp",
        ]
        args: dict[str, dict[str, Any]] = {name: {"required": False} for name in arg_names}
        args["per_page"].update(type="integer", default=10, minimum=1, maximum=100)
        args["page"].update(type="integer", default=1, minimum=1)
        for name in ("after", "before", "modified_after", "modified_before"):
            if name in args:
                args[name].update(type="string", format="date-time")
        args["dates_are_gmt"].update(type="boolean", default=False)
        args["orderby"].update(type="string", default="date", enum=ORDERBY)
        args["order"].update(type="string", default="desc", enum=["asc", "desc"])
        args["status"].update(
            type="array",
            default="any",
            items={"type": "string", "enum": ["any", "trash", *self.store.statuses]},
        )
        body = {
            "namespace": "wc/v3",
            "methods": ["GET", "POST"],
            "endpoints": [{"methods": ["GET"], "args": args}, {"methods": ["POST"], "args": {}}],
            "schema": {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "title": "shop_order",
                "type": "object",
                "properties": {name: {"context": ["view", "edit"]} for name in BUILDERS},
            },
            "_links": {"self": [{"href": f"{call.base_url}/wp-json/wc/v3/orders"}]},
        }
        return wp_json(body, headers={"Allow": "GET, POST"})

    # -- catalogue and system --------------------------------------------------------------

    async def list_products(self, call: Call) -> Response:
        include = {int(p) for p in as_list(call.params.get("include")) if p.isdigit()}
        return self._small_list(
            call,
            "wc/v3/products",
            [
                render_product(self.store, product, call.base_url, links=False)
                for product in seed.PRODUCTS
                if not include or product.id in include
            ],
            {"sku": "sku", "search": "name"},
        )

    async def get_product(self, call: Call) -> Response:
        product = seed.PRODUCTS_BY_ID.get(int(call.match["id"]))
        if product is None:
            return wp_error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        return self._single(call, render_product(self.store, product, call.base_url))

    async def list_customers(self, call: Call) -> Response:
        registered = [c for c in seed.CUSTOMERS if c.id]
        return self._small_list(
            call,
            "wc/v3/customers",
            [
                render_customer(self.store, customer, call.base_url, links=False)
                for customer in registered
            ],
            {"email": "email", "search": "email"},
        )

    async def get_system_status(self, call: Call) -> Response:
        return self._single(call, system_status(self.store, call.base_url))

    # -- coupons and reviews -----------------------------------------------------------------

    async def list_coupons(self, call: Call) -> Response:
        code = call.params.get("code")
        with self.store.lock:
            coupons = [
                render_coupon(self.store, coupon, call.base_url, links=False)
                for coupon in sorted(self.store.coupons.values(), key=lambda c: -c.id)
                if not isinstance(code, str) or not code or coupon.code == code.strip().lower()
            ]
        return self._small_list(call, "wc/v3/coupons", coupons, {})

    async def create_coupon(self, call: Call) -> Response:
        body = await json_object(call.request)
        if body is None:
            return wp_error("rest_invalid_json", "Invalid JSON body passed.", 400)
        try:
            with self.store.lock:
                coupon = create_coupon(self.store, body)
                rendered = render_coupon(self.store, coupon, call.base_url)
        except CouponError as error:
            return wp_error(error.code, error.message, 400, **error.data)
        return wp_json(
            rendered,
            201,
            headers={"Location": f"{call.base_url}/wp-json/wc/v3/coupons/{coupon.id}"},
        )

    async def get_coupon(self, call: Call) -> Response:
        with self.store.lock:
            coupon = self.store.coupons.get(int(call.match["id"]))
            if coupon is None:
                return wp_error("woocommerce_rest_shop_coupon_invalid_id", "Invalid ID.", 404)
            return self._single(call, render_coupon(self.store, coupon, call.base_url))

    async def list_reviews(self, call: Call) -> Response:
        emails = {e.lower() for e in as_list(call.params.get("reviewer_email"))}
        products = {int(p) for p in as_list(call.params.get("product")) if p.isdigit()}
        status = call.params.get("status") if isinstance(call.params.get("status"), str) else ""
        wanted = REVIEW_STATUSES if status == "all" else (status or "approved",)
        with self.store.lock:
            reviews = [
                render_review(self.store, review, call.base_url, links=False)
                for review in sorted(self.store.reviews.values(), key=lambda r: -r.id)
                if review.status in wanted
                and (not emails or review.reviewer_email.lower() in emails)
                and (not products or review.product_id in products)
            ]
        return self._small_list(call, "wc/v3/products/reviews", reviews, {})

    async def create_review(self, call: Call) -> Response:
        body = await json_object(call.request)
        if body is None:
            return wp_error("rest_invalid_json", "Invalid JSON body passed.", 400)
        try:
            with self.store.lock:
                review = create_review(
                    self.store,
                    int(body.get("product_id", 0)),
                    str(body.get("reviewer", "")),
                    str(body.get("reviewer_email", "")),
                    str(body.get("review", "")),
                    int(body.get("rating", 0)),
                    str(body.get("status", "approved")),
                )
                rendered = render_review(self.store, review, call.base_url)
        except (KeyError, ValueError):
            return wp_error("woocommerce_rest_product_invalid_id", "Invalid product ID.", 404)
        return wp_json(rendered, 201)

    async def get_review(self, call: Call) -> Response:
        with self.store.lock:
            review = self.store.reviews.get(int(call.match["id"]))
            if review is None:
                return wp_error("woocommerce_rest_review_invalid_id", "Invalid review ID.", 404)
            return self._single(call, render_review(self.store, review, call.base_url))

    def _single(self, call: Call, body: dict[str, Any]) -> Response:
        tree = call.fields()
        if tree is not None:
            links = body.get("_links")
            body = filter_fields(body, tree)
            if links is not None:
                body["_links"] = links
        return wp_json(body)

    def _small_list(
        self, call: Call, route: str, items: list[dict[str, Any]], filters: dict[str, str]
    ) -> Response:
        errors = ParamErrors()
        page = read_int(call.params, "page", 1, errors, minimum=1)
        per_page = read_int(call.params, "per_page", 10, errors, minimum=1, maximum=100)
        if errors:
            return wp_json(errors.body(), 400)
        for param, key in filters.items():
            wanted = call.params.get(param)
            if isinstance(wanted, str) and wanted:
                exact = param != "search"
                items = [
                    item
                    for item in items
                    if (
                        str(item[key]).lower() == wanted.lower()
                        if exact
                        else wanted.lower() in str(item[key]).lower()
                    )
                ]
        total = len(items)
        chunk = items[(page - 1) * per_page : page * per_page]
        tree = call.fields()
        if tree is not None:
            chunk = [filter_fields(item, tree) for item in chunk]
        headers = pagination_headers(
            call.base_url, route, call.params, page, total, per_page, {"context": "view"}
        )
        return wp_json(chunk, headers=headers)
