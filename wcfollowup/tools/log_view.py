"""The message log as an owner reads it (a table) or a script does (JSON lines, CSV)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wcfollowup.db.state import MessageRow
from wcfollowup.tools.inert import csv_cell, for_terminal, json_text

STATUS_STYLE = {
    "sent": "green",
    "failed": "red",
    "uncertain": "yellow",
    "skipped": "dim",
    "cancelled": "dim",
    "redeemed": "cyan",
    "answered": "cyan",
}

# The rows a table shows unless ``--limit`` asks for another number: drawing one takes about
# 1 ms, so 500 keep ``log`` under a second however long the log is.
TABLE_ROWS = 500

CSV_COLUMNS = (
    "id",
    "at",
    "order_id",
    "order_number",
    "recipient",
    "sequence",
    "step",
    "status",
    "provider_message_id",
    "reason",
)


def make_console() -> Console:
    """Piped output (journald, a file, CI) gets full-width rows instead of 80 folded columns."""
    return Console(width=None if sys.stdout.isatty() else 200)


def _local(row: MessageRow, tz: tzinfo) -> str:
    return row.at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def shown(text: str) -> str:
    """Text from customers, the store or a provider, safe to print: no control character
    reaches the terminal and no ``[...]`` is read as Rich markup."""
    return escape(for_terminal(text))


def _status(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{shown(status)}[/]" if style else shown(status)


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
        # Numbers, addresses and reasons come from orders, comments and providers.
        table.add_row(
            _local(row, tz),
            f"#{shown(row.order_number)}",
            shown(row.recipient),
            shown(row.sequence),
            shown(row.step),
            _status(row.status),
            shown(row.provider_message_id or ""),
            shown(row.reason),
        )
    console.print(table)


def print_more_note(shown_rows: int, total: int, console: Console | None = None) -> None:
    """Say that older rows were left out, and how to see them."""
    if total <= shown_rows:
        return
    console = console or make_console()
    console.print(
        f"Showing the newest {shown_rows} of {total} rows. More: --limit N, a filter "
        "(--since, --status, --order ...), or --json / --csv for every row.",
        highlight=False,
    )


def print_lines(rows: Sequence[MessageRow], tz: tzinfo, console: Console | None = None) -> None:
    """One line per message, for ``log --follow``: a table cannot grow."""
    console = console or make_console()
    for row in rows:
        console.print(
            f"{_local(row, tz)}  #{shown(row.order_number)}  {shown(row.recipient)}  "
            f"{shown(row.sequence)}/{shown(row.step)}  {_status(row.status)}  "
            f"{shown(row.reason)}",
            highlight=False,
        )


def as_record(row: MessageRow, tz: tzinfo) -> dict[str, Any]:
    """A row for scripts: the time in store time *with* its offset, so it is unambiguous."""
    return {
        "id": row.id,
        "at": row.at.astimezone(tz).isoformat(),
        "order_id": row.order_id,
        "order_number": row.order_number,
        "recipient": row.recipient,
        "sequence": row.sequence,
        "step": row.step,
        "status": row.status,
        "provider_message_id": row.provider_message_id,
        "reason": row.reason,
    }


def write_json_lines(rows: Sequence[MessageRow], tz: tzinfo, out: TextIO) -> None:
    """The exact rows (JSON's escapes keep every character without printing it raw)."""
    for row in rows:
        out.write(json_text(as_record(row, tz)) + "\n")
    out.flush()


def write_csv(rows: Sequence[MessageRow], tz: tzinfo, out: TextIO, *, header: bool = True) -> None:
    """One line per row for spreadsheets: no cell is a formula and none holds a control
    character (``--json`` is the exact export)."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in as_record(row, tz).items()})
    out.flush()
