"""The pages a customer sees after clicking a link in our email, in English, Indonesian and Malay.

One small template renders every page, with Jinja2 autoescaping: the store name and everything
else we show is escaped. Forms post to *relative* URLs because the daemon usually sits behind the
owner's reverse proxy under a prefix (``https://shop.example/wcf``) that it cannot see.

The inline style and the auto-submit script are fixed strings; their SHA-256 hashes go into the
Content-Security-Policy, so no other script or style can ever run on these pages.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Literal

from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup

LANGUAGES = ("en", "id", "ms")
COMMENT_MAX_CHARS = 2000

_STYLE = (
    "body{margin:0;font:17px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "background:#f6f5f2;color:#222}"
    "main{max-width:34rem;margin:0 auto;padding:1.5rem 1.25rem}"
    ".store{font-weight:600;color:#555;margin:0 0 1.5rem}"
    "h1{font-size:1.4rem;margin:0 0 .75rem}section+section{margin-top:2rem}"
    "textarea{width:100%;box-sizing:border-box;min-height:7rem;font:inherit;padding:.5rem}"
    "button{font:inherit;margin-top:.75rem;padding:.7rem 1.4rem;border:0;border-radius:.4rem;"
    "background:#1f6f5c;color:#fff;cursor:pointer}"
    "label{display:block;margin:1.25rem 0 .4rem}"
)
_SCRIPT = 'document.getElementById("go").submit();'


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{ title }} · {{ store }}</title>
<style>{{ style }}</style>
</head>
<body>
<main>
<p class="store">{{ store }}</p>
{% for section in sections %}
<section lang="{{ section.lang }}">
<h1>{{ section.heading }}</h1>
{% for line in section.lines %}<p>{{ line }}</p>
{% endfor %}</section>
{% endfor %}
{% if form == "autosubmit" %}
<form id="go" method="post">
<noscript><button type="submit">{{ t.send_rating }}</button></noscript>
</form>
<script>{{ script }}</script>
{% elif form == "comment" %}
<form method="post" action="{{ action }}">
<label for="comment">{{ t.comment_label }}</label>
<textarea id="comment" name="comment" maxlength="{{ max_chars }}"></textarea>
<button type="submit">{{ t.comment_send }}</button>
</form>
{% elif form == "unsubscribe" %}
<form method="post">
<button type="submit">{{ t.unsubscribe_button }}</button>
</form>
{% endif %}
</main>
</body>
</html>
"""

_env = Environment(
    loader=DictLoader({"page.html": _TEMPLATE}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Texts:
    survey_title: str
    you_rated: str
    send_rating: str
    comment_label: str
    comment_send: str
    already_rated: str
    comment_thanks: str
    comment_already: str
    thanks: str
    unsubscribe_title: str
    unsubscribe_question: str
    unsubscribe_note: str
    unsubscribe_button: str
    unsubscribed_title: str
    unsubscribed_body: str
    bad_title: str
    bad_body: str
    expired_title: str
    expired_body: str
    error_title: str
    error_body: str


TEXTS: dict[str, Texts] = {
    "en": Texts(
        survey_title="Thank you!",
        you_rated="You rated {score}/5 — thank you!",
        send_rating="Send my rating",
        comment_label="Anything you would like to tell us? (optional)",
        comment_send="Send",
        already_rated="We already have your answer ({score}/5), thank you.",
        comment_thanks="Thank you for your comment. We read every one.",
        comment_already="We already have your comment, thank you.",
        thanks="Thank you!",
        unsubscribe_title="Unsubscribe",
        unsubscribe_question="Stop follow-up emails from {store} to this address?",
        unsubscribe_note="Order confirmations and receipts from the shop are not affected.",
        unsubscribe_button="Unsubscribe",
        unsubscribed_title="You are unsubscribed",
        unsubscribed_body=(
            "You will not receive any more follow-up emails from {store} at this address."
        ),
        bad_title="This link is not valid",
        bad_body=(
            "It may not have been copied completely. Please open the link from the email "
            "again, or reply to the email and we will help."
        ),
        expired_title="This link has expired",
        expired_body=(
            "Thank you for clicking. This link is no longer active; if you need help, "
            "please reply to our email."
        ),
        error_title="Something went wrong",
        error_body="We could not save this just now. Please try again in a few minutes.",
    ),
    "id": Texts(
        survey_title="Terima kasih!",
        you_rated="Anda memberi nilai {score}/5 — terima kasih!",
        send_rating="Kirim penilaian saya",
        comment_label="Ada yang ingin Anda sampaikan kepada kami? (opsional)",
        comment_send="Kirim",
        already_rated="Kami sudah menerima jawaban Anda ({score}/5), terima kasih.",
        comment_thanks="Terima kasih atas komentar Anda. Kami membaca setiap komentar.",
        comment_already="Kami sudah menerima komentar Anda, terima kasih.",
        thanks="Terima kasih!",
        unsubscribe_title="Berhenti berlangganan",
        unsubscribe_question="Hentikan email tindak lanjut dari {store} ke alamat ini?",
        unsubscribe_note="Email konfirmasi pesanan dan tanda terima dari toko tidak terpengaruh.",
        unsubscribe_button="Berhenti berlangganan",
        unsubscribed_title="Anda telah berhenti berlangganan",
        unsubscribed_body=(
            "Anda tidak akan menerima email tindak lanjut lagi dari {store} di alamat ini."
        ),
        bad_title="Tautan ini tidak valid",
        bad_body=(
            "Mungkin tautannya tidak tersalin lengkap. Silakan buka lagi tautan dari email, "
            "atau balas email tersebut dan kami akan membantu."
        ),
        expired_title="Tautan ini sudah kedaluwarsa",
        expired_body=(
            "Terima kasih sudah mengklik. Tautan ini sudah tidak aktif; jika perlu bantuan, "
            "silakan balas email kami."
        ),
        error_title="Terjadi kesalahan",
        error_body="Kami belum dapat menyimpannya. Silakan coba lagi dalam beberapa menit.",
    ),
    "ms": Texts(
        survey_title="Terima kasih!",
        you_rated="Anda memberi penilaian {score}/5 — terima kasih!",
        send_rating="Hantar penilaian saya",
        comment_label="Ada apa-apa yang ingin anda beritahu kami? (pilihan)",
        comment_send="Hantar",
        already_rated="Kami sudah menerima jawapan anda ({score}/5), terima kasih.",
        comment_thanks="Terima kasih atas komen anda. Kami membaca setiap komen.",
        comment_already="Kami sudah menerima komen anda, terima kasih.",
        thanks="Terima kasih!",
        unsubscribe_title="Berhenti melanggan",
        unsubscribe_question="Hentikan e-mel susulan daripada {store} ke alamat ini?",
        unsubscribe_note="E-mel pengesahan pesanan dan resit daripada kedai tidak terjejas.",
        unsubscribe_button="Berhenti melanggan",
        unsubscribed_title="Anda telah berhenti melanggan",
        unsubscribed_body=(
            "Anda tidak akan menerima e-mel susulan lagi daripada {store} di alamat ini."
        ),
        bad_title="Pautan ini tidak sah",
        bad_body=(
            "Mungkin pautan tidak disalin dengan lengkap. Sila buka semula pautan daripada "
            "e-mel, atau balas e-mel tersebut dan kami akan membantu."
        ),
        expired_title="Pautan ini telah tamat tempoh",
        expired_body=(
            "Terima kasih kerana mengklik. Pautan ini tidak lagi aktif; jika anda perlukan "
            "bantuan, sila balas e-mel kami."
        ),
        error_title="Sesuatu tidak kena",
        error_body="Kami tidak dapat menyimpannya sekarang. Sila cuba lagi dalam beberapa minit.",
    ),
}


def texts_for(language: str) -> tuple[str, Texts]:
    """A claim's language comes from our own token, but fall back to English for anything odd."""
    lang = language if language in TEXTS else "en"
    return lang, TEXTS[lang]


@dataclass(frozen=True)
class _Section:
    lang: str
    heading: str
    lines: tuple[str, ...] = field(default=())


_Form = Literal["autosubmit", "comment", "unsubscribe"] | None


def _render(
    store: str,
    lang: str,
    sections: list[_Section],
    *,
    form: _Form = None,
    action: str = "",
) -> str:
    return _env.get_template("page.html").render(
        lang=lang,
        title=sections[0].heading,
        store=store,
        sections=sections,
        form=form,
        action=action,
        t=TEXTS[lang],
        max_chars=COMMENT_MAX_CHARS,
        style=Markup(_STYLE),
        script=Markup(_SCRIPT),
    )


def survey_confirm(store: str, language: str, score: int) -> str:
    """Shown on GET: submits itself, so a person records the score and a link scanner does not."""
    lang, t = texts_for(language)
    section = _Section(lang, t.survey_title, (t.you_rated.format(score=score),))
    return _render(store, lang, [section], form="autosubmit")


def survey_recorded(store: str, language: str, score: int, comment_action: str) -> str:
    lang, t = texts_for(language)
    section = _Section(lang, t.survey_title, (t.you_rated.format(score=score),))
    return _render(store, lang, [section], form="comment", action=comment_action)


def survey_already(store: str, language: str, score: int) -> str:
    lang, t = texts_for(language)
    section = _Section(lang, t.survey_title, (t.already_rated.format(score=score),))
    return _render(store, lang, [section])


def comment_done(store: str, language: str, *, stored: bool, empty: bool = False) -> str:
    lang, t = texts_for(language)
    line = t.thanks if empty else t.comment_thanks if stored else t.comment_already
    return _render(store, lang, [_Section(lang, t.survey_title, (line,))])


def unsubscribe_confirm(store: str, language: str) -> str:
    lang, t = texts_for(language)
    lines = (t.unsubscribe_question.format(store=store), t.unsubscribe_note)
    return _render(store, lang, [_Section(lang, t.unsubscribe_title, lines)], form="unsubscribe")


def unsubscribed(store: str, language: str) -> str:
    lang, t = texts_for(language)
    line = t.unsubscribed_body.format(store=store)
    return _render(store, lang, [_Section(lang, t.unsubscribed_title, (line,))])


def bad_link(store: str, *, expired: bool) -> str:
    """We cannot trust the language in a bad token, so the page speaks all three."""
    sections = [
        _Section(lang, t.expired_title, (t.expired_body,))
        if expired
        else _Section(lang, t.bad_title, (t.bad_body,))
        for lang, t in TEXTS.items()
    ]
    return _render(store, "en", sections)


def server_error(store: str) -> str:
    sections = [_Section(lang, t.error_title, (t.error_body,)) for lang, t in TEXTS.items()]
    return _render(store, "en", sections)
