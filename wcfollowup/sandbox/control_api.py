"""``/_sandbox/*``: SANDBOX-ONLY control routes, no authentication, never part of WooCommerce.

They let someone driving the sandbox from outside Python (an owner trying their YAML, the demo
script, curl) place and change orders the way a shopper or shop manager would.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from wcfollowup.sandbox.store_state import SandboxStore, UnknownOrder, UnknownStatus
from wcfollowup.sandbox.wp_responses import wp_error, wp_json

ACTIONS = ("complete", "refund", "cancel", "touch", "status", "meta")


async def json_object(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def control_routes(store: SandboxStore) -> list[BaseRoute]:
    async def create(request: Request) -> Response:
        body = await json_object(request)
        if body is None:
            return wp_error("sandbox_bad_request", "Send a JSON object.", 400)
        items = body.get("items")
        try:
            order = store.create_order(
                customer=body.get("customer"),
                items=[(int(pid), int(qty)) for pid, qty in items] if items else None,
                status=str(body.get("status", "processing")),
                currency=body.get("currency"),
                meta=body.get("meta"),
                coupons=body.get("coupons"),
            )
        except (KeyError, ValueError, TypeError) as error:
            return wp_error("sandbox_bad_request", str(error), 400)
        return wp_json(order, 201)

    async def bulk(request: Request) -> Response:
        body = await json_object(request) or {}
        try:
            ids = store.add_orders(int(body.get("n", 0)), str(body.get("status", "processing")))
        except (ValueError, TypeError) as error:
            return wp_error("sandbox_bad_request", str(error), 400)
        return wp_json(
            {
                "created": len(ids),
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            },
            201,
        )

    async def show(request: Request) -> Response:
        try:
            return wp_json(store.get(int(request.path_params["order_id"])))
        except UnknownOrder:
            return wp_error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)

    async def act(request: Request) -> Response:
        order_id = int(request.path_params["order_id"])
        action = request.path_params["action"]
        body = await json_object(request) or {}
        try:
            if action == "complete":
                order = store.complete(order_id)
            elif action == "cancel":
                order = store.cancel(order_id)
            elif action == "touch":
                order = store.touch(order_id)
            elif action == "refund":
                order = store.refund(
                    order_id, body.get("amount"), str(body.get("reason", "Refund from the sandbox"))
                )
            elif action == "status":
                order = store.set_status(order_id, str(body.get("status", "")))
            elif action == "meta":
                order = store.set_meta(order_id, str(body["key"]), body.get("value"))
            else:
                return wp_error(
                    "sandbox_unknown_action",
                    f"Unknown action {action!r}; use one of {', '.join(ACTIONS)}.",
                    404,
                )
        except UnknownOrder:
            return wp_error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        except (UnknownStatus, ValueError, KeyError) as error:
            return wp_error("sandbox_bad_request", str(error), 400)
        return wp_json(order)

    return [
        Route("/_sandbox/orders", create, methods=["POST"]),
        Route("/_sandbox/orders/bulk", bulk, methods=["POST"]),
        Route("/_sandbox/orders/{order_id:int}", show, methods=["GET"]),
        Route("/_sandbox/orders/{order_id:int}/{action}", act, methods=["POST"]),
    ]
