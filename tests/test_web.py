"""The web listener over real HTTP: survey and unsubscribe pages, limits, health and metrics."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import pytest
from starlette.applications import Starlette

from wcfollowup.core.clock import FakeClock
from wcfollowup.web import ONE_CLICK_SOURCE, UNSUBSCRIBE_SOURCE, SurveyAnswer
from wcfollowup.web.app import make_app
from wcfollowup.web.metrics import Metrics
from wcfollowup.web.server import WebServer, WebServerError
from wcfollowup.web.tokens import KEY_BYTES, LinkSigner

START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
EXPIRES = START + timedelta(days=30)
POLL = timedelta(minutes=2)
BODY_LIMIT = 4096


@dataclass
class DictBook:
    """The WebBook contract in a few dicts (the state store has its own tests)."""

    scores: dict[int, tuple[int, int]] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)
    unsubscribed: list[tuple[str, str]] = field(default_factory=list)
    broken: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_survey_score(
        self, step_id: int, order_id: int, score: int, at: datetime
    ) -> SurveyAnswer:
        self._check()
        with self.lock:
            if step_id in self.scores:
                return SurveyAnswer(recorded=False, score=self.scores[step_id][1])
            self.scores[step_id] = (order_id, score)
            return SurveyAnswer(recorded=True, score=score)

    def add_survey_comment(self, step_id: int, comment: str, at: datetime) -> bool:
        self._check()
        with self.lock:
            if step_id not in self.scores or step_id in self.comments:
                return False
            self.comments[step_id] = comment
            return True

    def unsubscribe(self, email: str, source: str, at: datetime) -> int:
        self._check()
        with self.lock:
            self.unsubscribed.append((email, source))
            return 2

    def _check(self) -> None:
        if self.broken:
            raise RuntimeError("database is locked for siti@example.co.id")


@dataclass
class Site:
    client: httpx.Client
    book: DictBook
    clock: FakeClock
    signer: LinkSigner
    metrics: Metrics

    def survey(self, score: int = 4, language: str = "en", step_id: int = 77) -> str:
        return self.signer.survey(
            order_id=1234, step_id=step_id, score=score, language=language, expires_at=EXPIRES
        )

    def unsubscribe(self, language: str = "en") -> str:
        return self.signer.unsubscribe(
            email="siti@example.co.id", language=language, expires_at=EXPIRES
        )


def start_site(store_name: str = "Batik Sari", *, with_metrics: bool = True) -> Iterator[Site]:
    clock = FakeClock(START)
    book = DictBook()
    signer = LinkSigner(b"s" * KEY_BYTES)
    metrics = Metrics(started_at=START)
    app = make_app(
        signer=signer,
        book=book,
        clock=clock,
        store_name=store_name,
        health=lambda: metrics.health(clock.now(), POLL),
        metrics=metrics if with_metrics else None,
        max_body_bytes=BODY_LIMIT,
    )
    server = WebServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
            yield Site(client, book, clock, signer, metrics)
    finally:
        server.stop()


@pytest.fixture
def site() -> Iterator[Site]:
    yield from start_site()


def flip(token: str, index: int = 12) -> str:
    chars = list(token)
    chars[index] = "A" if chars[index] != "A" else "B"
    return "".join(chars)


class TestSurvey:
    def test_get_shows_the_score_but_records_nothing(self, site: Site) -> None:
        """Mail scanners prefetch links: a GET must not count as an answer."""
        response = site.client.get(f"/survey/{site.survey(4)}")
        assert response.status_code == 200
        assert "You rated 4/5" in response.text
        assert '<form id="go" method="post">' in response.text
        assert "<noscript><button" in response.text
        assert site.book.scores == {}

    def test_post_records_and_offers_a_comment_box(self, site: Site) -> None:
        token = site.survey(4)
        response = site.client.post(f"/survey/{token}")
        assert response.status_code == 200
        assert site.book.scores == {77: (1234, 4)}
        assert "You rated 4/5" in response.text
        # Relative, so it still works under the reverse proxy's /wcf prefix.
        assert f'action="{token}/comment"' in response.text
        assert 'maxlength="2000"' in response.text

    def test_first_score_wins(self, site: Site) -> None:
        """Replaying the link or clicking another score changes nothing, and says so politely."""
        site.client.post(f"/survey/{site.survey(4)}")
        for score in (4, 1):
            response = site.client.post(f"/survey/{site.survey(score)}")
            assert response.status_code == 200
            assert "We already have your answer (4/5)" in response.text
            assert "<textarea" not in response.text
        assert site.book.scores == {77: (1234, 4)}

    def test_page_speaks_the_claim_language(self, site: Site) -> None:
        page = site.client.get(f"/survey/{site.survey(5, language='id')}").text
        assert '<html lang="id">' in page
        assert "Anda memberi nilai 5/5" in page
        answered = site.client.post(f"/survey/{site.survey(5, language='ms')}").text
        assert "Anda memberi penilaian 5/5" in answered
        assert "Ada apa-apa yang ingin anda beritahu kami?" in answered

    @pytest.mark.parametrize("method", ["GET", "POST"])
    def test_forged_token_is_refused_in_three_languages(self, site: Site, method: str) -> None:
        response = site.client.request(method, f"/survey/{flip(site.survey())}")
        assert response.status_code == 400
        for heading in ("This link is not valid", "Tautan ini tidak valid", "Pautan ini tidak sah"):
            assert heading in response.text
        assert site.book.scores == {}

    def test_unsubscribe_token_is_not_a_survey_token(self, site: Site) -> None:
        response = site.client.post(f"/survey/{site.unsubscribe()}")
        assert response.status_code == 400
        assert site.book.scores == {}
        assert site.book.unsubscribed == []

    @pytest.mark.parametrize("method", ["GET", "POST"])
    def test_expired_token_is_gone(self, site: Site, method: str) -> None:
        token = site.survey()
        site.clock.advance(timedelta(days=30, seconds=1))
        response = site.client.request(method, f"/survey/{token}")
        assert response.status_code == 410
        for heading in ("This link has expired", "Tautan ini sudah kedaluwarsa"):
            assert heading in response.text
        assert site.book.scores == {}

    def test_comment_is_stored_once(self, site: Site) -> None:
        token = site.survey(3)
        site.client.post(f"/survey/{token}")
        first = site.client.post(f"/survey/{token}/comment", data={"comment": "  Kainnya bagus  "})
        assert first.status_code == 200
        assert "Thank you for your comment" in first.text
        second = site.client.post(f"/survey/{token}/comment", data={"comment": "changed my mind"})
        assert "We already have your comment" in second.text
        assert site.book.comments == {77: "Kainnya bagus"}

    def test_comment_is_capped_and_empty_is_ignored(self, site: Site) -> None:
        token = site.survey(2)
        site.client.post(f"/survey/{token}")
        empty = site.client.post(f"/survey/{token}/comment", data={"comment": "   "})
        assert empty.status_code == 200
        assert site.book.comments == {}
        site.client.post(f"/survey/{token}/comment", data={"comment": "x" * 3000})
        assert site.book.comments == {77: "x" * 2000}

    def test_comment_with_bad_token_changes_nothing(self, site: Site) -> None:
        response = site.client.post(
            f"/survey/{flip(site.survey())}/comment", data={"comment": "hi"}
        )
        assert response.status_code == 400
        assert site.book.comments == {}
        assert site.book.scores == {}

    def test_database_failure_is_a_polite_503(self, site: Site) -> None:
        """The customer is asked to retry; the error text (with an email) stays out of the page."""
        site.book.broken = True
        response = site.client.post(f"/survey/{site.survey()}")
        assert response.status_code == 503
        assert "Please try again in a few minutes" in response.text
        assert "siti@example.co.id" not in response.text


class TestOnlyPostChangesState:
    """Link scanners send HEAD (Starlette routes it to the GET view): it must answer nothing."""

    @pytest.mark.parametrize("method", ["HEAD", "GET", "OPTIONS", "PUT", "DELETE", "PATCH"])
    def test_survey_link_changes_nothing(self, site: Site, method: str) -> None:
        response = site.client.request(method, f"/survey/{site.survey(1)}")
        assert response.status_code in (200, 405)
        assert site.book.scores == {}
        assert site.client.post(f"/survey/{site.survey(1)}").status_code == 200
        assert site.book.scores == {77: (1234, 1)}

    @pytest.mark.parametrize("method", ["HEAD", "GET", "OPTIONS", "PUT", "DELETE", "PATCH"])
    def test_unsubscribe_link_changes_nothing(self, site: Site, method: str) -> None:
        response = site.client.request(
            method, f"/unsubscribe/{site.unsubscribe()}", data={"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code in (200, 405)
        assert site.book.unsubscribed == []
        assert site.client.post(f"/unsubscribe/{site.unsubscribe()}").status_code == 200
        assert site.book.unsubscribed == [("siti@example.co.id", UNSUBSCRIBE_SOURCE)]

    def test_head_answers_like_get_without_a_body(self, site: Site) -> None:
        token = site.survey(1)
        head = site.client.head(f"/survey/{token}")
        get = site.client.get(f"/survey/{token}")
        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]
        assert site.book.scores == {}


class TestPageSafety:
    def test_store_name_is_escaped(self) -> None:
        for site in start_site('<script>alert("x")</script> & Co'):
            page = site.client.get(f"/survey/{site.survey()}").text
            assert '<script>alert("x")</script>' not in page
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in page
            assert page.count("<script>") == 1  # our own auto-submit, nothing else
            unsubscribe = site.client.get(f"/unsubscribe/{site.unsubscribe()}").text
            assert "<script>alert" not in unsubscribe

    def test_security_headers_and_script_hash(self, site: Site) -> None:
        """Only the exact inline script we ship may run; nothing is cached or referred."""
        response = site.client.get(f"/survey/{site.survey()}")
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "default-src 'none'" in csp
        script = re.search(r"<script>(.*?)</script>", response.text, re.S)
        assert script is not None
        digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
        assert f"script-src 'sha256-{digest}'" in csp
        style = re.search(r"<style>(.*?)</style>", response.text, re.S)
        assert style is not None
        digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert "server" not in response.headers

    def test_error_pages_carry_the_headers_too(self, site: Site) -> None:
        response = site.client.get("/survey/garbage")
        assert response.status_code == 400
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"


class TestUnsubscribe:
    def test_get_only_asks(self, site: Site) -> None:
        response = site.client.get(f"/unsubscribe/{site.unsubscribe('id')}")
        assert response.status_code == 200
        assert "Hentikan email tindak lanjut dari Batik Sari" in response.text
        assert '<form method="post">' in response.text
        assert site.book.unsubscribed == []

    def test_post_unsubscribes(self, site: Site) -> None:
        response = site.client.post(f"/unsubscribe/{site.unsubscribe('ms')}")
        assert response.status_code == 200
        assert "Anda telah berhenti melanggan" in response.text
        assert site.book.unsubscribed == [("siti@example.co.id", UNSUBSCRIBE_SOURCE)]

    def test_rfc8058_one_click(self, site: Site) -> None:
        response = site.client.post(
            f"/unsubscribe/{site.unsubscribe()}", data={"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code == 200
        assert response.text == "Unsubscribed.\n"
        assert site.book.unsubscribed == [("siti@example.co.id", ONE_CLICK_SOURCE)]

    def test_survey_token_cannot_unsubscribe(self, site: Site) -> None:
        response = site.client.post(f"/unsubscribe/{site.survey()}")
        assert response.status_code == 400
        assert site.book.unsubscribed == []

    def test_expired(self, site: Site) -> None:
        token = site.unsubscribe()
        site.clock.advance(timedelta(days=31))
        assert site.client.post(f"/unsubscribe/{token}").status_code == 410
        assert site.book.unsubscribed == []


class TestLimitsAndRouting:
    def test_declared_oversized_body_is_413(self, site: Site) -> None:
        response = site.client.post(
            f"/unsubscribe/{site.unsubscribe()}",
            content=b"List-Unsubscribe=One-Click&x=" + b"a" * BODY_LIMIT,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413
        assert site.book.unsubscribed == []

    def test_streamed_oversized_body_is_413(self, site: Site) -> None:
        """Without Content-Length the cap applies while the body streams in."""

        def chunks() -> Iterator[bytes]:
            yield b"comment="
            for _ in range(8):
                yield b"a" * 1024

        token = site.survey()
        site.client.post(f"/survey/{token}")
        response = site.client.post(
            f"/survey/{token}/comment",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert site.book.comments == {}

    def test_small_body_passes(self, site: Site) -> None:
        token = site.survey()
        site.client.post(f"/survey/{token}")
        response = site.client.post(f"/survey/{token}/comment", data={"comment": "a" * 1000})
        assert response.status_code == 200
        assert site.book.comments == {77: "a" * 1000}

    @pytest.mark.parametrize("path", ["/", "/admin", "/survey", "/survey/x/y/z", "/healthz/"])
    def test_unknown_path_is_404(self, site: Site, path: str) -> None:
        response = site.client.get(path)
        assert response.status_code == 404
        assert response.text == "404 Not found\n"

    @pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
    def test_other_methods_are_405(self, site: Site, method: str) -> None:
        response = site.client.request(method, f"/survey/{site.survey()}")
        assert response.status_code == 405
        assert site.book.scores == {}

    def test_get_on_comment_is_405(self, site: Site) -> None:
        assert site.client.get(f"/survey/{site.survey()}/comment").status_code == 405


class TestHealthAndMetrics:
    def test_healthz_turns_503_after_failed_polls(self, site: Site) -> None:
        site.metrics.poll_finished(ok=True, seconds=0.2, orders=3, at=site.clock.now())
        assert site.client.get("/healthz").text == "ok\n"
        for _ in range(3):
            site.clock.advance(POLL)
            site.metrics.poll_finished(
                ok=False, seconds=30, orders=0, at=site.clock.now(), error="store timed out"
            )
        response = site.client.get("/healthz")
        assert response.status_code == 503
        assert response.text == "unhealthy: the last 3 polls failed (last error: store timed out)\n"

    def test_metrics_exposition(self, site: Site) -> None:
        site.metrics.poll_finished(ok=True, seconds=0.2, orders=3, at=site.clock.now())
        site.metrics.message_finished(kind="thank_you", status="sent")
        response = site.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert 'wcfollowup_polls_total{outcome="ok"} 1.0' in response.text
        assert "wcfollowup_orders_seen_total 3.0" in response.text
        assert 'wcfollowup_messages_total{kind="thank_you",status="sent"} 1.0' in response.text

    def test_metrics_absent_is_404(self) -> None:
        for site in start_site(with_metrics=False):
            assert site.client.get("/metrics").status_code == 404


class TestMetricsHealth:
    def test_healthy_until_the_first_poll_is_overdue(self) -> None:
        """Before any poll: allowed max(3 intervals, 5 minutes) from start: 6m here."""
        metrics = Metrics(started_at=START)
        assert metrics.health(START + timedelta(minutes=6), POLL) == (True, "ok")
        assert metrics.health(START + timedelta(minutes=7), POLL) == (
            False,
            "no successful poll since start 7m ago",
        )

    def test_stale_success_reports_age_and_last_error(self) -> None:
        metrics = Metrics(started_at=START)
        metrics.poll_finished(ok=True, seconds=1, orders=0, at=START)
        metrics.poll_finished(ok=False, seconds=1, orders=0, at=START, error="HTTP 502\nfrom shop")
        interval = timedelta(minutes=10)
        assert metrics.health(START + timedelta(minutes=30), interval) == (True, "ok")
        ok, reason = metrics.health(START + timedelta(hours=2, minutes=5), interval)
        assert not ok
        assert reason == "no successful poll for 2h05m (last error: HTTP 502 from shop)"

    def test_success_between_failures_keeps_it_healthy(self) -> None:
        metrics = Metrics(started_at=START)
        for ok in (False, False, True, False, False):
            metrics.poll_finished(ok=ok, seconds=1, orders=0, at=START)
        assert metrics.health(START, POLL) == (True, "ok")

    def test_error_text_is_redacted(self) -> None:
        """The reason is served on /healthz: signed URLs lose their query strings."""
        metrics = Metrics(started_at=START)
        error = "GET https://shop.example/wp-json/wc/v3/orders?consumer_secret=cs_abc123 failed"
        for _ in range(3):
            metrics.poll_finished(ok=False, seconds=1, orders=0, at=START, error=error)
        ok, reason = metrics.health(START, POLL)
        assert not ok
        assert "cs_abc123" not in reason

    def test_step_counts_reset_states_that_emptied(self) -> None:
        metrics = Metrics()
        metrics.set_step_counts({"pending": 4, "sent": 2})
        metrics.set_step_counts({"sent": 6})
        metrics.set_queue_depth(3)
        text = metrics.exposition().decode()
        assert 'wcfollowup_steps{state="pending"} 0.0' in text
        assert 'wcfollowup_steps{state="sent"} 6.0' in text
        assert "wcfollowup_queue_depth 3.0" in text

    def test_registries_are_private(self) -> None:
        first, second = Metrics(), Metrics()
        first.message_finished(kind="survey", status="sent")
        assert b"wcfollowup_messages_total{" not in second.exposition()


class TestServer:
    def test_port_in_use_gives_a_clear_error(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = WebServer(make_app_for_server(), "127.0.0.1", port)
            with pytest.raises(WebServerError) as info:
                server.start()
        assert str(info.value) == (
            f"cannot listen on 127.0.0.1:{port}: address already in use; "
            "change http.listen in the config"
        )

    def test_stop_closes_the_listener(self) -> None:
        server = WebServer(make_app_for_server(), "127.0.0.1", 0)
        server.start()
        port = server.port
        assert port != 0
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").text == "ok\n"
        server.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


SLOW_TIMEOUT = 0.5
# How late a drop may come on a loaded machine; still far below "never".
SLACK = 1.5


def held_until_dropped(port: int, talk: Callable[[socket.socket], None]) -> float:
    """Connect, let ``talk`` send (or not), then wait for the server to close: seconds taken."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            talk(conn)
            conn.settimeout(SLOW_TIMEOUT + SLACK + 3)
            while conn.recv(4096):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        except TimeoutError:
            return float("inf")
    return time.monotonic() - started


def idle(_conn: socket.socket) -> None:
    """Connects and says nothing."""


def trickle(data: bytes) -> Callable[[socket.socket], None]:
    """Sends ``data`` one byte every 0.1 s: each byte arrives in time, the request never does."""

    def talk(conn: socket.socket) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(0.1)

    return talk


def partial_headers(conn: socket.socket) -> None:
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    trickle(b"X-Slow: " + b"a" * 40)(conn)


def slow_body(token: str) -> Callable[[socket.socket], None]:
    def talk(conn: socket.socket) -> None:
        conn.sendall(
            f"POST /survey/{token}/comment HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60\r\n\r\n".encode()
        )
        trickle(b"comment=" + b"b" * 40)(conn)

    return talk


def kept_alive_then_partial(conn: socket.socket) -> None:
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while not answer.endswith(b"\r\n\r\nok\n"):
        answer += conn.recv(4096)
    partial_headers(conn)


class TestSlowClients:
    """Idle, slowloris and slow-body clients are dropped once the request deadline passes."""

    def test_each_kind_is_dropped_within_the_request_timeout(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        book = DictBook()
        signer = LinkSigner(b"s" * KEY_BYTES)
        app = make_app(signer=signer, book=book, clock=FakeClock(START), store_name="Batik Sari")
        server = WebServer(app, "127.0.0.1", 0, request_timeout=SLOW_TIMEOUT)
        server.start()
        token = signer.survey(order_id=1, step_id=1, score=3, language="en", expires_at=EXPIRES)
        kinds = {
            "idle": idle,
            "partial headers": partial_headers,
            "slow body": slow_body(token),
            "kept alive, then partial": kept_alive_then_partial,
        }
        took: dict[str, float] = {}
        try:
            threads = [
                threading.Thread(
                    target=lambda k=kind, t=talk: took.__setitem__(
                        k, held_until_dropped(server.port, t)
                    )
                )
                for kind, talk in kinds.items()
            ]
            for thread in threads:
                thread.start()
            # Meanwhile an ordinary request is answered at once.
            assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").text == "ok\n"
            for thread in threads:
                thread.join()
        finally:
            server.stop()
        assert set(took) == set(kinds)
        for kind, seconds in took.items():
            assert seconds <= SLOW_TIMEOUT + SLACK, f"{kind} held for {seconds:.1f}s"
        # Trickling bytes does not buy time: the deadline is for the whole request.
        assert took["partial headers"] < 4.1 and took["slow body"] < 4.1
        assert book.comments == {}
        # A body cut off by the deadline is no server error (no traceback in the log).
        assert "Exception in ASGI application" not in caplog.text

    def test_connections_beyond_the_limit_stay_in_the_kernel_queue(self) -> None:
        """Accepted sockets never exceed ``max_connections``: the rest cost us no descriptor."""
        server = WebServer(make_app_for_server(), "127.0.0.1", 0, max_connections=3)
        server.start()
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(10)]
        try:
            time.sleep(0.3)  # give the listener every chance to accept more than it should
            accepted = [
                c
                for c in psutil.Process().net_connections(kind="tcp")
                if c.laddr and c.laddr.port == server.port and c.status == "ESTABLISHED"
            ]
            assert len(accepted) == 3
        finally:
            for client in clients:
                client.close()
        # The idle ones gone, their places are free again.
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).text == "ok\n"
        server.stop()


def make_app_for_server() -> Starlette:
    return make_app(
        signer=LinkSigner(b"s" * KEY_BYTES),
        book=DictBook(),
        clock=FakeClock(START),
        store_name="Batik Sari",
    )
