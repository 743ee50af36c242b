"""Seeded fault injection for both sandbox servers, on the ``FaultSeam`` hook.

A ``FaultPlan`` holds rules ("``POST .*/coupons$`` fails 20% of the time, with one of these
kinds") and a seeded ``random.Random``, so a failing run can be replayed exactly. It answers in
place of the real app with what real stores and SendGrid send when they struggle: 429 with
``Retry-After`` or SendGrid's rate-limit headers, WordPress JSON and proxy HTML 5xx pages, a
firewall page with status 200, a connection dropped without a word, an answer that comes after
the client gave up. The ``lost-*`` kinds, a PHP warning in front of the JSON and a cut body let
the real app act first and only spoil the answer: the coupon exists, SendGrid took the mail, and
the client cannot know. Every injected fault is counted by rule and kind.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcfollowup.core.clock import Clock

if TYPE_CHECKING:
    from wcfollowup.sandbox.runner import Sandbox


class Fault(StrEnum):
    """What one faulted request gets. ``LOST_*``, ``NOT_JSON`` and ``TRUNCATED`` act first."""

    RATE_LIMITED = "429"  # the store's Retry-After, or SendGrid's X-RateLimit-* headers
    ERROR_JSON = "5xx-json"  # WordPress critical error / SendGrid error JSON, 500 or 503
    ERROR_HTML = "5xx-html"  # a proxy's 502/503 HTML page
    RESET = "reset"  # the connection closes without a response
    SLOW = "slow"  # no answer before the client's timeout (the app never acts)
    HTML_200 = "html-200"  # a host firewall's challenge page, status 200
    NOT_JSON = "not-json"  # a PHP warning printed in front of the real JSON
    TRUNCATED = "truncated"  # the real JSON cut in half (with a matching Content-Length)
    TOUCH = "touch"  # a random order changes while the poll is paging; answered normally
    LOST_ERROR = "lost-5xx"  # acted, then a proxy's 502 replaced the answer
    LOST_RESET = "lost-reset"  # acted, then the connection dropped
    LOST_SLOW = "lost-slow"  # acted, answer held past the client's timeout


ACTS_FIRST = frozenset(
    {
        Fault.NOT_JSON,
        Fault.TRUNCATED,
        Fault.TOUCH,
        Fault.LOST_ERROR,
        Fault.LOST_RESET,
        Fault.LOST_SLOW,
    }
)
STORE_FAULTS: tuple[Fault, ...] = (
    Fault.RATE_LIMITED,
    Fault.ERROR_JSON,
    Fault.ERROR_HTML,
    Fault.RESET,
    Fault.SLOW,
    Fault.HTML_200,
    Fault.NOT_JSON,
    Fault.TRUNCATED,
    Fault.LOST_ERROR,
    Fault.LOST_RESET,
    Fault.LOST_SLOW,
)
# SendGrid has no idempotency key: anything lost after it accepted is a possible double send,
# so those kinds are for proving the mailer records ``uncertain`` and never resends.
MAIL_FAULTS: tuple[Fault, ...] = (
    Fault.RATE_LIMITED,
    Fault.ERROR_JSON,
    Fault.ERROR_HTML,
    Fault.LOST_SLOW,
)

WP_CRITICAL_ERROR = {
    "code": "internal_server_error",
    "message": "<p>There has been a critical error on this website.</p>",
    "data": {"status": 500},
    "additional_errors": [],
}
PROXY_PAGE = (
    "<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
FIREWALL_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    "<h1>Checking your browser before accessing the site.</h1>"
    "<p>This process is automatic. Your browser will redirect shortly.</p></body></html>"
)
PHP_WARNING = (
    b'<br />\n<b>Warning</b>:  Undefined array key "shipping" in '
    b"<b>/var/www/html/wp-content/plugins/ongkir-checker/ongkir.php</b> on line <b>88</b><br />\n"
)
SENDGRID_BAD_ADDRESS = "Does not contain a valid address."


@dataclass(frozen=True, slots=True)
class FaultRule:
    """``pattern`` is ``"METHOD path-regex"`` (regex searched in the path); ``kinds`` weighted."""

    pattern: str
    rate: float
    kinds: Mapping[Fault, float]
    method: str = field(init=False)
    path: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        method, _, regex = self.pattern.partition(" ")
        if not regex or not 0.0 <= self.rate <= 1.0 or not self.kinds:
            raise ValueError(f"a fault rule needs 'METHOD regex', a rate and kinds: {self!r}")
        object.__setattr__(self, "method", method.upper())
        object.__setattr__(self, "path", re.compile(regex))

    def matches(self, scope: Scope) -> bool:
        return scope.get("method") == self.method and bool(self.path.search(scope["path"]))


def rule(pattern: str, rate: float, kinds: Sequence[Fault] | Mapping[Fault, float]) -> FaultRule:
    """A rule with equal weights when ``kinds`` is a plain sequence."""
    weights = dict(kinds) if isinstance(kinds, Mapping) else dict.fromkeys(kinds, 1.0)
    return FaultRule(pattern, rate, weights)


class FaultPlan:
    """Decides, per request, whether and how to fail; reproducible for a given seed.

    ``timeout`` is the client's request timeout: slow answers wait a little longer than it.
    ``touchable`` lists the orders ``TOUCH`` may change (default: every order in the store).
    The first rule that matches a request decides; requests no rule matches pass untouched.
    """

    def __init__(
        self,
        rules: Sequence[FaultRule],
        *,
        seed: int,
        clock: Clock,
        timeout: float,
        touchable: Callable[[], Sequence[int]] | None = None,
    ) -> None:
        self.rules = list(rules)
        self.clock = clock
        self.timeout = timeout
        self.touchable = touchable
        self.counts: Counter[tuple[str, str]] = Counter()
        self.enabled = True
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # the two servers run on two threads
        self._rejected: dict[str, str] = {}
        self._sandbox: Sandbox | None = None

    # -- set-up -----------------------------------------------------------------------------

    def reject_address(self, email: str, reason: str = SENDGRID_BAD_ADDRESS) -> None:
        """Mail to ``email`` always gets SendGrid's 400, whatever the dice say."""
        self._rejected[email.strip().lower()] = reason

    def install(self, sandbox: Sandbox) -> FaultPlan:
        """Put this plan on both of the sandbox's servers."""
        self._sandbox = sandbox
        sandbox.store_faults.hook = self.hook_for(sandbox.store_faults.app, mail=False)
        sandbox.mail_faults.hook = self.hook_for(sandbox.mail_faults.app, mail=True)
        return self

    def uninstall(self) -> None:
        if self._sandbox is not None:
            self._sandbox.store_faults.hook = None
            self._sandbox.mail_faults.hook = None
            self._sandbox = None

    # -- figures ----------------------------------------------------------------------------

    def by_kind(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_pattern, kind), n in self.counts.items():
            totals[kind] += n
        return dict(sorted(totals.items()))

    @property
    def total(self) -> int:
        return sum(n for (_p, kind), n in self.counts.items() if kind != Fault.TOUCH)

    # -- the hook ---------------------------------------------------------------------------

    def hook_for(self, inner: ASGIApp, *, mail: bool) -> Callable[[Scope], ASGIApp | None]:
        def hook(scope: Scope) -> ASGIApp | None:
            if mail and self._rejected and scope.get("path") == "/v3/mail/send":
                return _RejectOrElse(self, inner, scope)
            return self.choose(scope, inner, mail=mail)

        return hook

    def choose(self, scope: Scope, inner: ASGIApp, *, mail: bool) -> ASGIApp | None:
        if not self.enabled:
            return None
        with self._lock:
            matched = next((r for r in self.rules if r.matches(scope)), None)
            if matched is None or self._rng.random() >= matched.rate:
                return None
            kinds = list(matched.kinds)
            kind = self._rng.choices(kinds, weights=[matched.kinds[k] for k in kinds])[0]
            self.counts[(matched.pattern, kind.value)] += 1
            variant = self._rng.random()
        app = self._app(kind, inner, mail=mail, variant=variant)
        return app if kind in ACTS_FIRST else _ReadFirst(app)

    def _app(self, kind: Fault, inner: ASGIApp, *, mail: bool, variant: float) -> ASGIApp:
        if kind is Fault.RATE_LIMITED:
            return self._sendgrid_429() if mail else _store_429(variant)
        if kind is Fault.ERROR_JSON:
            return _sendgrid_5xx(variant) if mail else _wp_500(variant)
        if kind is Fault.ERROR_HTML:
            return _proxy_page(variant)
        if kind is Fault.RESET:
            return _reset
        if kind is Fault.SLOW:
            return _Stall(self.timeout, None)
        if kind is Fault.HTML_200:
            return Response(FIREWALL_PAGE, 200, media_type="text/html")
        if kind is Fault.NOT_JSON:
            return _Rewrite(inner, lambda body: PHP_WARNING + body)
        if kind is Fault.TRUNCATED:
            return _Rewrite(inner, lambda body: body[: max(len(body) // 2, 1)])
        if kind is Fault.TOUCH:
            return _TouchThenAnswer(self, inner)
        if kind is Fault.LOST_ERROR:
            return _ActThen(inner, _proxy_page(0.0))
        if kind is Fault.LOST_RESET:
            return _ActThen(inner, _reset)
        return _Stall(self.timeout, inner)  # LOST_SLOW

    def _sendgrid_429(self) -> ASGIApp:
        reset = int(self.clock.now().timestamp()) + 1
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        }
        body = {"errors": [{"field": None, "message": "too many requests", "help": None}]}
        return JSONResponse(body, 429, headers=headers)

    def touch_one(self) -> int | None:
        """Change one random order's ``date_modified`` (the store, not the answer, changes)."""
        if self._sandbox is None:
            return None
        ids = list(self.touchable() if self.touchable else self._sandbox.store.orders)
        if not ids:
            return None
        with self._lock:
            order_id = self._rng.choice(ids)
        self._sandbox.store.touch(order_id)
        return int(order_id)


# -- the answers ----------------------------------------------------------------------------


def echo_request(status: int) -> ASGIApp:
    """A WooCommerce-shaped JSON error that repeats the request: its method, path and query
    string (OAuth-signed over http) and every header (``Authorization: Basic`` over https).

    Debug plugins and some proxies answer like this; whatever echoes must not reach a log line,
    a message row or a page of ours. Not a ``Fault`` kind (seeded plans draw from every kind):
    a ``FaultSeam`` hook returns it for the requests it chooses.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        headers = " ".join(
            f"{name.decode('latin-1')}: {value.decode('latin-1')}"
            for name, value in scope.get("headers", [])
        )
        body = {
            "code": "rest_echo",
            "message": f"{scope.get('method')} {target} {headers}",
            "data": {"status": status, "url": target, "headers": headers},
        }
        await JSONResponse(body, status)(scope, receive, send)

    return app


def _store_429(variant: float) -> Response:
    body = {
        "code": "rest_too_many_requests",
        "message": "Too many requests. Please slow down.",
        "data": {"status": 429},
    }
    return JSONResponse(body, 429, headers={"Retry-After": "2" if variant < 0.5 else "1"})


def _wp_500(variant: float) -> Response:
    status = 500 if variant < 0.5 else 503
    body = {**WP_CRITICAL_ERROR, "data": {"status": status}}
    return JSONResponse(body, status)


def _sendgrid_5xx(variant: float) -> Response:
    status = 500 if variant < 0.5 else 503
    body = {"errors": [{"field": None, "message": "internal server error", "help": None}]}
    return JSONResponse(body, status)


def _proxy_page(variant: float) -> Response:
    status, title = (502, "Bad Gateway") if variant < 0.5 else (503, "Service Unavailable")
    return Response(PROXY_PAGE.format(status=status, title=title), status, media_type="text/html")


async def _reset(scope: Scope, receive: Receive, send: Send) -> None:
    """Drop the connection without a byte of response.

    ASGI has no "close the socket" message; under uvicorn ``receive`` is bound to the request
    cycle, which holds the transport. Elsewhere, a promised body that never comes (the server
    closes the connection mid-response) stands in.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let connection_lost run, so uvicorn does not try a 500
            await asyncio.sleep(0)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"99")]}
    )
    raise ConnectionAbortedError("fault injection: connection dropped mid-response")


async def _discard(_message: Message) -> None:
    return None


class _ActThen:
    """Let the real app act on the request, throw its answer away, and answer ``then``."""

    def __init__(self, inner: ASGIApp, then: ASGIApp) -> None:
        self.inner = inner
        self.then = then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope, receive, _discard)
        await self.then(scope, receive, send)


class _Stall:
    """Answer only after the client's timeout; with ``inner``, the real app acts first."""

    def __init__(self, timeout: float, inner: ASGIApp | None) -> None:
        self.timeout = timeout
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.inner is not None:
            await self.inner(scope, receive, _discard)
        await asyncio.sleep(self.timeout + 0.5)
        await _proxy_page(1.0)(scope, receive, send)  # the client has long given up


class _Rewrite:
    """The real answer, with its body changed (and Content-Length fixed to match)."""

    def __init__(self, inner: ASGIApp, change: Callable[[bytes], bytes]) -> None:
        self.inner = inner
        self.change = change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.inner(scope, receive, collect)
        body = self.change(b"".join(chunks))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _ReadFirst:
    """Read the whole request before a canned answer, as a real server does.

    An answer sent while the request body is still unread would leave that body on the
    keep-alive connection, where the sandbox server reads it as the next request (a 400 no
    real store sends).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        await self.app(scope, _Replay(body, receive).receive, send)


class _TouchThenAnswer:
    def __init__(self, plan: FaultPlan, inner: ASGIApp) -> None:
        self.plan = plan
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.plan.touch_one()
        await self.inner(scope, receive, send)


class _RejectOrElse:
    """Read the mail request; a rejected recipient gets SendGrid's 400, others the plan's dice."""

    def __init__(self, plan: FaultPlan, inner: ASGIApp, scope: Scope) -> None:
        self.plan = plan
        self.inner = inner
        self.scope = scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        replay = _Replay(body, receive).receive
        reason = self._rejection(body)
        if reason is not None:
            with self.plan._lock:
                self.plan.counts[("POST /v3/mail/send", "400-address")] += 1
            problem = {
                "message": reason,
                "field": "personalizations.0.to.0.email",
                "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html",
            }
            await JSONResponse({"errors": [problem]}, 400)(scope, replay, send)
            return
        app = self.plan.choose(scope, self.inner, mail=True) or self.inner
        await app(scope, replay, send)

    def _rejection(self, body: bytes) -> str | None:
        try:
            payload: Any = json.loads(body)
            recipients = payload["personalizations"][0]["to"]
            emails = [str(r.get("email", "")).strip().lower() for r in recipients]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None
        return next((self.plan._rejected[e] for e in emails if e in self.plan._rejected), None)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class _Replay:
    """Hands the already-read body to the real app; keeps the transport for ``_reset``."""

    def __init__(self, body: bytes, original: Receive) -> None:
        self.body = body
        self.sent = False
        self.transport = getattr(getattr(original, "__self__", None), "transport", None)

    async def receive(self) -> Message:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        return {"type": "http.disconnect"}


__all__ = [
    "MAIL_FAULTS",
    "STORE_FAULTS",
    "Fault",
    "FaultPlan",
    "FaultRule",
    "echo_request",
    "rule",
]
