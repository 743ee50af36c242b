"""Build the email a step sends: language, per-kind extras, links, and the rendered parts.

Shared by the dispatcher (which then sends) and ``wcfollowup preview`` (which only shows), so
a preview is the exact email a real order would get. With ``dry_run`` nothing is written
anywhere: a coupon step shows a sample code instead of creating one in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from babel.dates import format_date

from wcfollowup.config import Config, StepConfig
from wcfollowup.core.context import email_context, safe_money
from wcfollowup.core.language import language_for
from wcfollowup.core.money import LOCALE_FOR_LANGUAGE
from wcfollowup.core.shapes import dicts, integer, mapping, text, web_url
from wcfollowup.db.surveys import SurveyBook
from wcfollowup.engine.coupon_issuer import CouponIssuer, IssuedCoupon
from wcfollowup.engine.step_ref import StepRef
from wcfollowup.mail.message import OutgoingEmail
from wcfollowup.render.renderer import Renderer

if TYPE_CHECKING:
    from wcfollowup.web.tokens import LinkSigner
    from wcfollowup.woo.gateway import WooGateway

# An unsubscribe link must keep working for as long as anyone might click it.
UNSUBSCRIBE_VALID_FOR = timedelta(days=5 * 365)
ASM_UNSUBSCRIBE_TAG = "<%asm_group_unsubscribe_raw_url%>"
PRODUCT_CACHE_LIMIT = 5000


class NothingToSend(Exception):
    """The step has nothing to say (every product already reviewed): skip it, with a reason."""


@dataclass(frozen=True, slots=True)
class Composed:
    email: OutgoingEmail
    language: str
    coupon: IssuedCoupon | None = None


class Composer:
    def __init__(
        self,
        config: Config,
        gateway: WooGateway,
        renderer: Renderer,
        signer: LinkSigner | None,
        surveys: SurveyBook | None,
        issuer: CouponIssuer | None,
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.renderer = renderer
        self.signer = signer
        self.surveys = surveys
        self.issuer = issuer
        self._products: dict[int, dict[str, Any]] = {}

    # -- who and in which language --------------------------------------------------------

    def owner_address(self) -> str:
        return self.config.store.owner_email or self.config.sendgrid.from_email

    def language(self, step: StepConfig, order: dict[str, Any]) -> str:
        store = self.config.store
        if step.to == "owner":
            return store.language
        return language_for(order, store.language, store.language_by_country)

    # -- the email --------------------------------------------------------------------------

    def compose(
        self,
        ref: StepRef,
        step: StepConfig,
        order: dict[str, Any],
        recipient: str,
        now: datetime,
        *,
        dry_run: bool = False,
    ) -> Composed:
        store = self.config.store
        language = self.language(step, order)
        extras: dict[str, Any] = {}
        issued: IssuedCoupon | None = None
        to_customer = step.to == "customer"
        headers: dict[str, str] = {}
        asm_group = None
        if to_customer:
            extras["unsubscribe_url"], headers, asm_group = self._unsubscribe(
                recipient, language, now
            )
        product_ids = _product_ids(order)
        products = self._product_info(product_ids)
        if step.kind == "review":
            extras["review"] = self._review(recipient, product_ids, products)
        elif step.kind == "survey":
            extras["survey"] = self._survey(ref, step, language, now)
        elif step.kind == "coupon":
            assert step.coupon is not None  # the config guarantees it
            if dry_run or self.issuer is None:
                issued = IssuedCoupon.sample(step.coupon, store.tz, now)
            else:
                issued = self.issuer.issue(ref, step.coupon, recipient, order)
            extras["coupon"] = self._coupon_extras(issued, order, language)
        if step.to == "owner":
            extras["alert"] = self._alert(ref, order)
        context = email_context(
            order,
            store_name=store.name,
            store_url=store.url,
            store_tz=store.tz,
            language=language,
            returns_url=store.returns_url,
            products=products,
            tracking_meta_key=self._tracking_key(),
            extras=extras,
        )
        rendered = self.renderer.render(step.template, language, context)
        to_name = store.name if step.to == "owner" else _customer_name(order)
        email = OutgoingEmail(
            to_email=recipient,
            to_name=to_name,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            categories=("wcfollowup", ref.sequence, ref.step),
            custom_args={
                "wcf_step_id": str(ref.id),
                "wcf_order_id": str(ref.order_id),
                "wcf_sequence": ref.sequence,
                "wcf_step": ref.step,
            },
            headers=headers,
            asm_group_id=asm_group,
        )
        return Composed(email=email, language=language, coupon=issued)

    # -- per kind ---------------------------------------------------------------------------

    def _unsubscribe(
        self, recipient: str, language: str, now: datetime
    ) -> tuple[str, dict[str, str], int | None]:
        group = self.config.sendgrid.unsubscribe_group_id
        if group is not None:
            return ASM_UNSUBSCRIBE_TAG, {}, group
        url = self._link(
            "unsubscribe",
            self._signer().unsubscribe(
                email=recipient, language=language, expires_at=now + UNSUBSCRIBE_VALID_FOR
            ),
        )
        headers = {
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        return url, headers, None

    def _review(
        self, recipient: str, product_ids: list[int], products: dict[int, dict[str, Any]]
    ) -> dict[str, Any]:
        """One link per product not yet reviewed by this customer, checked just now."""
        if not product_ids:
            raise NothingToSend("nothing to review: the order lists no products")
        reviewed = self.gateway.reviewed_products(recipient, product_ids)
        left = [pid for pid in product_ids if pid not in reviewed]
        if not left:
            raise NothingToSend(
                "nothing left to review: the customer already reviewed every product "
                f"in this order ({len(product_ids)})"
            )
        items = []
        for pid in left:
            info = mapping(products.get(pid))
            url = web_url(info.get("permalink"))
            images = dicts(info.get("images"))
            items.append(
                {
                    "product_id": pid,
                    "name": text(info.get("name")),
                    "url": url,
                    "review_url": f"{url}#reviews" if url else "",
                    "image": web_url(images[0].get("src")) if images else "",
                }
            )
        return {"products": items}

    def _survey(
        self, ref: StepRef, step: StepConfig, language: str, now: datetime
    ) -> dict[str, Any]:
        expires_at = now + step.expires_in
        signer = self._signer()
        links = [
            {
                "score": score,
                "url": self._link(
                    "survey",
                    signer.survey(
                        order_id=ref.order_id,
                        step_id=ref.id,
                        score=score,
                        language=language,
                        expires_at=expires_at,
                    ),
                ),
            }
            for score in range(1, 6)
        ]
        locale = LOCALE_FOR_LANGUAGE.get(language, language)
        expires = format_date(expires_at.astimezone(self.config.store.tz), "long", locale=locale)
        return {"links": links, "expires": expires}

    def _coupon_extras(
        self, issued: IssuedCoupon, order: dict[str, Any], language: str
    ) -> dict[str, Any]:
        currency = text(order.get("currency")).upper() or "USD"
        amount = Decimal(issued.amount)
        if issued.discount_type == "percent":
            shown = f"{amount.normalize():f}%"
        else:
            shown = safe_money(amount, currency, language)
        locale = LOCALE_FOR_LANGUAGE.get(language, language)
        expires = ""
        if issued.expires_local:
            day = datetime.fromisoformat(issued.expires_local).date()
            expires = format_date(day, "long", locale=locale)
        minimum = (
            safe_money(issued.minimum_spend, currency, language) if issued.minimum_spend else ""
        )
        return {
            "code": issued.code.upper(),
            "amount": shown,
            "discount_type": issued.discount_type,
            "expires": expires,
            "minimum_spend": minimum,
            "url": self.config.store.url,
        }

    def _alert(self, ref: StepRef, order: dict[str, Any]) -> dict[str, Any]:
        response = (
            self.surveys.response_for_order(ref.store_id, ref.order_id) if self.surveys else None
        )
        return {
            "score": response.score if response else 0,
            "comment": response.comment if response else "",
            "customer_email": text(mapping(order.get("billing")).get("email")),
            "customer_name": _customer_name(order),
            "order_number": text(order.get("number")) or str(ref.order_id),
            "order_admin_url": f"{self.config.store.url}/wp-admin/post.php?post="
            f"{ref.order_id}&action=edit",
        }

    # -- helpers ----------------------------------------------------------------------------

    def _signer(self) -> LinkSigner:
        if self.signer is None:
            raise RuntimeError("links need the 'http' section in the config (public_url)")
        return self.signer

    def _link(self, path: str, token: str) -> str:
        http = self.config.http
        if http is None:
            raise RuntimeError("links need the 'http' section in the config (public_url)")
        return f"{http.public_url.rstrip('/')}/{path}/{token}"

    def _tracking_key(self) -> str:
        delivery = self.config.delivery
        if delivery is not None and delivery.tracking is not None:
            return delivery.tracking.meta_key
        return "_wc_shipment_tracking_items"

    def _product_info(self, product_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Permalinks and images, cached: products rarely move, and a stale image is harmless."""
        missing = [pid for pid in product_ids if pid not in self._products]
        if missing:
            if len(self._products) > PRODUCT_CACHE_LIMIT:
                self._products.clear()
            found = self.gateway.products(missing)
            for pid in missing:
                self._products[pid] = found.get(pid, {})
        # .get: another dispatch worker may have cleared the cache in between.
        return {pid: self._products.get(pid, {}) for pid in product_ids}


def _product_ids(order: dict[str, Any]) -> list[int]:
    """The order's products (parents of variations: reviews belong to the product), in order."""
    seen = {integer(item.get("product_id")): None for item in dicts(order.get("line_items"))}
    return [pid for pid in seen if pid > 0]


def _customer_name(order: dict[str, Any]) -> str:
    billing = mapping(order.get("billing"))
    return " ".join(text(billing.get(k)) for k in ("first_name", "last_name")).strip()
