"""Products, customers and the site/system descriptions the daemon may probe.

Only what a follow-up daemon plausibly reads is modelled: product names, permalinks and images for
review links; customer records for "first or repeat"; ``system_status`` and the REST index for
the WooCommerce version and the store's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wcfollowup.sandbox import seed
from wcfollowup.sandbox.order_render import gmt_date, local_date
from wcfollowup.sandbox.seed import Customer, Product
from wcfollowup.sandbox.store_state import SandboxStore


def _price(cents: int) -> str:
    whole, part = divmod(cents, 100)
    return str(whole) if part == 0 else f"{whole}.{part:02d}"


def render_product(
    store: SandboxStore, product: Product, base_url: str, links: bool = True
) -> dict[str, Any]:
    created = store.catalog_created
    price = _price(product.prices[seed.STORE_CURRENCY])
    body: dict[str, Any] = {
        "id": product.id,
        "name": product.name,
        "slug": product.slug,
        "permalink": f"{base_url}/product/{product.slug}/",
        "date_created": local_date(created, store.tz),
        "date_created_gmt": gmt_date(created),
        "date_modified": local_date(created, store.tz),
        "date_modified_gmt": gmt_date(created),
        "type": "simple",
        "status": "publish",
        "featured": False,
        "catalog_visibility": "visible",
        "description": f"<p>{product.short_description}</p>\n",
        "short_description": f"<p>{product.short_description}</p>\n",
        "sku": product.sku,
        "price": price,
        "regular_price": price,
        "sale_price": "",
        "on_sale": False,
        "purchasable": True,
        "virtual": False,
        "reviews_allowed": True,
        "average_rating": "0.00",
        "rating_count": 0,
        "categories": [
            {
                "id": product.category.id,
                "name": product.category.name,
                "slug": product.category.slug,
            }
        ],
        "images": [
            {
                "id": product.image_id,
                "src": f"{base_url}/wp-content/uploads/2026/10/{product.slug}.jpg",
                "name": product.slug,
                "alt": product.name,
            }
        ],
        "stock_status": "instock",
        "meta_data": [],
    }
    if links:
        body["_links"] = {
            "self": [{"href": f"{base_url}/wp-json/wc/v3/products/{product.id}"}],
            "collection": [{"href": f"{base_url}/wp-json/wc/v3/products"}],
        }
    return body


def render_customer(
    store: SandboxStore, customer: Customer, base_url: str, links: bool = True
) -> dict[str, Any]:
    created = store.catalog_created + customer.id * 86400
    address = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "company": customer.company,
        "address_1": customer.address_1,
        "address_2": "",
        "city": customer.city,
        "state": customer.state,
        "postcode": customer.postcode,
        "country": customer.country,
    }
    body: dict[str, Any] = {
        "id": customer.id,
        "date_created": local_date(created, store.tz),
        "date_created_gmt": gmt_date(created),
        "date_modified": local_date(created, store.tz),
        "date_modified_gmt": gmt_date(created),
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "role": "customer",
        "username": customer.key,
        "billing": {**address, "email": customer.email, "phone": customer.phone},
        "shipping": {**address, "phone": ""},
        "is_paying_customer": True,
        "avatar_url": "https://secure.gravatar.com/avatar/?s=96&d=mm&r=g",
        "meta_data": [],
    }
    if links:
        body["_links"] = {
            "self": [{"href": f"{base_url}/wp-json/wc/v3/customers/{customer.id}"}],
            "collection": [{"href": f"{base_url}/wp-json/wc/v3/customers"}],
        }
    return body


def system_status(store: SandboxStore, base_url: str) -> dict[str, Any]:
    return {
        "environment": {
            "home_url": base_url,
            "site_url": base_url,
            "version": store.wc_version,
            "wp_version": seed.WP_VERSION,
            "php_version": seed.PHP_VERSION,
            "wp_multisite": False,
            "server_info": "wcfollowup sandbox (uvicorn)",
            "default_timezone": "UTC",
        },
        "settings": {
            "api_enabled": True,
            "currency": seed.STORE_CURRENCY,
            "currency_symbol": seed.CURRENCY_SYMBOLS[seed.STORE_CURRENCY],
            "currency_position": "left",
            "thousand_separator": ".",
            "decimal_separator": ",",
            "number_of_decimals": 2,
        },
    }


def rest_index(store: SandboxStore, base_url: str) -> dict[str, Any]:
    """``GET /wp-json/``: how a client learns the site's time zone without auth."""
    offset = datetime.now(UTC).astimezone(store.tz).utcoffset()
    hours = offset.total_seconds() / 3600 if offset else 0.0
    return {
        "name": seed.STORE_NAME,
        "description": "Batik, perawatan kulit dan kopi Nusantara (wcfollowup sandbox)",
        "url": base_url,
        "home": base_url,
        "gmt_offset": int(hours) if hours.is_integer() else hours,
        "timezone_string": store.timezone_name,
        "namespaces": ["wp/v2", "wc/v3"],
        "authentication": [],
        "_links": {"help": [{"href": "https://developer.wordpress.org/rest-api/"}]},
    }
