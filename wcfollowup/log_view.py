"""The message log as a table an owner can read at a glance."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import tzinfo

from rich.console import Console
from rich.table import Table

from wcfollowup.db.state import MessageRow

STATUS_STYLE = {
    "sent": "green",
    "failed": "red",
    "uncertain": "yellow",
    "skipped": "dim",
    "cancelled": "dim",
}


def make_console() -> Console:
    """Piped output (journald, a file, CI) gets full-width rows instead of 80 folded columns."""
    return Console(width=None if sys.stdout.isatty() else 200)


def print_log(rows: Sequence[MessageRow], tz: tzinfo, console: Console | None = None) -> None:
    console = console or make_console()
    table = Table(title=f"message log ({len(rows)} rows, times in {tz})", expand=False)
    for column in (
        "time",
        "order",
        "recipient",
        "sequence",
        "step",
        "status",
        "message id",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            f"#{row.order_number}",
            row.recipient,
            row.sequence,
            row.step,
            f"[{STATUS_STYLE.get(row.status, '')}]{row.status}[/]",
            row.provider_message_id or "",
            row.reason,
        )
    console.print(table)
