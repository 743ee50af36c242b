"""``wcfollowup preview``: write each rendered email's HTML to a file, its text to the screen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from rich.markup import escape

from wcfollowup.tools.inert import for_terminal


class Previewed(Protocol):
    """What ``engine.preview.PreviewedEmail`` carries (kept structural: that module is heavy)."""

    @property
    def sequence(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def note(self) -> str: ...


def html_path(
    order_id: int, email: Previewed, chosen: Path | None, count: int, *, qualify: bool = False
) -> Path:
    """``preview-ORDER-STEP.html`` by default; ``--html-out`` as given for one email, and for
    several the step name goes before the suffix so no preview overwrites another. ``qualify``
    adds the sequence when two sequences have a step of the same name."""
    name = f"{email.sequence}-{email.step}" if qualify else email.step
    if chosen is None:
        return Path(f"preview-{order_id}-{name}.html")
    if count == 1:
        return chosen
    return chosen.with_name(f"{chosen.stem}-{name}{chosen.suffix}")


def write_previews(
    order_id: int, emails: Sequence[Previewed], html_out: Path | None, console: Any
) -> list[Path]:
    written: list[Path] = []
    names = [email.step for email in emails]
    for email in emails:
        # The order's names, addresses and notes are the customer's: shown inert.
        console.rule(escape(for_terminal(f"{email.sequence} / {email.step} ({email.kind})")))
        console.print(f"To: {for_terminal(email.recipient)}", markup=False)
        if email.note:
            console.print(f"Note: {for_terminal(email.note)}", markup=False, style="yellow")
        if not email.html and not email.text:
            continue
        console.print(f"Subject: {for_terminal(email.subject)}", markup=False)
        qualify = names.count(email.step) > 1
        path = html_path(order_id, email, html_out, len(emails), qualify=qualify)
        path.write_text(email.html, encoding="utf-8")
        written.append(path)
        console.print(f"HTML: {path}", markup=False)
        console.print()
        console.print(for_terminal(email.text, multiline=True), markup=False, highlight=False)
    return written
