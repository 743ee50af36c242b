"""What one owner template may cost when it renders: time, size and depth.

Owners write their own templates (``templates_dir``) and the daemon renders them unattended, in a
process that systemd caps at 384 MB. Jinja's sandbox stops a template from reaching Python, but
not from looping for hours (``{% for %}`` inside ``{% for %}``), recursing, or building a
gigabyte string in one operation (``'x' * 10**9``). Such a template must fail *its* step with a
reason the owner can act on (and ``wcfollowup check`` must say so), never stall dispatch or get
the daemon killed and restarted into the same step.

The bounds, per part of an email (subject, HTML, text):

- :data:`TIME_BUDGET` seconds of wall-clock time. A ``sys.settrace`` hook, set only on the
  rendering thread and only while it renders, checks the clock on every line of template code and
  every function call; the sandbox's own hooks check it too.
- :data:`MAX_OUTPUT` characters of output: the template is streamed and stopped there.
- :data:`MAX_VALUE` characters (or items) for any one value a template builds with ``+``, ``*``,
  ``%``, ``**``, ``~``, a string method or a filter that grows its input, checked *before* the
  value is built, so the allocation never happens.
- :data:`MAX_WORK` characters (or items) for everything a template builds in all, so a loop
  cannot pile up many values each under the limit.
- Python's recursion limit for macros that call themselves; reported as a template problem.

Whatever goes over raises :class:`TemplateTooCostly`, a Jinja ``TemplateRuntimeError``: the
dispatcher fails the step with the message and ``check`` reports it with the template's line.
"""

from __future__ import annotations

import re
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from types import CodeType, FrameType
from typing import Any, Final

from jinja2 import TemplateRuntimeError

TIME_BUDGET: Final = 2.0  # seconds; a real email renders in milliseconds
MAX_OUTPUT: Final = 1_000_000  # characters per part; Gmail clips a message at about 100 KB
MAX_VALUE: Final = 1_000_000  # characters or items in any one value a template builds
MAX_WORK: Final = 10_000_000  # characters or items built in all
MAX_INT_BITS: Final = 4096  # ``**`` results; larger integers take long to compute and print

_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")
# str methods whose result can be much larger than the string (all other methods are not).
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class TemplateTooCostly(TemplateRuntimeError):
    """A template went over a render bound; the message says which one."""


@dataclass
class Budget:
    """One part's allowance; :func:`bounded` makes it current for the rendering thread."""

    deadline: float
    work: int = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateTooCostly(
                f"rendering took longer than {TIME_BUDGET:g} s; a loop runs too long or a "
                "macro calls itself"
            )

    def spend(self, size: int) -> None:
        self.work += size
        if self.work > MAX_WORK:
            raise TemplateTooCostly(
                f"the template built more than {MAX_WORK:,} characters or items in all"
            )
        self.check_time()


_local = threading.local()


def current() -> Budget | None:
    """The budget of the render running on this thread, if one is."""
    found: Budget | None = getattr(_local, "budget", None)
    return found


@contextmanager
def bounded() -> Iterator[Budget]:
    """Render the template code run inside this block under a fresh budget."""
    budget = Budget(deadline=time.monotonic() + TIME_BUDGET)
    outer = current()
    previous = sys.gettrace()
    _local.budget = budget
    sys.settrace(_trace)
    try:
        yield budget
    finally:
        sys.settrace(previous)
        _local.budget = outer


def _is_template(code: CodeType) -> bool:
    """Jinja compiles each template with the template's own file name (or ``<template>``)."""
    return not code.co_filename.endswith(".py")


def _trace(frame: FrameType, event: str, arg: Any) -> Any:
    """Check the clock on every call, and on every line of template code."""
    budget = current()
    if budget is None:
        return None
    budget.check_time()
    return _trace if _is_template(frame.f_code) else None


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict | set) else 0


def spend(result: Any) -> Any:
    """Count what an operation built against the budget; returns ``result``."""
    budget = current()
    if budget is not None:
        budget.spend(_size(result))
    return result


def check_size(size: int, what: str) -> None:
    """Refuse to build a value of ``size`` characters or items if that is over the limit.

    Always, not only while a budget is current: Jinja folds constant expressions when it
    compiles a template (``{{ 'x'|center(10**9) }}``), and a refused fold is simply left to run
    (and be refused again) at render time.
    """
    if size > MAX_VALUE:
        raise TemplateTooCostly(
            f"{what} would build {size:,} characters or items; a template may build at "
            f"most {MAX_VALUE:,} at once"
        )


def check_printf(fmt: str, what: str = "a '%' format") -> None:
    """``'%9999999d' % 1`` builds its result in one step: bound every width and precision."""
    for match in _PRINTF.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise TemplateTooCostly(f"{what} may not take its width from an argument ('*')")
            if number is not None:
                check_size(_as_int(number), what)


def check_format(fmt: str) -> None:
    """``'{:>9999999}'.format(1)`` likewise; a width may not come from another field."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateTooCostly("a format width may not come from another field")
        for number in _NUMBER.findall(spec):
            check_size(_as_int(number), "a format width")


def _as_int(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else MAX_VALUE + 1


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``+``, ``*``, ``%`` and ``**`` whose result would be too large to build."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                check_size(len(seq) * max(times, 0), "'*'")
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            check_size(len(left) + len(right), "'+'")
    elif operator == "%":
        if isinstance(left, str):
            check_printf(left)
    elif operator == "**":
        _check_power(left, right)


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) < 2 or exponent < 1:
        return
    if exponent * abs(base).bit_length() > MAX_INT_BITS:
        raise TemplateTooCostly(
            f"'**' would build a number of more than {MAX_INT_BITS} bits ({base} ** {exponent})"
        )


def check_call(func: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Refuse str methods whose result would be too large (``'x'.ljust(10**9)``); returns the
    arguments to call with (a ``join``'s parts, measured, as a list)."""
    owner = getattr(func, "__self__", None)
    if not isinstance(owner, str):
        return args
    name = getattr(func, "__name__", "")
    if name in _WIDTH_METHODS and args and isinstance(args[0], int):
        check_size(args[0], f"str.{name}")
    elif name == "expandtabs":
        tabsize = args[0] if args and isinstance(args[0], int) else 8
        check_size(len(owner) + owner.count("\t") * max(tabsize, 0), "str.expandtabs")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name in ("format", "format_map"):
        check_format(owner)
    elif name == "join" and len(args) == 1:
        return (check_join(args[0], owner, "str.join"),)
    return args


def _check_replace(text: Any, old: Any, new: Any) -> None:
    strings = isinstance(text, str) and isinstance(old, str) and isinstance(new, str)
    if strings and len(new) > len(old):
        found = text.count(old) if old else len(text) + 1
        check_size(len(text) + found * (len(new) - len(old)), "replace")


def check_join(parts: Iterable[Any], separator: str, what: str) -> list[Any]:
    """The parts of a join as a list, after checking the joined length."""
    items = list(parts)
    size = sum(len(p) if isinstance(p, str) else 0 for p in items)
    check_size(size + len(separator) * max(len(items) - 1, 0), what)
    return items


# --- filters -------------------------------------------------------------------------------------


def _pre_center(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = args[1] if len(args) > 1 else kwargs.get("width", 80)
    if isinstance(width, int):
        check_size(width, "the center filter")


def _pre_indent(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = args[0] if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 4)
    each = width if isinstance(width, int) else len(str(width))
    lines = str(text).count("\n") + 1
    check_size(len(str(text)) + lines * max(each, 0), "the indent filter")


def _pre_replace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # (eval_ctx, s, old, new, count)
    if len(args) >= 4:
        _check_replace(str(args[1]), args[2], args[3])


def _pre_format(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args and isinstance(args[0], str):
        check_printf(args[0], "the format filter")


_PRE_CHECKS: Final[dict[str, Callable[[tuple[Any, ...], dict[str, Any]], None]]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "replace": _pre_replace,
    "format": _pre_format,
}


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its growth checked before (where it can grow a lot) and counted after.

    ``functools.wraps`` keeps Jinja's ``pass_context``/``pass_eval_ctx`` marks.
    """
    pre = _PRE_CHECKS.get(name)

    @wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if name == "join":
            args = _join_args(args, kwargs)
        elif pre is not None:
            pre(args, kwargs)
        return spend(func(*args, **kwargs))

    return checked


def _join_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    # (eval_ctx, value, d="", attribute=None): materialise the value once to measure it.
    if len(args) < 2 or kwargs.get("attribute") is not None or len(args) > 3:
        return args
    separator = args[2] if len(args) > 2 else kwargs.get("d", "")
    items = check_join(args[1], str(separator), "the join filter")
    return (args[0], items, *args[2:])
