"""Runs the web app under uvicorn on a background thread of the daemon.

We bind the listening socket ourselves before uvicorn starts: a taken port then fails at once with
a message the owner can act on, instead of uvicorn logging it and quietly ending its thread.
uvicorn installs no signal handlers outside the main thread, so SIGTERM/SIGHUP stay the daemon's.
"""

from __future__ import annotations

import errno
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp


class WebServerError(Exception):
    """The web listener could not start; the message says what to change."""


class WebServer:
    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 8780) -> None:
        self.host = host
        self._requested_port = port
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
            )
        )
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

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
        assert self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failure
            self._failure = exc

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()

    def _where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self._requested_port}"
