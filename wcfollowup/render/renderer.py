"""Render follow-up emails from Jinja2 templates.

The environment is sandboxed (owners may write their own templates) with HTML autoescaping and
strict undefined variables, so a typo fails loudly at ``check`` time instead of sending a blank.
Owner templates in ``templates_dir`` override the built-in ones file by file, shared pieces
included (``<lang>/_footer.html``, ``_shared/layout.html``), so an owner can restyle one email
without copying the rest.

Context mappings are :class:`~wcfollowup.core.context.Section` objects: ``order.items`` means the
order's items (not the dict method), and a typo names the section it was looked up in.

Every render is bounded in time, size and depth (:mod:`wcfollowup.render.limits`): an owner's
template that loops forever or builds a gigabyte fails its step with a reason instead. The
sandbox is the immutable one, so a template cannot grow a list or dict in place either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    TemplateRuntimeError,
    Undefined,
    nodes,
    select_autoescape,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from wcfollowup.core.context import Section, safe_money
from wcfollowup.render import limits

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


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``a ~ b`` built through :meth:`_Environment.bounded_join`
    so its length is checked before the string is (``~`` is not an operator the sandbox can
    intercept)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # The join Jinja itself would use (see CodeGenerator.visit_Concat), passed in.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.bounded_join({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    limits.check_size(len(numbers), "range")
    return numbers


class _Environment(ImmutableSandboxedEnvironment):
    """Sandboxed Jinja where a context section's keys win over dict methods (``order.items``),
    and every operation that can build a large value is checked first (render_limits)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # paragraphs of filler on demand: no email needs it

    def bound_filters(self) -> None:
        """Wrap every filter (call after adding our own) so what it builds is counted."""
        self.filters = {
            name: limits.bounded_filter(name, func) for name, func in self.filters.items()
        }

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return limits.spend(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        args = limits.check_call(obj, args)
        return limits.spend(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's own ``str.format``, for a format string whose widths are bounded."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            limits.check_format(value.__self__)
        return wrapped

    def concat(self, parts: Iterable[str]) -> str:
        """Join a block's output (macros, ``{% set %}`` blocks, filter blocks) after a check."""
        return str(limits.spend("".join(limits.check_join(parts, "", "a block"))))

    def bounded_join(self, join: Callable[[Iterable[Any]], str], parts: Iterable[Any]) -> str:
        return str(limits.spend(join(limits.check_join(parts, "", "'~'"))))

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
        loaders.append(PackageLoader("wcfollowup", "render/templates"))
        self.env = _Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["money"] = safe_money
        self.env.bound_filters()

    def render(self, template: str, language: str, context: dict[str, Any]) -> RenderedEmail:
        parts = {
            part: self.render_part(template, language, suffix, context) for part, suffix in PARTS
        }
        return RenderedEmail(subject=parts["subject"], html=parts["html"], text=parts["text"])

    def render_part(
        self, template: str, language: str, suffix: str, context: dict[str, Any]
    ) -> str:
        """One part (``suffix`` from :data:`PARTS`); a subject is folded onto one line.

        Raises :class:`~wcfollowup.render.limits.TemplateTooCostly` (a ``TemplateError``) when
        the template goes over a bound, with the template's frames in its traceback.
        """
        name = self.find(template, language, suffix)
        text = self._stream(self.env.get_template(name).generate(context))
        return " ".join(text.split()) if suffix == "subject.txt" else text

    @staticmethod
    def _stream(chunks: Iterable[str]) -> str:
        """Collect the output under a fresh budget, stopping at :data:`MAX_OUTPUT`."""
        out: list[str] = []
        size = 0
        with limits.bounded():
            try:
                for chunk in chunks:
                    size += len(chunk)
                    if size > limits.MAX_OUTPUT:
                        raise limits.TemplateTooCostly(
                            f"the template writes more than {limits.MAX_OUTPUT:,} characters"
                        )
                    out.append(chunk)
            except RecursionError as exc:
                raise limits.TemplateTooCostly(
                    "a macro calls itself too deeply (recursion)"
                ).with_traceback(exc.__traceback__) from None
            except MemoryError as exc:
                raise limits.TemplateTooCostly("the template ran out of memory").with_traceback(
                    exc.__traceback__
                ) from None
            except OverflowError as exc:
                raise limits.TemplateTooCostly(
                    f"a number in the template is too large: {exc}"
                ).with_traceback(exc.__traceback__) from None
            except ArithmeticError as exc:  # 1/0: the template's fault, like any other
                raise TemplateRuntimeError(str(exc)).with_traceback(exc.__traceback__) from None
        return "".join(out)

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
