"""The SendGrid-compatible sink, driven by the real ``sendgrid`` client over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from python_http_client.exceptions import BadRequestsError, UnauthorizedError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, CustomArg, Mail, MailSettings, SandBoxMode

from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sb(clock: FakeClock) -> Iterator[Sandbox]:
    with Sandbox(clock, seed=False) as sandbox:
        yield sandbox


def client(sb: Sandbox, key: str | None = None) -> SendGridAPIClient:
    sg = SendGridAPIClient(api_key=key or sb.sendgrid_api_key, host=sb.sendgrid_host)
    sg.client.timeout = 10
    return sg


def thank_you() -> Mail:
    mail = Mail(
        from_email="halo@tokosari.example",
        to_emails="siti.rahmawati@example.test",
        subject="Terima kasih, Siti! 🌺",
        plain_text_content="Pesanan #100 sudah selesai.",
        html_content="<p>Pesanan <b>#100</b> sudah selesai.</p>",
    )
    mail.custom_arg = CustomArg("outbox_id", "42")
    return mail


def raw_send(sb: Sandbox, payload: dict[str, Any]) -> BadRequestsError:
    with pytest.raises(BadRequestsError) as caught:
        client(sb).client.mail.send.post(request_body=payload)
    return caught.value


def valid_payload() -> dict[str, Any]:
    payload: dict[str, Any] = thank_you().get()
    return payload


class TestAccepted:
    def test_send_is_202_with_a_message_id_and_is_recorded(
        self, sb: Sandbox, clock: FakeClock
    ) -> None:
        clock.advance(timedelta(hours=2))
        response = client(sb).send(thank_you())
        assert response.status_code == 202
        assert response.body in (b"", "")
        message_id = response.headers["X-Message-Id"]
        assert len(message_id) == 22
        [mail] = sb.sink.messages
        assert mail.message_id == message_id
        assert mail.to == ["siti.rahmawati@example.test"]
        assert mail.subject == "Terima kasih, Siti! 🌺"
        assert mail.text == "Pesanan #100 sudah selesai."
        assert mail.html == "<p>Pesanan <b>#100</b> sudah selesai.</p>"
        assert mail.custom_args == {"outbox_id": "42"}
        assert mail.received_at == START + timedelta(hours=2)
        assert response.headers["Date"] == "Sun, 22 Nov 2026 10:00:00 GMT"

    def test_message_ids_are_unique_and_clear_empties_the_sink(self, sb: Sandbox) -> None:
        ids = {client(sb).send(thank_you()).headers["X-Message-Id"] for _ in range(3)}
        assert len(ids) == 3 and len(sb.sink.messages) == 3
        sb.sink.clear()
        assert sb.sink.messages == []

    def test_sandbox_mode_is_200_and_nothing_is_kept(self, sb: Sandbox) -> None:
        mail = thank_you()
        mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
        response = client(sb).send(mail)
        assert response.status_code == 200
        assert sb.sink.messages == []

    def test_control_api_lists_received_mail(self, sb: Sandbox) -> None:
        client(sb).send(thank_you())
        listed = requests.get(f"{sb.sendgrid_host}/_sandbox/mail", timeout=10).json()
        assert [m["to"] for m in listed] == [["siti.rahmawati@example.test"]]
        assert listed[0]["subject"] == "Terima kasih, Siti! 🌺"


class TestRejected:
    def test_bad_key_is_401(self, sb: Sandbox) -> None:
        with pytest.raises(UnauthorizedError) as caught:
            client(sb, key="SG.wrong").send(thank_you())
        assert caught.value.status_code == 401
        assert json.loads(caught.value.body) == {
            "errors": [
                {
                    "field": None,
                    "message": "The provided authorization grant is invalid, expired, or revoked",
                }
            ]
        }
        assert sb.sink.messages == []

    def test_missing_subject_from_and_content_are_all_reported(self, sb: Sandbox) -> None:
        payload = valid_payload()
        del payload["subject"], payload["from"], payload["content"]
        error = raw_send(sb, payload)
        assert error.status_code == 400
        errors = json.loads(error.body)["errors"]
        assert {e["field"] for e in errors} == {"subject", "from.email", "content"}
        assert all(e["message"] and e["help"] for e in errors)
        assert sb.sink.messages == []

    def test_subject_in_every_personalization_is_enough(self, sb: Sandbox) -> None:
        payload = valid_payload()
        del payload["subject"]
        payload["personalizations"][0]["subject"] = "Per-recipient subject"
        response = client(sb).client.mail.send.post(request_body=payload)
        assert response.status_code == 202
        assert sb.sink.messages[0].subject == "Per-recipient subject"

    def test_bad_recipient_and_empty_content_value(self, sb: Sandbox) -> None:
        payload = valid_payload()
        payload["personalizations"][0]["to"][0]["email"] = "not-an-email"
        payload["content"][1]["value"] = ""
        errors = json.loads(raw_send(sb, payload).body)["errors"]
        assert {e["field"] for e in errors} == {"personalizations.0.to.0.email", "content.1.value"}

    def test_no_personalizations_or_no_recipients(self, sb: Sandbox) -> None:
        payload = valid_payload()
        payload["personalizations"] = []
        assert json.loads(raw_send(sb, payload).body)["errors"][0]["field"] == "personalizations"
        payload["personalizations"] = [{"to": []}]
        assert (
            json.loads(raw_send(sb, payload).body)["errors"][0]["field"] == "personalizations.0.to"
        )

    def test_html_before_plain_text_is_rejected(self, sb: Sandbox) -> None:
        mail = Mail(from_email="halo@tokosari.example", to_emails="a@example.test", subject="Hi")
        payload: dict[str, Any] = mail.get()
        payload["content"] = [
            Content("text/html", "<p>x</p>").get(),
            Content("text/plain", "x").get(),
        ]
        assert json.loads(raw_send(sb, payload).body)["errors"][0]["field"] == "content"

    def test_sandbox_mode_must_be_a_json_boolean(self, sb: Sandbox) -> None:
        payload = valid_payload()
        payload["mail_settings"] = {"sandbox_mode": {"enable": "true"}}
        [error] = json.loads(raw_send(sb, payload).body)["errors"]
        assert error["field"] == "mail_settings.sandbox_mode.enable"
        assert "boolean" in error["message"]

    def test_body_that_is_not_json_is_a_bad_request(self, sb: Sandbox) -> None:
        response = requests.post(
            f"{sb.sendgrid_host}/v3/mail/send",
            data=b"{nope",
            headers={"Authorization": f"Bearer {sb.sendgrid_api_key}"},
            timeout=10,
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["message"] == "Bad Request"
