"""An owner's template that loops forever, recurses or builds a gigabyte fails, quickly.

``check`` reports it (with the file and line) and the daemon fails that one step with the reason;
neither hangs nor runs out of memory. Each hostile template replaces the HTML part of a
customer email; the subject and text stay the built-in ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import drain, one_due_thank_you, write_engine_config

from wcfollowup.config import load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.render.check import check_templates, sample_context
from wcfollowup.render.limits import TIME_BUDGET, TemplateTooCostly
from wcfollowup.render.renderer import Renderer
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

FOOTER = '{% include "en/_footer.html" %}\n'
EVERY_LANGUAGE = ("en", "id", "ms")  # the sandbox's customers get Indonesian or Malay emails
HOSTILE = {
    "huge range": "{% for i in range(10**9) %}x{% endfor %}",
    "nested loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "a gigabyte string": "{{ 'x' * 10**9 }}",
    "a recursive macro": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "exponential macros": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"
    ),
    "a string doubled": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    ),
    "a gigabyte padding": "{{ 'x'|center(10**9) }}{{ '{:>1000000000}'.format(1) }}",
    "a huge output": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
}
# Well above TIME_BUDGET (the time-bound cases), well below what the unbounded renders take.
QUICK = TIME_BUDGET + 8.0

BODY = """\
templates_dir: templates
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 0s
        template: thank-you
"""


def owner_template(tmp_path: Path, text: str, languages: tuple[str, ...] = ("en",)) -> Path:
    """The owner's ``thank-you.html`` in each language; returns the English one's path."""
    for language in reversed(languages):
        path = tmp_path / "templates" / language / "thank-you.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        footer = FOOTER.replace("en/", f"{language}/")
        path.write_text(f"Hi\n{text}\n{footer}", encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_costly_template_fails_quickly(tmp_path: Path, case: str) -> None:
    owner_template(tmp_path, HOSTILE[case])
    renderer = Renderer(tmp_path / "templates")
    started = time.monotonic()
    with pytest.raises(TemplateTooCostly):
        renderer.render("thank-you", "en", sample_context("en"))
    assert time.monotonic() - started < QUICK


def test_check_names_file_line_and_reason(tmp_path: Path, sandbox: Sandbox) -> None:
    path = owner_template(tmp_path, HOSTILE["nested loops"])
    config_path = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    config = load_config(config_path, env=sandbox.config_env())
    started = time.monotonic()
    problems = check_templates(config)
    assert time.monotonic() - started < 3 * QUICK  # the override is used for each language
    assert problems, "a template that never ends passed check"
    assert all(f"{path}:2" in p and "took longer than" in p for p in problems), problems


def test_the_daemon_fails_the_step_with_the_reason_and_goes_on(
    tmp_path: Path, sandbox: Sandbox, clock: FakeClock, make_daemon: Callable[..., Daemon]
) -> None:
    owner_template(tmp_path, HOSTILE["a gigabyte string"], EVERY_LANGUAGE)
    config_path = write_engine_config(tmp_path / "config.yaml", sandbox, BODY)
    daemon = make_daemon(load_config(config_path, env=sandbox.config_env()))
    one_due_thank_you(sandbox, clock, daemon)
    started = time.monotonic()
    drain(daemon)
    assert time.monotonic() - started < QUICK
    [message] = daemon.state.messages()
    assert message.status == "failed"
    assert "template 'thank-you' failed" in message.reason
    assert "1,000,000,000 characters" in message.reason
    assert not sandbox.sink.messages

    # The owner fixes the template (Jinja sees the newer file); the next order's email goes out.
    owner_template(tmp_path, "Thank you for your order {{ order.number }}.", EVERY_LANGUAGE)
    for path in (tmp_path / "templates").glob("*/thank-you.html"):
        os.utime(path, (time.time() + 10, time.time() + 10))
    one_due_thank_you(sandbox, clock, daemon)
    drain(daemon)
    assert [m.status for m in daemon.state.messages()] == ["failed", "sent"]


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    """The bounds leave real templates alone: loops, string building, format, join."""
    owner_template(
        tmp_path,
        "{% for item in order.items %}{{ loop.index }}. {{ item.name|center(40) }}\n{% endfor %}"
        "{{ '%05d'|format(42) }} {{ '{:>8}'.format('ok') }} {{ ['a', 'b']|join(', ') }}"
        "{{ 'ab' * 3 }} {{ 'x' ~ 'y' }} {{ 2 ** 10 }}",
    )
    html = Renderer(tmp_path / "templates").render("thank-you", "en", sample_context("en")).html
    assert "1. " in html and "Batik Tulis Parang Rusak" in html
    assert "00042       ok a, b" in html and "ababab xy 1024" in html
