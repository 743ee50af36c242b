"""What can go wrong talking to the store, sorted by what the engine should do about it."""

from __future__ import annotations


class StoreError(Exception):
    """Base class; messages never contain keys, secrets or signed URLs."""


class StoreUnavailable(StoreError):
    """Transient: connection trouble, timeouts, 429, 5xx, a broken body. Try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreAuthError(StoreError):
    """401/403: the keys are wrong or lack permission. Retrying cannot help; pause and shout."""


class StoreTlsError(StoreError):
    """The store's certificate does not verify: permanent until the certificate or
    ``store.verify_tls`` changes, so never retried."""


class StoreRequestError(StoreError):
    """Any other 4xx: our request was wrong for this store. ``code`` is WooCommerce's own."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class CouponExists(StoreRequestError):
    """``POST /coupons`` with a code the store already has."""


class OrderNotFound(StoreError):
    """The order was deleted (404)."""


class StoreTooOld(StoreError):
    """The store ignores ``modified_after`` (WooCommerce < 5.8): polling would silently miss."""


class StoreIncompatible(StoreError):
    """The store cannot be polled as configured (too old, or a configured status it lacks)."""


class StoreStatusUnknown(StoreIncompatible):
    """The config names an order status (e.g. ``delivery.status``) the store does not have."""
