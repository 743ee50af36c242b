"""``Sandbox``: a seeded WooCommerce store and a SendGrid sink, each on its own loopback port."""

from __future__ import annotations

import shutil
import signal
import socket
import threading
from pathlib import Path
from types import FrameType, TracebackType

from wcfollowup.core.clock import Clock, SystemClock
from wcfollowup.sandbox.mail_app import build_mail_app
from wcfollowup.sandbox.mail_sink import MailSink
from wcfollowup.sandbox.middleware import ClockDateHeader, FaultSeam, PeerCounter
from wcfollowup.sandbox.oauth import ApiKey, Authenticator
from wcfollowup.sandbox.server import ServerThread
from wcfollowup.sandbox.store_app import StoreApp
from wcfollowup.sandbox.store_state import SandboxStore
from wcfollowup.sandbox.tls import make_self_signed

CONSUMER_KEY = "ck_sandbox_5f1c2a9e8d7b6a5c4f3e2d1c0b9a8f7e6d5c"
CONSUMER_SECRET = "cs_sandbox_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
READONLY_CONSUMER_KEY = "ck_sandbox_readonly_1a2b3c4d5e6f7a8b9c0d1e2f3a"
READONLY_CONSUMER_SECRET = "cs_sandbox_readonly_f0e1d2c3b4a5968778695a4b3c"
SENDGRID_API_KEY = "SG.sandbox_wcfollowup.sandbox-key-not-a-real-sendgrid-key"


class Sandbox:
    """Both fake services, started and stopped together; usable as a context manager."""

    consumer_key = CONSUMER_KEY
    consumer_secret = CONSUMER_SECRET
    readonly_consumer_key = READONLY_CONSUMER_KEY
    readonly_consumer_secret = READONLY_CONSUMER_SECRET
    sendgrid_api_key = SENDGRID_API_KEY

    def __init__(
        self,
        clock: Clock,
        timezone: str = "Asia/Jakarta",
        seed: bool = True,
        https: bool = False,
        legacy_wc: bool = False,
        *,
        host: str = "127.0.0.1",
        store_port: int = 0,
        mail_port: int = 0,
    ) -> None:
        self.clock = clock
        self.host = host
        self.https = https
        self.store = SandboxStore(clock, timezone=timezone, legacy_wc=legacy_wc)
        if seed:
            self.store.seed_history()
        self.sink = MailSink(clock)
        self.auth = Authenticator(
            [
                ApiKey(CONSUMER_KEY, CONSUMER_SECRET, "read_write"),
                ApiKey(READONLY_CONSUMER_KEY, READONLY_CONSUMER_SECRET, "read"),
            ]
        )
        self.store_faults = FaultSeam(StoreApp(self.store, self.auth).app)
        self.mail_faults = FaultSeam(build_mail_app(self.sink, SENDGRID_API_KEY))
        self.ca_file: Path | None = None
        self._tls: tuple[Path, Path] | None = None
        if https:
            self._tls = make_self_signed()
            self.ca_file = self._tls[0]
        # The store's Date header, from its clock; tests may switch it off (``send_date``).
        self.store_dates = ClockDateHeader(self.store_faults, clock)
        # The connections each server took requests on (keep-alive tests).
        self.store_peers = PeerCounter(self.store_dates)
        self.mail_peers = PeerCounter(ClockDateHeader(self.mail_faults, clock))
        self._store_server = ServerThread(self.store_peers, host, store_port, tls=self._tls)
        self._mail_server = ServerThread(self.mail_peers, host, mail_port)
        self.store_url = ""
        self.sendgrid_host = ""

    def start(self) -> Sandbox:
        scheme = "https" if self.https else "http"
        store_port = self._store_server.start()
        try:
            mail_port = self._mail_server.start()
        except BaseException:
            self._store_server.stop()
            raise
        self.store_url = f"{scheme}://{self.host}:{store_port}"
        self.sendgrid_host = f"http://{self.host}:{mail_port}"
        self.store.base_url = self.store_url
        return self

    def stop(self) -> None:
        self._mail_server.request_stop()
        self._store_server.request_stop()
        self._mail_server.join()
        self._store_server.join()
        if self._tls is not None:
            shutil.rmtree(self._tls[0].parent, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def config_env(self) -> dict[str, str]:
        """The environment variables ``config_yaml`` refers to, holding this sandbox's keys."""
        return {
            "WC_CONSUMER_KEY": self.consumer_key,
            "WC_CONSUMER_SECRET": self.consumer_secret,
            "SENDGRID_API_KEY": self.sendgrid_api_key,
        }

    def config_yaml(
        self, database_path: object, *, name: str = "Toko Batik Sari", language: str = "en"
    ) -> str:
        """The ``store``, ``sendgrid`` and ``database`` blocks of a config aimed at this sandbox.

        Keys stay ``${VARS}`` (see ``config_env``), as in a real config; callers append their
        own ``poll``, ``dispatch`` and ``sequences``.
        """
        return sandbox_config_yaml(
            self.store_url, self.sendgrid_host, database_path, name=name, language=language
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


SANDBOX_CONFIG = """\
store:
  name: {name}
  url: {store_url}
  consumer_key: ${{WC_CONSUMER_KEY}}
  consumer_secret: ${{WC_CONSUMER_SECRET}}
  timezone: Asia/Jakarta
  language: {language}
sendgrid:
  api_key: ${{SENDGRID_API_KEY}}
  host: {mail_url}
  from_email: halo@tokobatiksari.example
  from_name: {name}
database:
  path: {db_path}
http:
  listen: 127.0.0.1:{http_port}
  public_url: http://127.0.0.1:{http_port}
"""


def sandbox_config_yaml(
    store_url: str,
    mail_url: str,
    database_path: object,
    *,
    name: str = "Toko Batik Sari",
    language: str = "en",
) -> str:
    """``Sandbox.config_yaml`` for a sandbox known only by its URLs (another process)."""
    return SANDBOX_CONFIG.format(
        name=name,
        language=language,
        store_url=store_url,
        mail_url=mail_url,
        db_path=database_path,
        http_port=free_port(),
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, for the daemon's link listener in a sandbox config."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def serve_forever(
    host: str = "127.0.0.1",
    store_port: int = 8765,
    mail_port: int = 8766,
    clock: Clock | None = None,
) -> None:
    """Run a seeded sandbox on fixed ports until SIGINT or SIGTERM (``wcfollowup sandbox``)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(clock or SystemClock(), host=host, store_port=store_port, mail_port=mail_port)
    try:
        sandbox.start()
        print(
            f"WooCommerce sandbox store: {sandbox.store_url}  (Toko Sari, "
            f"{len(sandbox.store.orders)} orders, time zone {sandbox.store.timezone_name})"
        )
        print(f"  consumer_key:    {sandbox.consumer_key}")
        print(f"  consumer_secret: {sandbox.consumer_secret}")
        print(f"SendGrid sandbox sink:     {sandbox.sendgrid_host}")
        print(f"  api_key:         {sandbox.sendgrid_api_key}")
        print(
            f"Sandbox-only control API:  POST {sandbox.store_url}/_sandbox/orders, "
            f"POST .../_sandbox/orders/<id>/complete|refund|cancel, "
            f"GET {sandbox.sendgrid_host}/_sandbox/mail"
        )
        print("Press Ctrl+C to stop.", flush=True)
        stop.wait()
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
