"""Response shapes shared by the store's routes: JSON bodies, errors, pagination headers."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import Response

from wcfollowup.sandbox.wp_params import PhpValue, as_list, echo_query, flatten

JSON_TYPE = "application/json; charset=UTF-8"
REST_HEADERS = {
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Access-Control-Expose-Headers": "X-WP-Total, X-WP-TotalPages, Link",
    "Access-Control-Allow-Headers": "Authorization, X-WP-Nonce, Content-Disposition, "
    "Content-MD5, Content-Type",
    "Expires": "Wed, 11 Jan 1984 05:00:00 GMT",
    "Cache-Control": "no-cache, must-revalidate, max-age=0",
}

NO_ROUTE = ("rest_no_route", "No route was found matching the URL and request method.")


def wp_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(
        content,
        status_code=status,
        headers={**REST_HEADERS, **(headers or {})},
        media_type=JSON_TYPE,
    )


def wp_error(code: str, message: str, status: int, **data: Any) -> Response:
    return wp_json({"code": code, "message": message, "data": {"status": status, **data}}, status)


def pagination_headers(
    base_url: str,
    route: str,
    params: dict[str, PhpValue],
    page: int,
    total: int,
    per_page: int,
    defaults: dict[str, PhpValue],
) -> dict[str, str]:
    """``X-WP-Total``/``X-WP-TotalPages`` and a ``Link`` with only prev/next, echoing every
    request parameter (credentials and stale OAuth signatures included) as WooCommerce does."""
    total_pages = math.ceil(total / per_page) if per_page else 0
    echoed: dict[str, PhpValue] = dict(params)
    if isinstance(echoed.get("status"), str):
        echoed["status"] = {str(i): s for i, s in enumerate(as_list(echoed["status"]))}
    for name, value in defaults.items():
        echoed.setdefault(name, value)

    def link(target: int, rel: str) -> str:
        pairs = [(k, str(target) if k == "page" else v) for k, v in flatten(echoed)]
        if "page" not in echoed:
            pairs.append(("page", str(target)))
        return f'<{base_url}/wp-json/{route}?{echo_query(pairs)}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(min(page - 1, total_pages), "prev"))
    if total_pages > page:
        links.append(link(page + 1, "next"))
    if not links:
        links.append(f'<{base_url}/wp-json/>; rel="https://api.w.org/"')
    return {"X-WP-Total": str(total), "X-WP-TotalPages": str(total_pages), "Link": ", ".join(links)}
