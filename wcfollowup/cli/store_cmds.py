"""Commands that run the rules over the store's real orders: ``preview`` (one order's emails),
``simulate`` (what past orders would have got) and ``backfill`` (enrol past orders). The
work lives in ``engine.preview``, ``tools.preview``, ``tools.simulate`` and ``tools.backfill``;
this module reads the options, asks before enrolling, and maps store failures to exit codes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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


def preview(
    order: Annotated[int, typer.Argument(help="The order id in WooCommerce.")],
    config: ConfigOption = Path("config.yaml"),
    step: Annotated[str | None, typer.Option(help="Only this step (by name).")] = None,
    html_out: Annotated[
        Path | None,
        typer.Option(help="Where to write the HTML (default preview-ORDER-STEP.html here)."),
    ] = None,
) -> None:
    """Render the exact email(s) a real order would get; nothing is sent or stored.

    Example: wcfollowup preview 1234 --step thank-you --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.engine.preview import StepNotFound, preview_emails
    from wcfollowup.tools.log_view import make_console
    from wcfollowup.tools.preview import write_previews
    from wcfollowup.woo.errors import OrderNotFound, StoreError

    cfg = load_or_exit(config)
    try:
        emails = preview_emails(cfg, order, step)
    except StepNotFound as exc:
        raise typer.BadParameter(str(exc)) from None
    except OrderNotFound:
        print(f"error: the store has no order {order}", file=sys.stderr)
        raise typer.Exit(1) from None
    except StoreError as exc:
        store_failed(exc)
    if not emails:
        print(f"order {order}: no step in the config applies")
        return
    write_previews(order, emails, html_out, make_console())


def simulate(
    config: ConfigOption = Path("config.yaml"),
    since: Annotated[str, typer.Option(help=SinceHelp)] = "90d",
    as_json: JsonOption = False,
) -> None:
    """Run the rules over past completed orders and count what would have gone out.

    Nothing is sent, no coupon is created, and the state database is not touched.

    Example: wcfollowup simulate --since 90d --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.tools.inert import json_text
    from wcfollowup.tools.log_view import make_console
    from wcfollowup.tools.progress import order_progress
    from wcfollowup.tools.simulate import print_tally
    from wcfollowup.tools.simulate import simulate as run_simulation
    from wcfollowup.woo.errors import StoreError

    cfg = load_or_exit(config)
    start = time_point(since, current_time(), cfg)
    assert start is not None
    try:
        with order_progress("orders", enabled=not as_json) as progress:
            tally = run_simulation(cfg, start, progress=progress)
    except StoreError as exc:
        store_failed(exc)
    if as_json:
        print(json_text(tally.as_dict()))
    else:
        print_tally(tally, cfg, make_console(), title="simulation (nothing was sent)")


def backfill(
    since: Annotated[str, typer.Option(help=SinceHelp + " At most 365 days back.")],
    config: ConfigOption = Path("config.yaml"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Enrol without asking.")] = False,
) -> None:
    """Enrol orders completed before wcfollowup started, after showing what would be sent.

    Orders already enrolled are left alone. Each order's first step is due now and later
    steps keep their spacing; send windows still apply.

    Example: wcfollowup backfill --since 2026-09-01 --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.tools import backfill as tools_backfill
    from wcfollowup.tools.log_view import make_console
    from wcfollowup.tools.progress import order_progress
    from wcfollowup.tools.simulate import print_tally
    from wcfollowup.woo.errors import StoreError

    cfg = load_or_exit(config)
    now = current_time()
    start = time_point(since, now, cfg)
    assert start is not None
    try:
        tools_backfill.check_since(start, now)
    except tools_backfill.BackfillRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    state = open_state(cfg)
    try:
        try:
            with order_progress("orders") as progress:
                prepared = tools_backfill.prepare(cfg, state, start, now, progress=progress)
        except StoreError as exc:
            store_failed(exc)
        print_tally(prepared.tally, cfg, make_console(), title="backfill")
        if not prepared.plans:
            print("Nothing new to enrol.")
            return
        if not yes:
            typer.confirm(
                f"Enrol {len(prepared.plans)} order/sequence pair(s), about "
                f"{prepared.tally.messages} email(s)?",
                abort=True,
            )
        with order_progress("enrolling") as progress:
            stored = tools_backfill.enroll(
                state, prepared, cfg.store.url, current_time(), progress=progress
            )
    finally:
        state.close()
    print(
        f"{stored} enrolment(s) stored; the daemon sends them at their due times "
        "(within the send window)."
    )
