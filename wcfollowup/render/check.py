"""Render every template a config uses against a sample order, before any customer sees it.

``wcfollowup check`` calls :func:`check_templates`: a typo in an owner's template, a template
that does not exist, or a customer email without its unsubscribe link is reported here, with the
file and line, instead of failing (or going out wrong) at 3 a.m. on a real order.

The sample is realistic on purpose (an IDR order with two items, a coupon and a parcel on its
way) so that every branch a typical template has is taken. Nothing here reads the clock or the
network; the sample's dates are fixed.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from jinja2 import TemplateError, TemplateSyntaxError

from wcfollowup.config import Config, StepConfig
from wcfollowup.core.context import email_context, format_local_date, safe_money
from wcfollowup.core.language import DEFAULT_LANGUAGE_BY_COUNTRY
from wcfollowup.render.renderer import PARTS, Renderer, TemplateMissing

__all__ = ["SAMPLE_ORDER", "check_templates", "sample_context", "sample_extras"]

SAMPLE_NOW: Final = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)
_JAKARTA: Final = ZoneInfo("Asia/Jakarta")
_DAYS_30: Final = timedelta(days=30)
SAMPLE_UNSUBSCRIBE_URL: Final = "https://wcfollowup.invalid/unsubscribe/sample-token"

SAMPLE_ORDER: Final[Mapping[str, Any]] = {
    "id": 1042,
    "number": "1042",
    "status": "completed",
    "currency": "IDR",
    "date_created_gmt": "2026-03-02T02:15:00",
    "date_completed_gmt": "2026-03-03T04:00:00",
    "discount_total": "25000.00",
    "shipping_total": "18000.00",
    "total_tax": "0.00",
    "total": "338000.00",
    "payment_method_title": "Transfer bank",
    "billing": {
        "first_name": "Siti",
        "last_name": "Rahayu",
        "email": "siti.rahayu@example.test",
        "country": "ID",
    },
    "line_items": [
        {
            "id": 1,
            "name": "Batik Tulis Parang Rusak",
            "product_id": 101,
            "quantity": 1,
            "subtotal": "275000.00",
            "total": "250000.00",
            "sku": "BTK-PR-01",
            "price": 250000,
            "image": {"src": "https://toko.example/img/batik-parang.jpg"},
        },
        {
            "id": 2,
            "name": "Kopi Gayo Arabika 250g",
            "product_id": 102,
            "quantity": 2,
            "subtotal": "70000.00",
            "total": "70000.00",
            "sku": "KOPI-GY-250",
            "price": 35000,
            "image": {"src": ""},
        },
    ],
    "coupon_lines": [{"id": 7, "code": "hemat25", "discount": "25000.00"}],
    "meta_data": [
        {
            "id": 90,
            "key": "_wc_shipment_tracking_items",
            "value": [
                {
                    "tracking_provider": "jne",
                    "custom_tracking_provider": "",
                    "custom_tracking_link": "https://www.jne.co.id/tracking?awb=JNE0012345678",
                    "tracking_number": "JNE0012345678",
                    "date_shipped": "1772589600",
                }
            ],
        }
    ],
}

_SAMPLE_PRODUCTS: Final[Mapping[int, Mapping[str, Any]]] = {
    101: {
        "id": 101,
        "name": "Batik Tulis Parang Rusak",
        "permalink": "https://toko.example/produk/batik-tulis-parang-rusak/",
        "images": [{"src": "https://toko.example/img/batik-parang.jpg"}],
    },
    102: {
        "id": 102,
        "name": "Kopi Gayo Arabika 250g",
        "permalink": "https://toko.example/produk/kopi-gayo-arabika/",
        "images": [],
    },
}


def check_templates(config: Config) -> list[str]:
    """Problems with the templates ``config`` uses, as messages for the owner; [] if none."""
    renderer = Renderer(config.templates_dir)
    problems: list[str] = []
    missing: dict[str, list[str]] = {}
    checked: set[tuple[str, str, str]] = set()
    for sequence in config.sequences:
        for step in sequence.steps:
            missing_parts = _missing_parts(renderer, step.template, config.store.language)
            if missing_parts:
                missing.setdefault(step.template, []).append(
                    f"step '{step.name}' of sequence '{sequence.name}'"
                )
                continue
            if (step.template, step.kind, step.to) in checked:
                continue
            checked.add((step.template, step.kind, step.to))
            for language in _languages(config, step):
                problems.extend(_check_one(renderer, config, step, language))
    for template, users in missing.items():
        problems.append(_missing_message(template, users, config.templates_dir, renderer))
    return list(dict.fromkeys(problems))


def sample_extras(step: StepConfig | None, language: str, store_url: str) -> dict[str, Any]:
    """What the engine would pass for ``step`` (every kind when ``step`` is None)."""
    kind = step.kind if step is not None else None
    to = step.to if step is not None else None
    extras: dict[str, Any] = {}
    if to != "owner":
        extras["unsubscribe_url"] = SAMPLE_UNSUBSCRIBE_URL
    if kind in (None, "survey"):
        expires = SAMPLE_NOW + (step.expires_in if step is not None else _DAYS_30)
        extras["survey"] = {
            "links": [
                {"score": score, "url": f"https://wcfollowup.invalid/survey/sample-{score}"}
                for score in range(1, 6)
            ],
            "expires": format_local_date(expires, _JAKARTA, language),
        }
    if kind in (None, "coupon"):
        extras["coupon"] = _sample_coupon(step, language, store_url)
    if to in (None, "owner"):
        extras["alert"] = {
            "score": 2,
            "comment": "Paketnya telat seminggu dan kainnya agak kusut.",
            "customer_email": "siti.rahayu@example.test",
            "customer_name": "Siti Rahayu",
            "order_number": "1042",
            "order_admin_url": f"{store_url.rstrip('/')}/wp-admin/post.php?post=1042&action=edit",
        }
    return extras


def sample_context(
    language: str,
    *,
    step: StepConfig | None = None,
    store_name: str = "Toko Batik Sari",
    store_url: str = "https://toko.example",
    order: Mapping[str, Any] = SAMPLE_ORDER,
) -> dict[str, Any]:
    """The context of the sample order, as a real step of this kind would get it."""
    return email_context(
        order,
        store_name=store_name,
        store_url=store_url,
        store_tz=_JAKARTA,
        language=language,
        returns_url=f"{store_url.rstrip('/')}/pengembalian/",
        products=_SAMPLE_PRODUCTS,
        extras=sample_extras(step, language, store_url),
    )


# --- checking one template -----------------------------------------------------------------------


def _check_one(renderer: Renderer, config: Config, step: StepConfig, language: str) -> list[str]:
    context = sample_context(
        language, step=step, store_name=config.store.name, store_url=config.store.url
    )
    problems = []
    for part, suffix in PARTS:
        where = f"template '{step.template}' ({language}, {part})"
        try:
            rendered = renderer.render_part(step.template, language, suffix, context)
        except TemplateSyntaxError as exc:
            problems.append(f"{where}: {exc.message}{_at(exc.filename, exc.lineno)}")
            continue
        except TemplateMissing as exc:
            problems.append(f"{where}: {exc}")
            continue
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
            # A template can fail at render time in many ways (a typo, a filter given the wrong
            # type); each is the owner's to fix, so say where, not how Python felt about it.
            filename, line = _template_frame(exc.__traceback__, renderer)
            problems.append(f"{where}: {_plain(exc)}{_at(filename, line)}")
            continue
        if part == "subject" and not rendered:
            problems.append(f"{where}: the subject is empty")
        elif part != "subject" and not rendered.strip():
            problems.append(f"{where}: renders nothing")
        elif step.to == "customer" and part != "subject" and SAMPLE_UNSUBSCRIBE_URL not in rendered:
            problems.append(
                f"{where}: has no unsubscribe link; every customer email must show "
                f'{{{{ unsubscribe_url }}}} (e.g. {{% include "{language}/_footer.{suffix}" %}})'
            )
    return problems


def _languages(config: Config, step: StepConfig) -> list[str]:
    """Owner emails go out in the store's language; customer emails in any mapped one."""
    store = config.store
    if step.to == "owner":
        return [store.language]
    by_country: Mapping[str, str] = getattr(
        store, "language_by_country", DEFAULT_LANGUAGE_BY_COUNTRY
    )
    return list(dict.fromkeys([store.language, *by_country.values()]))


def _missing_parts(renderer: Renderer, template: str, language: str) -> list[str]:
    """Parts found in neither the language nor English (the renderer's fallback)."""
    found = []
    for _part, suffix in PARTS:
        try:
            renderer.find(template, language, suffix)
        except TemplateMissing:
            found.append(suffix)
        except TemplateError:
            pass  # it exists; the render reports what is wrong with it
    return found


def _missing_message(
    template: str, users: list[str], templates_dir: Path | None, renderer: Renderer
) -> str:
    parts = [f"{template}.{suffix}" for _part, suffix in PARTS]
    where = f"in {templates_dir} or " if templates_dir is not None else "in "
    used_by = "; ".join(dict.fromkeys(users))
    return (
        f"template '{template}' does not exist ({used_by} uses it): looked {where}the built-in "
        f"templates for {', '.join(parts)}; built-in templates are: {_built_ins(renderer)}"
    )


def _built_ins(renderer: Renderer) -> str:
    names = {
        name.split("/", 1)[1].rsplit(".", 2)[0]
        for name in renderer.env.list_templates(filter_func=_is_english_subject)
    }
    return ", ".join(sorted(names))


def _is_english_subject(name: str) -> bool:
    return name.startswith("en/") and name.endswith(".subject.txt")


def _template_frame(tb: types.TracebackType | None, renderer: Renderer) -> tuple[str | None, int]:
    """The innermost template frame: Jinja rewrites tracebacks so they point into templates."""
    filename: str | None = None
    line = 0
    for frame, lineno in _frames(tb):
        name = frame.f_code.co_filename
        if not name.endswith(".py") and name != "<template>":
            filename, line = name, lineno
    return filename, line


def _frames(tb: types.TracebackType | None) -> Iterable[tuple[types.FrameType, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _at(filename: str | None, line: int | None) -> str:
    if not filename:
        return ""
    return f" — {filename}:{line}" if line else f" — {filename}"


def _plain(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _sample_coupon(step: StepConfig | None, language: str, store_url: str) -> dict[str, Any]:
    coupon = step.coupon if step is not None else None
    discount_type = coupon.discount_type if coupon is not None else "percent"
    amount = Decimal(str(coupon.amount)) if coupon is not None else Decimal(10)
    minimum = coupon.minimum_spend if coupon is not None else Decimal(100000)
    expires = SAMPLE_NOW + (coupon.expires_in if coupon is not None else _DAYS_30)
    return {
        "code": f"{coupon.prefix if coupon is not None else 'THANKS'}-7F3KQ2",
        "amount": f"{amount.normalize():f}%"
        if discount_type == "percent"
        else safe_money(amount, "IDR", language),
        "discount_type": discount_type,
        "expires": format_local_date(expires, _JAKARTA, language),
        "minimum_spend": safe_money(minimum, "IDR", language) if minimum else "",
        "url": store_url,
    }
