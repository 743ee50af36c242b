"""Runs one ASGI app under uvicorn on a background thread, on an ephemeral port by default."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp


class ServerThread:
    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.host = host
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,  # no raw stderr handler: demo and tests share a process with a daemon
            date_header=False,
            server_header=False,
            access_log=False,
            lifespan="off",
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="sandbox-server", daemon=True)
        self.port = 0

    def start(self, timeout: float = 10.0) -> int:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"sandbox server on {self.host} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox server on {self.host} did not start in {timeout}s")
            time.sleep(0.005)
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        return self.port

    def request_stop(self) -> None:
        self.server.should_exit = True

    def join(self, grace: float = 0.5, timeout: float = 5.0) -> None:
        """Wait for a graceful exit; then drop idle keep-alive (and TLS) connections by force."""
        if not self._thread.is_alive():
            return
        self._thread.join(grace)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout)

    def stop(self) -> None:
        self.request_stop()
        self.join()
