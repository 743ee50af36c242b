"""No secret anywhere a person or a log file reads, across every command and failure we know.

The keys are recognisable strings (the sandbox's own, plus a signing key); everything the
daemon, the commands and the link listener produce is collected and searched for them. The
listener's body limit, 404s and 405s are tested in ``test_web.py``; here only its defaults and
its route list.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import pytest
import structlog
from sqlalchemy import select
from starlette.responses import Response
from support import drain
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.config import load_config
from wcfollowup.config.models import HttpConfig
from wcfollowup.core.clock import FakeClock
from wcfollowup.db.schema import metadata
from wcfollowup.sandbox import Sandbox
from wcfollowup.sandbox.faults import echo_request
from wcfollowup.service.daemon import Daemon
from wcfollowup.service.logs import configure_logging
from wcfollowup.web.app import make_app

# The test's own HTTP client logs the link it opens; that is not wcfollowup's log.
TEST_CLIENT_LOGGERS = ("httpx", "httpcore")
SIGNING_KEY = "signing-canary-7d3f9a0c5b1e4f2a8c6d0e9b7a5f3c1d"

SEQUENCES = """\
sequences:
  - name: thanks
    steps:
      - name: thank-you
        template: thank-you
      - name: survey
        kind: survey
        after: 1h
      - name: review
        kind: review
        after: 2h
  - name: reward
    steps:
      - name: coupon
        kind: coupon
        after: 1h
        coupon: {amount: 10}
"""


def json_error(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


class Faults:
    """Each fault once: a SendGrid 400 and 401, a store 401 on a poll, a refused coupon."""

    def __init__(self) -> None:
        self.mail_left = [
            json_error(
                400, {"errors": [{"message": "The to email does not contain a valid address."}]}
            ),
            json_error(
                401, {"errors": [{"message": "The provided authorization grant is invalid"}]}
            ),
        ]
        self.store_401 = True
        self.coupon_refusal = True

    def mail(self, scope: dict[str, Any]) -> Response | None:
        return self.mail_left.pop(0) if self.mail_left else None

    def store(self, scope: dict[str, Any]) -> Response | None:
        path, method = scope["path"], scope["method"]
        if self.coupon_refusal and method == "POST" and path.endswith("/coupons"):
            self.coupon_refusal = False
            return json_error(
                400,
                {"code": "woocommerce_rest_coupon_code_already_exists", "message": "refused",
                 "data": {"status": 400}},
            )  # fmt: skip
        if self.store_401 and method == "GET" and path.endswith("/orders"):
            self.store_401 = False
            return json_error(
                401,
                {"code": "woocommerce_rest_authentication_error",
                 "message": "Consumer key is invalid.", "data": {"status": 401}},
            )  # fmt: skip
        return None


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging binds the current stderr (capsys's here, closed after the test)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def secrets_of(sandbox: Sandbox) -> list[str]:
    return [
        sandbox.consumer_key,
        sandbox.consumer_secret,
        sandbox.sendgrid_api_key,
        SIGNING_KEY,
    ]


def env_of(sandbox: Sandbox) -> dict[str, str]:
    return {**sandbox.config_env(), "WCF_SIGNING_KEY": SIGNING_KEY}


def write_config(tmp_path: Path, sandbox: Sandbox) -> Path:
    path = tmp_path / "config.yaml"
    text = sandbox.config_yaml(tmp_path / "state.db") + "  signing_key: ${WCF_SIGNING_KEY}\n"
    path.write_text(text + SEQUENCES, encoding="utf-8")
    return path


def database_text(daemon: Daemon) -> str:
    parts: list[str] = []
    with daemon.state.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def assert_clean(where: str, text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret leaked into {where}"


def our_lines(err: str) -> str:
    """stderr without the test's own HTTP client's lines (now rendered by the root handler)."""
    return "\n".join(
        line for line in err.splitlines() if not any(f'"{n}' in line for n in TEST_CLIENT_LOGGERS)
    )


def test_no_secret_or_token_escapes_a_full_run(
    tmp_path: Path,
    sandbox: Sandbox,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    configure_logging(json=True)
    secrets = secrets_of(sandbox)
    path = write_config(tmp_path, sandbox)
    env = env_of(sandbox)
    config = load_config(path, env=env)
    faults = Faults()
    sandbox.mail_faults.hook = faults.mail
    sandbox.store_faults.hook = faults.store
    outputs: dict[str, str] = {}

    daemon = Daemon(config, clock, sleep=lambda _s: None)
    try:
        web = daemon.start_web()
        assert web is not None
        daemon.run_once()  # the store 401 lands on this first poll
        clock.advance(timedelta(minutes=1))
        daemon.run_once()
        orders = [
            int(sandbox.store.create_order(customer=c)["id"]) for c in ("siti", "dewi", "putu")
        ]
        for order_id in orders:
            clock.advance(timedelta(minutes=1))
            sandbox.store.complete(order_id)
        clock.advance(timedelta(seconds=5))
        daemon.poll_once()
        drain(daemon)
        clock.advance(timedelta(hours=3))
        drain(daemon)
        assert not faults.mail_left and not faults.store_401 and not faults.coupon_refusal
        statuses = {m.status for m in daemon.state.messages()}
        assert {"sent", "failed"} <= statuses

        mails = sandbox.sink.messages
        outputs["emails"] = "\n".join(json.dumps(m.payload) for m in mails)
        links = re.findall(
            r"http://127\.0\.0\.1:\d+/(?:survey|unsubscribe)/[^\"'\s<>]+", outputs["emails"]
        )
        tokens = {link.split("/")[4] for link in links}
        assert tokens, "the emails carried no signed links"
        with httpx.Client(timeout=5) as client:
            bodies = []
            survey = next(link for link in links if "/survey/" in link)
            unsubscribe = next(link for link in links if "/unsubscribe/" in link)
            base = survey.split("/survey/")[0]
            for response in (
                client.get(survey),
                client.post(survey),
                client.post(f"{survey.split('?')[0]}/comment", data={"comment": "bagus sekali"}),
                client.get(unsubscribe),
                client.post(unsubscribe),
                client.get(f"{base}/survey/not-a-token"),
                client.get(f"{base}/admin"),
                client.get(f"{base}/healthz"),
                client.get(f"{base}/metrics"),
            ):
                bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        outputs["listener"] = "\n".join(bodies)
        outputs["database"] = database_text(daemon)
    finally:
        daemon.close()
        sandbox.mail_faults.hook = None
        sandbox.store_faults.hook = None

    runner = CliRunner()
    order = str(orders[0])
    for args in (
        ["check"],
        ["log"],
        ["log", "--json"],
        ["log", "--csv"],
        ["queue"],
        ["queue", "--json"],
        ["stats", "--json"],
        ["preview", order, "--html-out", str(tmp_path / "preview.html")],
        ["forget", "nobody@example.test", "--yes"],
    ):
        result = runner.invoke(app, [*args, "--config", str(path)], env=env)
        assert result.exit_code == 0, (args, result.output)
        outputs[" ".join(args)] = result.output
    outputs["preview html"] = "\n".join(p.read_text() for p in tmp_path.glob("preview*.html"))
    once = subprocess.run(
        [sys.executable, "-m", "wcfollowup", "run", "--once", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    outputs["run --once"] = once.stdout + once.stderr
    captured = capsys.readouterr()
    outputs["stdout"] = captured.out
    outputs["log lines"] = our_lines(captured.err)
    outputs["stdlib logs"] = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(TEST_CLIENT_LOGGERS)
    )

    assert '"event"' in outputs["log lines"] and "failed" in outputs["database"]
    for where, text in outputs.items():
        assert_clean(where, text, secrets)
    for where in ("log lines", "stdlib logs", "run --once", "database", "log --json", "log --csv"):
        for token in tokens:
            assert token not in outputs[where], f"a signed token leaked into {where}"


@pytest.mark.parametrize(
    "breakage",
    [
        ("  consumer_key: ${WC_CONSUMER_KEY}", "  consumer_key: {ck}\n  consumer_kye: {ck}"),
        ("  api_key: ${SENDGRID_API_KEY}", "  api_key: ${{SENDGRID_KEY_TYPO}}"),
        ("  consumer_secret: ${WC_CONSUMER_SECRET}", "  consumer_secret: [{cs}]"),
        ("  signing_key: ${WCF_SIGNING_KEY}", "  signing_key: {{key: {sk}}}"),
    ],
)
def test_check_with_config_errors_around_secrets_echoes_none(
    tmp_path: Path, sandbox: Sandbox, breakage: tuple[str, str]
) -> None:
    path = write_config(tmp_path, sandbox)
    old, new = breakage
    new = new.format(ck=sandbox.consumer_key, cs=sandbox.consumer_secret, sk=SIGNING_KEY)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    result = CliRunner().invoke(app, ["check", "--config", str(path)], env=env_of(sandbox))
    assert result.exit_code == 2
    assert "problem(s)" in result.output
    assert_clean("check output", result.output, secrets_of(sandbox))


def test_listener_defaults_to_loopback_and_serves_only_its_routes() -> None:
    assert HttpConfig(public_url="https://shop.example/wcf").listen[0] == "127.0.0.1"
    from wcfollowup.web.tokens import KEY_BYTES, LinkSigner

    site = make_app(
        signer=LinkSigner(b"k" * KEY_BYTES),
        book=None,  # type: ignore[arg-type]  # no route is called
        clock=FakeClock(),
        store_name="Batik Sari",
    )
    routes = {(r.path, tuple(sorted(r.methods or ()))) for r in site.routes}  # type: ignore[attr-defined]
    assert routes == {
        ("/survey/{token}", ("GET", "HEAD", "POST")),
        ("/survey/{token}/comment", ("POST",)),
        ("/unsubscribe/{token}", ("GET", "HEAD", "POST")),
        ("/healthz", ("GET", "HEAD")),
        ("/metrics", ("GET", "HEAD")),
    }


# -- a store that echoes the request, and a store that is not there ---------------------------


class Echo:
    """Answers chosen store requests with the request itself (``echo_request``) and notes every
    credential it echoed: the OAuth parameters of a signed URL, the ``Authorization`` header."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, str, int]] = []  # (method, path regex, status)
        self.credentials: set[str] = set()
        self.echoed = 0

    def answer(self, method: str, path: str, status: int) -> None:
        self.rules = [(method, path, status)]

    def stop(self) -> None:
        self.rules = []

    def store(self, scope: dict[str, Any]) -> Any:
        for method, path, status in self.rules:
            if scope["method"] == method and re.search(path, scope["path"]):
                self._note(scope)
                return echo_request(status)
        return None

    def _note(self, scope: dict[str, Any]) -> None:
        self.echoed += 1
        query = scope.get("query_string", b"").decode()
        for name, value in parse_qsl(query):
            if name.startswith("oauth_") and name != "oauth_signature_method":
                self.credentials.update({value, quote(value, safe="")})
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                self.credentials.add(value.decode().split()[-1])


def basic_form(sandbox: Sandbox) -> str:
    pair = f"{sandbox.consumer_key}:{sandbox.consumer_secret}".encode()
    return base64.b64encode(pair).decode()


def add_verify_tls(path: Path, sandbox: Sandbox) -> None:
    """Trust the https sandbox's certificate (a copy: the sandbox deletes its own on stop)."""
    if sandbox.ca_file is not None:
        ca = path.parent / "ca.pem"
        ca.write_bytes(sandbox.ca_file.read_bytes())
        text = path.read_text(encoding="utf-8")
        text = text.replace("  language: en\n", f"  language: en\n  verify_tls: {ca}\n")
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_store_that_echoes_the_request_leaks_no_credential_anywhere(
    scheme: str, tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True)
    outputs: dict[str, str] = {}
    echo = Echo()
    with Sandbox(clock, https=scheme == "https") as sb:
        path = write_config(tmp_path, sb)
        add_verify_tls(path, sb)
        env = env_of(sb)
        sb.store_faults.hook = echo.store
        daemon = Daemon(load_config(path, env=env), clock, sleep=lambda _s: None)
        try:
            web = daemon.start_web()
            assert web is not None
            assert daemon.poll_once() is not None  # the store is first seen (and probed)
            # Polls refused (401), rejected (400) and failing (500), each echoing the request.
            for status in (401, 400, 500):
                echo.answer("GET", r"/orders$", status)
                clock.advance(timedelta(minutes=1))
                daemon.poll_once()
            echo.stop()
            with httpx.Client(timeout=5) as client:
                health = client.get(f"http://127.0.0.1:{web.port}/healthz")
            assert health.status_code == 503  # three failed polls: the last error is shown
            outputs["/healthz"] = health.text
            orders = [int(sb.store.create_order(customer=c)["id"]) for c in ("siti", "dewi")]
            for order_id in orders:
                clock.advance(timedelta(minutes=1))
                sb.store.complete(order_id)
            clock.advance(timedelta(seconds=5))
            daemon.poll_once()
            clock.advance(timedelta(hours=2))
            # Re-reading the order is refused (pauses), then rejected (postpones), both echoed;
            # the coupon is rejected for good: the echo becomes the step's stored reason.
            echo.answer("GET", r"/orders/\d+$", 401)
            daemon.dispatch_once()
            echo.answer("GET", r"/orders/\d+$", 400)
            clock.advance(timedelta(minutes=10))
            daemon.dispatch_once()
            echo.answer("POST", r"/coupons$", 400)
            clock.advance(timedelta(minutes=10))
            drain(daemon)
            rows = daemon.state.messages()
            assert any(m.status == "failed" and "rest_echo" in m.reason for m in rows), rows
            outputs["database"] = database_text(daemon)
        finally:
            daemon.close()

        runner = CliRunner()
        for args in (["log"], ["log", "--json"], ["log", "--csv"]):
            result = runner.invoke(app, [*args, "--config", str(path)], env=env)
            assert result.exit_code == 0, (args, result.output)
            outputs[" ".join(args)] = result.output
        echo.answer("GET", r"/orders$", 401)
        once = subprocess.run(
            [sys.executable, "-m", "wcfollowup", "run", "--once", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        outputs["run --once"] = once.stdout + once.stderr
        forbidden = [*secrets_of(sb), basic_form(sb), *echo.credentials]
    captured = capsys.readouterr()
    outputs["stdout"] = captured.out
    outputs["log lines"] = our_lines(captured.err)

    assert echo.echoed >= 6 and len(echo.credentials) >= (1 if scheme == "https" else 3)
    assert "rest_echo" in outputs["log lines"] and "rest_echo" in outputs["log"]
    for where, text in outputs.items():
        assert_clean(where, text, forbidden)
    assert once.returncode == 5, once.stderr  # the store refused the keys


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_unreachable_store_leaks_no_signed_url(
    scheme: str, tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True)
    outputs: dict[str, str] = {}
    with Sandbox(clock, https=scheme == "https") as sb:
        path = write_config(tmp_path, sb)
        add_verify_tls(path, sb)
        env = env_of(sb)
        store_url = sb.store_url
    # The sandbox is gone: its port refuses connections.
    daemon = Daemon(load_config(path, env=env), clock, sleep=lambda _s: None)
    try:
        web = daemon.start_web()
        assert web is not None
        for _ in range(3):
            clock.advance(timedelta(minutes=1))
            assert daemon.poll_once() is None
        with httpx.Client(timeout=5) as client:
            health = client.get(f"http://127.0.0.1:{web.port}/healthz")
        assert health.status_code == 503
        outputs["/healthz"] = health.text
    finally:
        daemon.close()
    captured = capsys.readouterr()
    outputs["log lines"] = our_lines(captured.err)
    for where, text in outputs.items():
        assert "oauth_" not in text and "/wp-json/" not in text, f"a request URL is in {where}"
        assert_clean(where, text, [*secrets_of(sb), basic_form(sb)])
    assert f"could not reach {store_url}: Connection refused" in outputs["log lines"]


def test_log_redacts_rows_written_before_reasons_were_redacted(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock
) -> None:
    """A database from an older version may hold an echoed request in a reason."""
    from sqlalchemy import update

    from wcfollowup.db.schema import messages

    path = write_config(tmp_path, sandbox)
    env = env_of(sandbox)
    daemon = Daemon(load_config(path, env=env), clock, sleep=lambda _s: None)
    try:
        daemon.run_once()
        order_id = sandbox.store.orders_ids(status="processing")[0]
        clock.advance(timedelta(minutes=1))
        sandbox.store.complete(order_id)
        clock.advance(timedelta(seconds=5))
        daemon.poll_once()
        drain(daemon)
        old_reason = (
            f"HTTP 400 rest_echo: GET /wp-json/wc/v3/orders/{order_id}?oauth_consumer_key="
            f"{sandbox.consumer_key}&oauth_signature=T2xkU2lnbmF0dXJl%3D "
            f"authorization: Basic {basic_form(sandbox)}"
        )
        with daemon.state.engine.begin() as conn:
            assert conn.execute(update(messages).values(reason=old_reason)).rowcount > 0
    finally:
        daemon.close()
    forbidden = [*secrets_of(sandbox), basic_form(sandbox), "T2xkU2lnbmF0dXJl"]
    for args in (["log"], ["log", "--json"], ["log", "--csv"]):
        result = CliRunner().invoke(app, [*args, "--config", str(path)], env=env)
        assert result.exit_code == 0, (args, result.output)
        assert "rest_echo" in result.output
        assert_clean(" ".join(args), result.output, forbidden)
