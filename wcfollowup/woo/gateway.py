"""Talks to the WooCommerce REST API v3 through the official ``woocommerce`` client.

The client has no retries, no raise-for-status and a 5 s default timeout, so this adapter adds
an explicit timeout, maps status codes to the errors in ``woo.errors``, and retries transient
failures with tenacity. Each retry is a fresh call, so over plain HTTP it is re-signed with a
new OAuth nonce (a replayed nonce is refused by WooCommerce).

The client calls ``requests.request`` for every call: a new TCP connection (a TLS handshake in
production) and a fresh scan of the environment for proxies and CA bundles each time. Here it
sends through one ``requests.Session`` instead (see ``keep_alive_session``), whose pool holds a
connection per thread that talks to the store, so calls reuse their connections.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from urllib3.exceptions import InsecureRequestWarning

from wcfollowup.common.redact import redact, register_secrets
from wcfollowup.core.orders import format_wc_gmt
from wcfollowup.core.shapes import integer
from wcfollowup.woo.connection_errors import (
    certificate_failure,
    describe_connection_error,
    tls_advice,
)
from wcfollowup.woo.errors import (
    CouponExists,
    OrderNotFound,
    StoreAuthError,
    StoreError,
    StoreRequestError,
    StoreStatusUnknown,
    StoreTlsError,
    StoreTooOld,
    StoreUnavailable,
)
from wcfollowup.woo.session import keep_alive_session, session_api

MAX_RETRY_AFTER = 120.0


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    total_pages: int
    server_time: datetime | None


def _server_time(response: requests.Response) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), MAX_RETRY_AFTER)


def _error_code(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code") or "") if isinstance(body, dict) else ""


def _is_json(response: requests.Response) -> bool:
    try:
        response.json()
    except ValueError:
        return False
    return True


def _error_text(response: requests.Response) -> str:
    """The store's error, redacted: a store or proxy may echo our request (its OAuth-signed
    URL, its ``Authorization: Basic`` header), and this text ends up in logs and message rows.
    """
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} (non-JSON body)"
    if isinstance(body, dict) and "code" in body:
        text = f"HTTP {response.status_code} {body.get('code')}: {body.get('message', '')}"
        return redact(text)
    return f"HTTP {response.status_code}"


COUPON_EXISTS = "woocommerce_rest_coupon_code_already_exists"


class WooGateway:
    def __init__(
        self,
        url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        pool_size: int = 10,
    ) -> None:
        if verify is False:
            # The daemon says this once, at start, as a structured warning; urllib3 would print
            # a raw Python warning into the JSON log on every request.
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)

        self.url = url
        # Every error text is redacted against the process-wide list: make sure it has ours.
        register_secrets((consumer_key, consumer_secret))
        self.session = keep_alive_session(url, verify, pool_size)
        self._api = session_api(
            self.session,
            url=url,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            version="wc/v3",
            timeout=timeout,
            verify_ssl=verify,
            user_agent="wcfollowup",
        )
        self._attempts = attempts
        self._sleep = sleep
        # The last time the store refused the keys; ``run --once`` exits non-zero on it.
        self.refused: StoreAuthError | None = None

    # -- public calls ---------------------------------------------------------------------

    def list_orders(self, params: dict[str, Any]) -> Page:
        response, items = self._get("orders", params)
        if not isinstance(items, list):
            raise StoreUnavailable("the order list was not a JSON array")
        return Page(
            items=items,
            total=int(response.headers.get("X-WP-Total", len(items)) or 0),
            total_pages=int(response.headers.get("X-WP-TotalPages", 1) or 0),
            server_time=_server_time(response),
        )

    def get_order(self, order_id: int) -> dict[str, Any]:
        _response, body = self._get(f"orders/{int(order_id)}", {})
        if not isinstance(body, dict):
            raise StoreUnavailable(f"order {order_id} was not a JSON object")
        return body

    def count_prior_orders(self, order: dict[str, Any]) -> int:
        """How many orders this customer placed before this one (for "first or repeat").

        WooCommerce v3 customers carry no order count, and guests have no customer record, so
        registered customers are counted by ``customer`` id (one request, ``X-WP-Total``) and
        guests by searching their billing email and keeping exact matches.
        """
        created = str(order.get("date_created_gmt") or "")
        statuses = "completed,processing,on-hold,refunded"
        customer_id = integer(order.get("customer_id"))
        if customer_id > 0:
            page = self.list_orders(
                {
                    "customer": customer_id,
                    "before": created,
                    "dates_are_gmt": "true",
                    "status": statuses,
                    "per_page": 1,
                    "_fields": "id",
                }
            )
            return page.total
        email = str((order.get("billing") or {}).get("email") or "").strip().lower()
        if not email:
            return 0
        page = self.list_orders(
            {
                "search": email,
                "before": created,
                "dates_are_gmt": "true",
                "status": statuses,
                "per_page": 100,
                "_fields": "id,billing.email",
            }
        )
        return sum(
            1
            for item in page.items
            if str((item.get("billing") or {}).get("email") or "").strip().lower() == email
            and item.get("id") != order.get("id")
        )

    def product_categories(self, product_ids: list[int]) -> dict[int, frozenset[str]]:
        """Category slugs and ids of products, for category conditions (line items lack them)."""
        found: dict[int, frozenset[str]] = {}
        for start in range(0, len(product_ids), 100):
            chunk = product_ids[start : start + 100]
            _response, items = self._get(
                "products",
                {
                    "include": ",".join(str(i) for i in chunk),
                    "per_page": 100,
                    "_fields": "id,categories",
                },
            )
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                    continue  # a plugin's garbage: that product just has no categories
                names: set[str] = set()
                for category in item.get("categories") or []:
                    if isinstance(category, dict):
                        names.add(str(category.get("slug", "")))
                        names.add(str(category.get("id", "")))
                found[item["id"]] = frozenset(n for n in names if n)
        return found

    def probe(self, now: datetime, statuses: str = "completed") -> datetime | None:
        """Prove the store honours ``modified_after`` and knows our statuses; return its clock.

        One cheap request for orders modified after tomorrow: a store that honours the filter
        returns none, one older than WooCommerce 5.8 silently ignores it and returns some. The
        statuses the poll will ask for go along, so a status no plugin registered (a
        misspelt ``delivery.status``) is caught here, once, with a clear message.
        """
        try:
            page = self.list_orders(
                {
                    "status": statuses,
                    "modified_after": format_wc_gmt(now + timedelta(days=1)),
                    "dates_are_gmt": "true",
                    "per_page": 1,
                    "_fields": "id",
                }
            )
        except StoreRequestError as exc:
            if "status" not in str(exc):
                raise
            raise StoreStatusUnknown(
                f"{self.url} does not know one of the order statuses {statuses!r} ({exc}). "
                "If delivery.status names a custom status, check the plugin that registers it "
                "is active, and the spelling."
            ) from None
        if page.items:
            raise StoreTooOld(
                f"{self.url} ignores the modified_after filter (WooCommerce older than 5.8): "
                "wcfollowup would miss or repeat orders. Update WooCommerce to 5.8 or newer."
            )
        return page.server_time

    def products(self, product_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Permalink, name and images of products, for links and pictures in emails."""
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(product_ids), 100):
            chunk = product_ids[start : start + 100]
            _response, items = self._get(
                "products",
                {
                    "include": ",".join(str(i) for i in chunk),
                    "per_page": len(chunk),
                    "_fields": "id,name,permalink,images",
                },
            )
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and isinstance(item.get("id"), int):
                    found[item["id"]] = item
        return found

    def reviewed_products(self, email: str, product_ids: list[int]) -> set[int]:
        """Which of these products already have a review by this address (any status).

        ``GET /products/reviews?reviewer_email=…&product=…``: the store filters by both, so one
        request covers a whole order.
        """
        if not product_ids:
            return set()
        _response, items = self._get(
            "products/reviews",
            {
                "reviewer_email": email,
                "product": ",".join(str(i) for i in product_ids),
                "status": "all",
                "per_page": 100,
                "_fields": "id,product_id,reviewer_email",
            },
        )
        wanted = email.strip().lower()
        return {
            int(item["product_id"])
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict)
            and str(item.get("reviewer_email", "")).strip().lower() == wanted
            and isinstance(item.get("product_id"), int)
        }

    def find_coupon(self, code: str) -> dict[str, Any] | None:
        """The coupon with exactly this code (the store keeps codes lower-case), if any."""
        _response, items = self._get("coupons", {"code": code.lower(), "per_page": 10})
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and str(item.get("code", "")).lower() == code.lower():
                return item
        return None

    def create_coupon(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /coupons``; raises ``CouponExists`` when the code is taken.

        Retrying a POST that timed out is safe here: the code is fixed before the first
        attempt, so a retry that finds its own coupon already made gets ``CouponExists`` and
        the caller reuses it.
        """
        _response, created = self._call("POST", "coupons", {}, body)
        if not isinstance(created, dict):
            raise StoreUnavailable("the created coupon was not a JSON object")
        return created

    # -- plumbing -------------------------------------------------------------------------

    def _get(self, endpoint: str, params: dict[str, Any]) -> tuple[requests.Response, Any]:
        return self._call("GET", endpoint, params)

    def _call(
        self,
        method: str,
        endpoint: str,
        params: dict[str, Any],
        body: dict[str, Any] | None = None,
    ) -> tuple[requests.Response, Any]:
        retrying = Retrying(
            retry=retry_if_exception_type(StoreUnavailable),
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._call_once, method, endpoint, params, body)

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=0.5, max=30)(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, StoreUnavailable) and error.retry_after is not None:
            return max(error.retry_after, backoff)
        return backoff

    def _call_once(
        self,
        method: str,
        endpoint: str,
        params: dict[str, Any],
        body: dict[str, Any] | None,
    ) -> tuple[requests.Response, Any]:
        try:
            return self._exchange(method, endpoint, params, body)
        except StoreAuthError as exc:
            self.refused = exc
            raise

    def _exchange(
        self,
        method: str,
        endpoint: str,
        params: dict[str, Any],
        body: dict[str, Any] | None,
    ) -> tuple[requests.Response, Any]:
        try:
            if method == "POST":
                response = self._api.post(endpoint, body or {}, params=dict(params))
            else:
                response = self._api.get(endpoint, params=dict(params))
        except requests.Timeout as exc:
            raise StoreUnavailable(
                f"timed out talking to {self.url} ({type(exc).__name__})"
            ) from None
        except requests.RequestException as exc:
            # Never str(exc): over http it holds the whole OAuth-signed URL.
            failure = certificate_failure(exc)
            if failure is not None:
                raise StoreTlsError(tls_advice(self.url, failure)) from None
            raise StoreUnavailable(
                f"could not reach {self.url}: {describe_connection_error(exc)}"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return response, self._json(response)
        text = _error_text(response)
        if status in (401, 403):
            # WooCommerce's own words; a store or proxy echoing our signed request also says
            # "oauth_nonce" and "oauth_timestamp", and is then refusing the keys.
            if "nonce has already been used" in text.lower():
                # The client's OAuth nonce is a hash of 8 random digits: a rare repeat is
                # refused. A new call is signed with a new nonce, so this is worth a retry.
                raise StoreUnavailable(f"{self.url} refused a repeated OAuth nonce; re-signing")
            if "invalid timestamp" in text.lower():
                raise StoreAuthError(
                    f"{self.url} refused the request time ({text}): this machine's clock is more "
                    "than 15 minutes off the store's. Enable NTP (timedatectl set-ntp true)."
                )
            raise StoreAuthError(
                f"{self.url} refused the API keys ({text}). Check consumer_key/consumer_secret "
                "and that the key has Read access."
            )
        if status == 404 and endpoint.startswith("orders/"):
            raise OrderNotFound(f"{endpoint} does not exist on {self.url} ({text})")
        if status == 429 or status >= 500:
            raise StoreUnavailable(f"{self.url} answered {text}", _retry_after(response))
        if not _is_json(response):
            # WooCommerce answers every 4xx with its JSON error; anything else came from a
            # proxy or firewall in between, or was cut off (a lost "code already exists"
            # answer to a retried POST /coupons must not fail the step for good).
            raise StoreUnavailable(f"{self.url} answered {text}; not WooCommerce's own answer")
        code = _error_code(response)
        if code == COUPON_EXISTS:
            raise CouponExists(f"{self.url} already has this coupon code ({text})", code)
        raise StoreRequestError(f"{self.url} rejected {method} {endpoint}: {text}", code)

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError):
            raise StoreUnavailable(
                f"{self.url} sent a body that is not valid JSON "
                f"({len(response.content)} bytes; truncated or an HTML error page?)"
            ) from None


__all__ = ["Page", "StoreError", "WooGateway"]
