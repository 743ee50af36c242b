"""A SendGrid v3 ``/mail/send`` look-alike that the real ``sendgrid`` client can talk to.

Same status codes as the real service: 202 with an empty body and ``X-Message-Id`` when queued,
200 (and nothing kept) in sandbox mode, 400 with every validation error, 401 for a bad key.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wcfollowup.sandbox.mail_sink import MailSink
from wcfollowup.sandbox.mail_validate import sandbox_mode, validate

BAD_KEY = "The provided authorization grant is invalid, expired, or revoked"


def _errors(status: int, errors: list[dict[str, Any]]) -> Response:
    return JSONResponse({"errors": errors}, status_code=status)


def new_message_id() -> str:
    return secrets.token_urlsafe(16)[:22]


def build_mail_app(sink: MailSink, api_key: str) -> Starlette:
    async def send(request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return _errors(401, [{"field": None, "message": "authorization required"}])
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), api_key):
            return _errors(401, [{"field": None, "message": BAD_KEY}])
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            return _errors(400, [{"field": None, "message": "Bad Request", "help": None}])
        problems = validate(payload)
        if problems:
            return _errors(400, problems)
        if sandbox_mode(payload):
            return Response(status_code=200)
        message_id = new_message_id()
        sink.record(payload, message_id)
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    async def list_mail(request: Request) -> Response:
        return JSONResponse([mail.summary() for mail in sink.messages])

    async def clear_mail(request: Request) -> Response:
        sink.clear()
        return Response(status_code=204)

    async def not_found(request: Request) -> Response:
        return _errors(404, [{"field": None, "message": "resource not found"}])

    return Starlette(
        routes=[
            Route("/v3/mail/send", send, methods=["POST"]),
            Route("/_sandbox/mail", list_mail, methods=["GET"]),
            Route("/_sandbox/mail", clear_mail, methods=["DELETE"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )
