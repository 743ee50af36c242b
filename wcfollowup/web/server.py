"""Runs the web app under uvicorn on a background thread of the daemon.

We bind the listening socket ourselves before uvicorn starts: a taken port then fails at once with
a message the owner can act on, instead of uvicorn logging it and quietly ending its thread.
uvicorn installs no signal handlers outside the main thread, so SIGTERM/SIGHUP stay the daemon's.

We also accept connections ourselves, at most ``max_connections`` at a time, and never more than a
quarter of the process's file-descriptor limit: the listener shares the daemon's descriptors, and
polling and sending must always find one free (see ``wcfollowup.web.guard``). uvicorn serves each
accepted connection with its h11 protocol plus our request deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import socket
import threading
import time

import structlog
import uvicorn
from starlette.types import ASGIApp

from wcfollowup.web.guard import GuardedH11Protocol, Slot

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

log = structlog.get_logger("wcfollowup.web")

MAX_CONNECTIONS = 100
REQUEST_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
MAX_HEADER_BYTES = 16_384
# After a failed accept (EMFILE: the process is out of descriptors), wait before the next one.
ACCEPT_RETRY_SECONDS = 0.5


def connection_limit(wanted: int) -> int:
    """``wanted``, but at most a quarter of the soft descriptor limit (and at least 2)."""
    if resource is None:
        return wanted
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(2, min(wanted, soft // 4))


class WebServerError(Exception):
    """The web listener could not start; the message says what to change."""


class WebServer:
    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 8780,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.max_connections = connection_limit(max_connections)
        self.request_timeout = request_timeout
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            http="h11",
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        self._server = uvicorn.Server(self._config)
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The real port, also when the config asked for port 0 (tests)."""
        return self._requested_port if self._bound_port is None else self._bound_port

    def start(self, timeout: float = 10.0) -> None:
        """Return once the server accepts connections, or raise ``WebServerError``."""
        if self._thread is not None:
            raise RuntimeError("the web server is already started")
        self._socket = self._bind()
        self._bound_port = int(self._socket.getsockname()[1])
        self._thread = threading.Thread(target=self._run, name="wcfollowup-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._close_socket()
                detail = f": {self._failure}" if self._failure else ""
                raise WebServerError(f"the web server on {self._where()} stopped{detail}")
            if time.monotonic() > deadline:
                self.stop()
                raise WebServerError(f"the web server on {self._where()} did not start in time")
            time.sleep(0.005)

    def stop(self, grace: float = 5.0) -> None:
        """Finish requests in flight, then close; idle keep-alive connections are dropped."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            loop, accepting = self._loop, self._accepting
            if loop is not None and accepting is not None:
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    loop.call_soon_threadsafe(accepting.cancel)
            self._server.should_exit = True
            thread.join(grace)
            if thread.is_alive():
                self._server.force_exit = True
                thread.join(grace)
        self._close_socket()

    def _bind(self) -> socket.socket:
        try:
            family = socket.getaddrinfo(
                self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0][0]
            return socket.create_server((self.host, self._requested_port), family=family)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = "address already in use"
            elif exc.errno == errno.EACCES:
                reason = "permission denied (ports below 1024 need privileges)"
            else:
                reason = exc.strerror or str(exc)
            raise WebServerError(
                f"cannot listen on {self._where()}: {reason}; change http.listen in the config"
            ) from exc

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failure
            self._failure = exc

    async def _serve(self) -> None:
        """uvicorn's server with no listener of its own; ``_accept`` hands it the connections."""
        assert self._socket is not None
        self._loop = asyncio.get_running_loop()
        self._accepting = asyncio.create_task(self._accept(self._socket))
        try:
            await self._server.serve(sockets=[])
        finally:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        slots = asyncio.Semaphore(self.max_connections)
        while not self._server.should_exit:
            await slots.acquire()
            slot = Slot(slots)
            try:
                conn, _address = await loop.sock_accept(listener)
            except OSError as exc:
                slot.release()
                log.warning("web listener could not accept a connection", error=exc.strerror)
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            except BaseException:
                slot.release()
                raise
            try:
                await loop.connect_accepted_socket(functools.partial(self._protocol, slot), conn)
            except OSError:
                conn.close()
                slot.release()

    def _protocol(self, slot: Slot) -> GuardedH11Protocol:
        return GuardedH11Protocol(
            config=self._config,
            server_state=self._server.server_state,
            app_state={},
            _loop=self._loop,
            request_timeout=self.request_timeout,
            on_closed=slot.release,
        )

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()

    def _where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self._requested_port}"
