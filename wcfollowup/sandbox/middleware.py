"""ASGI wrappers shared by both sandbox servers: the clock's ``Date`` header and the fault seam.

The fault seam is deliberately tiny: a hook that sees each request's scope first and may hand
back an ASGI app to answer instead (a 429 with ``Retry-After``, a 502 HTML page, a body cut in
half, a response that never comes). Later fault-injection tests set ``hook``; nothing else in the
sandbox needs to know faults exist.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import format_datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcfollowup.core.clock import Clock

FaultHook = Callable[[Scope], ASGIApp | None]


class ClockDateHeader:
    """Servers stamp responses with *their* time; the daemon reads it to detect clock skew and
    to bound its poll cursor. ``send_date = False`` plays a server (or proxy) that sends none."""

    def __init__(self, app: ASGIApp, clock: Clock) -> None:
        self.app = app
        self.clock = clock
        self.send_date = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start" and self.send_date:
                date = format_datetime(self.clock.now(), usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message["headers"] = [(b"date", date), *headers]
            await send(message)

        await self.app(scope, receive, send_with_date)


class FaultSeam:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.hook: FaultHook | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hook = self.hook
        replacement = hook(scope) if hook is not None and scope["type"] == "http" else None
        await (replacement or self.app)(scope, receive, send)


class PeerCounter:
    """Counts the TCP connections a server took requests on: each connection has its own client
    (address, port), so the distinct ``scope["client"]`` pairs are the connections. Tests use it
    to check that the daemon keeps its connections alive rather than opening one per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.peers: set[tuple[str, int]] = set()
        self.requests = 0

    @property
    def connections(self) -> int:
        return len(self.peers)

    def reset(self) -> None:
        self.peers = set()
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            if client is not None:
                self.peers.add((str(client[0]), int(client[1])))
            self.requests += 1
        await self.app(scope, receive, send)
