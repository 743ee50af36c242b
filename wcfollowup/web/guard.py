"""Bounds on what a slow or hostile client can hold in the link listener.

The listener is public, and the daemon shares one process (and one file-descriptor limit) with
it: if the listener accepted every connection and kept each as long as the client liked, a few
dozen idle or trickling connections would take the descriptors that polling the store and sending
mail need. Two bounds fix that:

* ``Slot``: the listener (``WebServer._accept``) takes one of ``max_connections`` slots before it
  accepts a connection and the connection gives it back when it closes; the rest wait in the
  kernel's listen queue, which costs the daemon no descriptor.
* ``GuardedH11Protocol``: uvicorn's h11 protocol plus a request deadline. From the moment a request
  may begin (a connection is accepted, or a kept-alive connection sends its first byte) the whole
  request, headers and body, must arrive within ``request_timeout``, or the connection is closed.
  That covers idle connections, partial headers (slowloris) and slow bodies; uvicorn itself only
  times out idle keep-alive connections (``timeout_keep_alive``), headers are capped in size by
  h11 (``h11_max_incomplete_event_size``) and bodies by the app's ``_BodyLimit``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

# The client is still sending its request (headers not complete: IDLE; body pending: SEND_BODY).
_READING = (h11.IDLE, h11.SEND_BODY)


class Slot:
    """One accepted connection's place in ``Slots``; giving it back twice is harmless."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that closes a connection whose request does not arrive in time."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        request_timeout: float,
        on_closed: Callable[[], None],
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._request_timeout = request_timeout
        self._on_closed = on_closed
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # a new request begins on a kept-alive connection
        super().data_received(data)
        self._disarm_when_read()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request already (partly) buffered starts its own deadline now; an idle
        # kept-alive connection is uvicorn's keep-alive timer's to close.
        if not self.transport.is_closing():
            waiting = self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])
            if self.conn.their_state is h11.SEND_BODY or waiting:
                self._arm()
            self._disarm_when_read()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        # The transport closes the socket right after this returns: give the slot back after it.
        self.loop.call_soon(self._on_closed)

    def _disarm_when_read(self) -> None:
        if self.conn.their_state not in _READING:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            # abort: nothing of ours is waiting to be written, and the client may not be reading.
            self.transport.abort()
