"""Render follow-up emails from Jinja2 templates.

The environment is sandboxed (owners may write their own templates) with HTML autoescaping and
strict undefined variables, so a typo fails loudly at ``check`` time instead of sending a blank.
Owner templates in ``templates_dir`` override the built-in ones file by file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from wcfollowup.core.money import format_money


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


class TemplateMissing(Exception):
    pass


class Renderer:
    def __init__(self, templates_dir: Path | None = None) -> None:
        loaders: list[BaseLoader] = []
        if templates_dir is not None:
            loaders.append(FileSystemLoader(str(templates_dir)))
        loaders.append(PackageLoader("wcfollowup", "templates"))
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["money"] = format_money

    def render(self, template: str, language: str, context: dict[str, Any]) -> RenderedEmail:
        parts = {}
        for part, suffix in (("subject", "subject.txt"), ("html", "html"), ("text", "txt")):
            name = self._find(template, language, suffix)
            parts[part] = self.env.get_template(name).render(context)
        subject = " ".join(parts["subject"].split())
        return RenderedEmail(subject=subject, html=parts["html"], text=parts["text"])

    def _find(self, template: str, language: str, suffix: str) -> str:
        for lang in (language, "en"):
            name = f"{lang}/{template}.{suffix}"
            try:
                self.env.get_template(name)
            except TemplateNotFound:
                continue
            return name
        raise TemplateMissing(
            f"no template '{template}.{suffix}' for language '{language}' or 'en'"
        )
