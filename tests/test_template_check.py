"""``check_templates``: every template a config uses, rendered against the sample order."""

from __future__ import annotations

from pathlib import Path

import pytest

from wcfollowup.config import Config, load_config
from wcfollowup.render.check import check_templates
from wcfollowup.sandbox.runner import sandbox_config_yaml

ENV = {"WC_CONSUMER_KEY": "ck_test", "WC_CONSUMER_SECRET": "cs_test", "SENDGRID_API_KEY": "SG.x"}

EVERY_KIND = """\
sequences:
  - name: after-purchase
    steps:
      - name: thanks
        template: thank-you
      - name: rate-us
        kind: survey
        after: 3d
      - name: low-score
        to: owner
        template: low-score-alert
      - name: reviews
        kind: review
        after: 7d
      - name: gift
        kind: coupon
        after: 20d
        coupon: {amount: 50000, discount_type: fixed_cart, minimum_spend: 200000}
      - name: miss-you
        template: win-back
        after: 60d
"""


def make_config(tmp_path: Path, sequences: str, *, language: str = "id", extra: str = "") -> Config:
    path = tmp_path / "config.yaml"
    head = sandbox_config_yaml(
        "http://127.0.0.1:9", "http://127.0.0.1:9", tmp_path / "state.db", language=language
    )
    path.write_text(head + extra + sequences, encoding="utf-8")
    return load_config(path, env=ENV)


def override(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class TestCheckTemplates:
    @pytest.mark.parametrize("language", ["en", "id", "ms"])
    def test_built_in_templates_for_every_kind_are_fine(
        self, tmp_path: Path, language: str
    ) -> None:
        assert check_templates(make_config(tmp_path, EVERY_KIND, language=language)) == []

    def test_typo_in_an_override_names_file_and_line(self, tmp_path: Path) -> None:
        bad = override(
            tmp_path,
            "id/thank-you.html",
            "Halo {{ customer.first_name }}\n\nTotal: {{ order.totl }}\n"
            '{% include "id/_footer.html" %}\n',
        )
        config = make_config(tmp_path, EVERY_KIND, extra="templates_dir: templates\n")
        problems = check_templates(config)
        assert len(problems) == 1, problems
        assert problems[0].startswith("template 'thank-you' (id, html): 'order' has no attribute")
        assert "'totl'" in problems[0]
        assert problems[0].endswith(f"{bad}:3")

    def test_syntax_error_names_file_and_line(self, tmp_path: Path) -> None:
        bad = override(tmp_path, "en/win-back.txt", "Hi\n{% if customer.first_name %}\nno end\n")
        config = make_config(
            tmp_path, EVERY_KIND, language="en", extra="templates_dir: templates\n"
        )
        problems = check_templates(config)
        assert problems, "an unclosed {% if %} must be reported"
        assert all("template 'win-back'" in p and "(" in p for p in problems)
        assert any(p.startswith("template 'win-back' (en, text): ") for p in problems)
        assert any(f"{bad}:" in p for p in problems)

    def test_error_in_an_included_footer_points_at_the_footer(self, tmp_path: Path) -> None:
        footer = override(
            tmp_path, "ms/_footer.txt", "--\n{{ store.nama }}\n{{ unsubscribe_url }}\n"
        )
        config = make_config(tmp_path, EVERY_KIND, extra="templates_dir: templates\n")
        problems = check_templates(config)
        assert problems
        assert all("(ms, text)" in p for p in problems)
        assert all(p.endswith(f"{footer}:2") for p in problems)
        assert any("'store' has no attribute 'nama'" in p for p in problems)

    def test_missing_template_is_reported_once_with_who_uses_it(self, tmp_path: Path) -> None:
        sequences = """\
sequences:
  - name: welcome
    steps:
      - name: hello
        template: thank-yuo
      - name: hello-again
        after: 1d
        template: thank-yuo
"""
        problems = check_templates(make_config(tmp_path, sequences))
        assert len(problems) == 1, problems
        assert "template 'thank-yuo' does not exist" in problems[0]
        assert "step 'hello' of sequence 'welcome'" in problems[0]
        assert "step 'hello-again'" in problems[0]
        assert "thank-you" in problems[0]  # the built-in names, to spot the typo

    def test_override_without_unsubscribe_link_is_reported(self, tmp_path: Path) -> None:
        override(tmp_path, "en/thank-you.txt", "Thanks {{ customer.first_name }}!\n")
        config = make_config(
            tmp_path, EVERY_KIND, language="en", extra="templates_dir: templates\n"
        )
        problems = check_templates(config)
        # en is used directly, and as the fallback for ms/id only where they have no own file.
        assert problems == [
            "template 'thank-you' (en, text): has no unsubscribe link; every customer email "
            'must show {{ unsubscribe_url }} (e.g. {% include "en/_footer.txt" %})'
        ]

    def test_languages_of_mapped_countries_are_checked(self, tmp_path: Path) -> None:
        """A store in English with Malaysian customers must have working Malay templates."""
        override(tmp_path, "ms/survey.html", "{{ survey.link }}{{ unsubscribe_url }}")
        config = make_config(
            tmp_path, EVERY_KIND, language="en", extra="templates_dir: templates\n"
        )
        problems = check_templates(config)
        assert len(problems) == 1, problems
        assert problems[0].startswith("template 'survey' (ms, html): 'survey' has no attribute")

    def test_owner_template_is_only_checked_in_the_store_language(self, tmp_path: Path) -> None:
        override(tmp_path, "ms/low-score-alert.txt", "{{ alert.scor }}")
        config = make_config(
            tmp_path, EVERY_KIND, language="id", extra="templates_dir: templates\n"
        )
        assert check_templates(config) == []
        config = make_config(
            tmp_path, EVERY_KIND, language="ms", extra="templates_dir: templates\n"
        )
        assert any("(ms, text)" in p and "'scor'" in p for p in check_templates(config))

    def test_blank_subject_is_reported(self, tmp_path: Path) -> None:
        override(tmp_path, "id/win-back.subject.txt", "{% if false %}x{% endif %}\n")
        config = make_config(tmp_path, EVERY_KIND, extra="templates_dir: templates\n")
        assert check_templates(config) == [
            "template 'win-back' (id, subject): the subject is empty"
        ]
