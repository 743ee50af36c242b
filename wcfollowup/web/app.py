"""The daemon's small public web face: survey answers, unsubscribes, health and metrics.

Everything a customer can do here is bound to a signed token from our own email; there are no
accounts and no admin actions. Clicking a link never changes anything on its own: mail scanners
(Outlook Safe Links, corporate gateways) open every link in a message, with GET or HEAD, so
anything but a POST only shows a page, and the change happens on the POST that the page makes (by
script at once, or by a visible button).

The reverse proxy in front usually adds a prefix (``/wcf``), so pages only use relative URLs.
Expose ``/survey/`` and ``/unsubscribe/`` publicly; keep ``/healthz`` and ``/metrics`` for your
monitoring (they are harmless, but nobody outside needs them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcfollowup.common.redact import redact
from wcfollowup.core.clock import Clock
from wcfollowup.web import (
    ONE_CLICK_SOURCE,
    UNSUBSCRIBE_SOURCE,
    SurveyAnswer,
    WebBook,
    pages,
)
from wcfollowup.web.metrics import CONTENT_TYPE_LATEST, Metrics
from wcfollowup.web.tokens import BadToken, ExpiredToken, LinkSigner

log = structlog.get_logger("wcfollowup.web")

__all__ = ["ONE_CLICK_SOURCE", "UNSUBSCRIBE_SOURCE", "SurveyAnswer", "WebBook", "make_app"]

_T = TypeVar("_T")


class _BookUnavailable(Exception):
    """The database call failed; the customer gets a "try again later" page."""


def make_app(
    *,
    signer: LinkSigner,
    book: WebBook,
    clock: Clock,
    store_name: str,
    health: Callable[[], tuple[bool, str]] | None = None,
    metrics: Metrics | None = None,
    max_body_bytes: int = 16_384,
) -> Starlette:
    views = _Views(signer, book, clock, store_name, health, metrics)
    routes = [
        Route("/survey/{token}", views.survey, methods=["GET", "POST"]),
        Route("/survey/{token}/comment", views.survey_comment, methods=["POST"]),
        Route("/unsubscribe/{token}", views.unsubscribe, methods=["GET", "POST"]),
        Route("/healthz", views.healthz, methods=["GET"]),
        Route("/metrics", views.metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_SecurityHeaders),
            Middleware(_BodyLimit, max_body_bytes=max_body_bytes),
        ],
        exception_handlers={
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            BadToken: views.bad_token,
            _BookUnavailable: views.unavailable,
        },
    )
    # A trailing-slash redirect would be built from the Host we see, not the public URL.
    app.router.redirect_slashes = False
    return app


class _Views:
    def __init__(
        self,
        signer: LinkSigner,
        book: WebBook,
        clock: Clock,
        store_name: str,
        health: Callable[[], tuple[bool, str]] | None,
        metrics: Metrics | None,
    ) -> None:
        self.signer = signer
        self.book = book
        self.clock = clock
        self.store = store_name
        self.health = health
        self.metrics_source = metrics

    async def survey(self, request: Request) -> Response:
        token = request.path_params["token"]
        now = self.clock.now()
        claim = self.signer.read_survey(token, now)
        if not _changes_state(request):
            return _page(pages.survey_confirm(self.store, claim.language, claim.score))
        answer = await self._book(
            self.book.record_survey_score, claim.step_id, claim.order_id, claim.score, now
        )
        if not answer.recorded:
            return _page(pages.survey_already(self.store, claim.language, answer.score))
        log.info(
            "survey answered", order_id=claim.order_id, step_id=claim.step_id, score=answer.score
        )
        # Relative to /…/survey/<token>, so it survives the reverse proxy's prefix.
        action = f"{token}/comment"
        return _page(pages.survey_recorded(self.store, claim.language, answer.score, action))

    async def survey_comment(self, request: Request) -> Response:
        now = self.clock.now()
        claim = self.signer.read_survey(request.path_params["token"], now)
        form = await _read_form(request)
        raw = form.get("comment")
        comment = raw.strip()[: pages.COMMENT_MAX_CHARS] if isinstance(raw, str) else ""
        if not comment:
            return _page(pages.comment_done(self.store, claim.language, stored=False, empty=True))
        # The comment form only follows a recorded score, but make sure of it: first score wins.
        await self._book(
            self.book.record_survey_score, claim.step_id, claim.order_id, claim.score, now
        )
        stored = await self._book(self.book.add_survey_comment, claim.step_id, comment, now)
        if stored:
            log.info("survey comment received", order_id=claim.order_id, step_id=claim.step_id)
        return _page(pages.comment_done(self.store, claim.language, stored=stored))

    async def unsubscribe(self, request: Request) -> Response:
        now = self.clock.now()
        claim = self.signer.read_unsubscribe(request.path_params["token"], now)
        if not _changes_state(request):
            return _page(pages.unsubscribe_confirm(self.store, claim.language))
        form = await _read_form(request)
        # RFC 8058: the mailbox provider POSTs this body on the customer's behalf.
        one_click = form.get("List-Unsubscribe") == "One-Click"
        source = ONE_CLICK_SOURCE if one_click else UNSUBSCRIBE_SOURCE
        cancelled = await self._book(self.book.unsubscribe, claim.email, source, now)
        log.info("customer unsubscribed", source=source, cancelled_steps=cancelled)
        if one_click:
            return PlainTextResponse("Unsubscribed.\n")
        return _page(pages.unsubscribed(self.store, claim.language))

    async def healthz(self, _request: Request) -> Response:
        if self.health is None:
            return PlainTextResponse("ok\n")
        ok, reason = await run_in_threadpool(self.health)
        if ok:
            return PlainTextResponse("ok\n")
        return PlainTextResponse(f"unhealthy: {redact(reason)}\n", status_code=503)

    async def metrics(self, _request: Request) -> Response:
        if self.metrics_source is None:
            raise HTTPException(404)
        body = await run_in_threadpool(self.metrics_source.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def bad_token(self, _request: Request, exc: Exception) -> Response:
        expired = isinstance(exc, ExpiredToken)
        return _page(pages.bad_link(self.store, expired=expired), status=410 if expired else 400)

    async def unavailable(self, _request: Request, _exc: Exception) -> Response:
        return _page(pages.server_error(self.store), status=503)

    async def _book(self, call: Callable[..., _T], *args: object) -> _T:
        """The store is synchronous (SQLAlchemy); keep it off the event loop."""
        try:
            return await run_in_threadpool(call, *args)
        except Exception as exc:
            # The exception text can carry the customer's email (a constraint message);
            # the type is enough to find it in the daemon's other logs.
            log.error(
                "web page could not reach the database",
                operation=call.__name__,
                error=type(exc).__name__,
            )
            raise _BookUnavailable from exc


def _changes_state(request: Request) -> bool:
    """Only an explicit POST answers or unsubscribes.

    Starlette also routes HEAD to every GET view, and link scanners send HEAD: anything but POST
    (HEAD, GET, or a method a future route might add) only shows the page (HEAD without a body).
    """
    return request.method == "POST"


async def _read_form(request: Request) -> FormData:
    # Small, text-only forms: no uploads, a handful of fields.
    return await request.form(max_files=0, max_fields=10)


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status)


_PLAIN_REASONS = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


async def _http_error(_request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = exc.headers if isinstance(exc, HTTPException) else None
    text = _PLAIN_REASONS.get(status, "Error")
    return PlainTextResponse(f"{status} {text}\n", status_code=status, headers=headers)


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    """The client left (or the listener dropped it as too slow) mid-body: nothing to answer."""
    return PlainTextResponse("", status_code=400)


class _SecurityHeaders:
    """Every response: no caching, no sniffing, no referrer (tokens are in our URLs), strict CSP."""

    _HEADERS = (
        (b"content-security-policy", pages.CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in self._HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *self._HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyLimit:
    """Refuse large bodies up front by Content-Length, and cap chunked ones while they stream."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await _http_error_response(400, scope, receive, send)
                return
            if length > self.max_body_bytes:
                await _http_error_response(413, scope, receive, send)
                return

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the view's form parsing; Starlette turns it into the 413.
                    raise HTTPException(413)
            return message

        await self.app(scope, capped_receive, send)


async def _http_error_response(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    text = _PLAIN_REASONS.get(status, "Error")
    response = PlainTextResponse(
        f"{status} {text}\n", status_code=status, headers={"connection": "close"}
    )
    await response(scope, receive, send)
