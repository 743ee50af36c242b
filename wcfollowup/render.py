"""Render follow-up emails from Jinja2 templates.

The environment is sandboxed (owners may write their own templates) with HTML autoescaping and
strict undefined variables, so a typo fails loudly at ``check`` time instead of sending a blank.
Owner templates in ``templates_dir`` override the built-in ones file by file, shared pieces
included (``<lang>/_footer.html``, ``_shared/layout.html``), so an owner can restyle one email
without copying the rest.

Context mappings are :class:`~wcfollowup.core.context.Section` objects: ``order.items`` means the
order's items (not the dict method), and a typo names the section it was looked up in.
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
    Undefined,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from wcfollowup.core.context import Section, safe_money

# (part, file suffix): every email is a one-line subject, an HTML body and a plain-text body.
PARTS: tuple[tuple[str, str], ...] = (("subject", "subject.txt"), ("html", "html"), ("text", "txt"))
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


class TemplateMissing(Exception):
    """Neither the owner's templates nor the built-in ones have this template."""


class _Environment(SandboxedEnvironment):
    """Sandboxed Jinja where a context section's keys win over dict methods (``order.items``)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Section):
            if attribute in obj:
                return obj[attribute]
            value = super().getattr(obj, attribute)
            if isinstance(value, Undefined):
                return self.undefined(obj=obj, name=attribute, hint=_no_such(obj, attribute))
            return value
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Section) and isinstance(argument, str) and argument not in obj:
            return self.undefined(obj=obj, name=argument, hint=_no_such(obj, argument))
        return super().getitem(obj, argument)


def _no_such(section: Section, name: str) -> str:
    known = ", ".join(sorted(section)) or "nothing"
    return f"'{section.label}' has no attribute '{name}' (it has: {known})"


class Renderer:
    def __init__(self, templates_dir: Path | None = None) -> None:
        loaders: list[BaseLoader] = []
        if templates_dir is not None:
            loaders.append(FileSystemLoader(str(templates_dir)))
        loaders.append(PackageLoader("wcfollowup", "templates"))
        self.env = _Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["money"] = safe_money

    def render(self, template: str, language: str, context: dict[str, Any]) -> RenderedEmail:
        parts = {
            part: self.render_part(template, language, suffix, context) for part, suffix in PARTS
        }
        return RenderedEmail(subject=parts["subject"], html=parts["html"], text=parts["text"])

    def render_part(
        self, template: str, language: str, suffix: str, context: dict[str, Any]
    ) -> str:
        """One part (``suffix`` from :data:`PARTS`); a subject is folded onto one line."""
        name = self.find(template, language, suffix)
        text = self.env.get_template(name).render(context)
        return " ".join(text.split()) if suffix == "subject.txt" else text

    def find(self, template: str, language: str, suffix: str) -> str:
        """The template name that will be used: the language's own, else the English one."""
        for lang in dict.fromkeys((language, FALLBACK_LANGUAGE)):
            name = f"{lang}/{template}.{suffix}"
            try:
                self.env.get_template(name)
            except TemplateNotFound:
                continue
            return name
        raise TemplateMissing(
            f"no template '{template}.{suffix}' for language '{language}' or '{FALLBACK_LANGUAGE}'"
        )
