"""Commands that report what happened: ``log`` (every message, filtered, or followed live)
and ``stats`` (what the follow-ups achieved). The queries and the printing live in
``tools.log_query``, ``tools.log_view`` and ``tools.stats``; this module reads the options.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wcfollowup.cli.shared import (
    ConfigOption,
    JsonOption,
    SinceHelp,
    current_time,
    load_or_exit,
    open_state,
    store_failed,
    time_point,
)

if TYPE_CHECKING:
    from wcfollowup.db.state import MessageRow


def show_log(
    config: ConfigOption = Path("config.yaml"),
    order: Annotated[int | None, typer.Option(help="Only this order id.")] = None,
    email: Annotated[str | None, typer.Option(help="Only messages to this address.")] = None,
    sequence: Annotated[str | None, typer.Option(help="Only this sequence.")] = None,
    step: Annotated[str | None, typer.Option(help="Only this step.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only this status: sent, failed, skipped, cancelled, uncertain, retried, "
            "redeemed, answered."
        ),
    ] = None,
    since: Annotated[str | None, typer.Option(help=SinceHelp)] = None,
    until: Annotated[
        str | None, typer.Option(help="A date in store time (that whole day is included).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the latest this many rows.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new rows until Ctrl-C.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
) -> None:
    """Show the message log: what was sent, to whom, for which order, and why not.

    Example: wcfollowup log --config /etc/wcfollowup/config.yaml --status failed --since 7d
    """
    from wcfollowup.tools.log_query import (
        LogFilter,
        count_log,
        follow_log,
        read_log,
        redact_reasons,
    )
    from wcfollowup.tools.log_view import (
        TABLE_ROWS,
        make_console,
        print_lines,
        print_log,
        print_more_note,
        write_csv,
    )
    from wcfollowup.tools.log_view import write_json_lines as write_json

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    cfg = load_or_exit(config)
    now = current_time()
    where = LogFilter(
        order=order,
        email=email,
        sequence=sequence,
        step=step,
        status=status,
        since=time_point(since, now, cfg),
        until=time_point(until, now, cfg, end=True),
    )
    tz = cfg.store.tz
    state = open_state(cfg)
    try:
        # A table is drawn at about 1 ms a row: unasked, it shows the newest page and says
        # how to see more, so the command answers in a second on a state of any size.
        paged = limit is None and not (as_json or as_csv or follow)
        rows = redact_reasons(read_log(state.engine, where, limit=TABLE_ROWS if paged else limit))
        if as_json:
            write_json(rows, tz, sys.stdout)
        elif as_csv:
            write_csv(rows, tz, sys.stdout)
        elif follow:
            print_lines(rows, tz)
        else:
            print_log(rows, tz)
            if paged and len(rows) == TABLE_ROWS:
                print_more_note(len(rows), count_log(state.engine, where))
        if not follow:
            return
        console = make_console()

        def emit(fresh: Sequence[MessageRow]) -> None:
            fresh = redact_reasons(fresh)
            if as_json:
                write_json(fresh, tz, sys.stdout)
            elif as_csv:
                write_csv(fresh, tz, sys.stdout, header=False)
            else:
                print_lines(fresh, tz, console)

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how --follow ends
            follow_log(state.engine, where, emit, after_id=rows[-1].id if rows else 0)
    finally:
        state.close()


def stats(
    config: ConfigOption = Path("config.yaml"),
    since: Annotated[str, typer.Option(help=SinceHelp)] = "30d",
    as_json: JsonOption = False,
) -> None:
    """What the follow-ups achieved: outcomes, survey scores, coupons, repeat orders.

    Example: wcfollowup stats --since 30d --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.tools.inert import json_text
    from wcfollowup.tools.log_view import make_console
    from wcfollowup.tools.progress import order_progress
    from wcfollowup.tools.stats import collect, print_stats
    from wcfollowup.woo.errors import StoreError

    cfg = load_or_exit(config)
    now = current_time()
    start = time_point(since, now, cfg)
    assert start is not None
    state = open_state(cfg)
    try:
        with order_progress("orders", enabled=not as_json) as progress:
            result = collect(cfg, state.engine, start, now, progress=progress)
    except StoreError as exc:
        store_failed(exc)
    finally:
        state.close()
    if as_json:
        print(json_text(result.as_dict()))
    else:
        print_stats(result, cfg, make_console())
