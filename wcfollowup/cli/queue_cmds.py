"""``wcfollowup queue`` and its subcommands ``cancel``, ``skip`` and ``retry``: what will go
out, and the owner's hand on it. The queries and the changes live in ``tools.queue``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wcfollowup.cli.shared import ConfigOption, JsonOption, current_time, load_or_exit, open_state

queue_app = typer.Typer(
    no_args_is_help=False,
    rich_markup_mode=None,
)

StepOption = Annotated[int | None, typer.Option("--step", help="A step id from `queue`.")]
OrderOption = Annotated[int | None, typer.Option("--order", help="Every open step of an order.")]


@queue_app.callback(invoke_without_command=True)
def queue(
    ctx: typer.Context,
    config: ConfigOption = Path("config.yaml"),
    order: Annotated[int | None, typer.Option(help="Only this order id.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many steps.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List the steps that will go out, soonest first ("waits for delivery" comes last).

    Example: wcfollowup queue --config /etc/wcfollowup/config.yaml --order 1234
    """
    if ctx.invoked_subcommand is not None:
        return
    from wcfollowup.tools.inert import json_text
    from wcfollowup.tools.log_view import make_console
    from wcfollowup.tools.queue import list_queue, print_queue, queued_record

    cfg = load_or_exit(config)
    state = open_state(cfg)
    try:
        items = list_queue(state.engine, order=order, limit=limit)
    finally:
        state.close()
    if as_json:
        print(json_text([queued_record(i, cfg.store.tz) for i in items]))
    else:
        print_queue(items, cfg.store.tz, make_console())


def _change(config: Path, action: str, step: int | None, order: int | None) -> None:
    """Cancel or skip (``action``) one step or an order's open steps; exit 1 if none found."""
    from wcfollowup.tools import queue as tools_queue

    if (step is None) == (order is None):
        raise typer.BadParameter("give exactly one of --step and --order")
    cfg = load_or_exit(config)
    state = open_state(cfg)
    try:
        move = tools_queue.cancel if action == "cancelled" else tools_queue.skip
        change = move(state.engine, current_time(), step=step, order=order)
    finally:
        state.close()
    print(tools_queue.describe_change(change, action))
    if change.found == 0:
        raise typer.Exit(1)


@queue_app.command("cancel")
def queue_cancel(
    config: ConfigOption = Path("config.yaml"),
    step: StepOption = None,
    order: OrderOption = None,
) -> None:
    """Cancel steps that have not gone out (logged as "cancelled from the command line").

    Example: wcfollowup queue cancel --order 1234 --config /etc/wcfollowup/config.yaml
    """
    _change(config, "cancelled", step, order)


@queue_app.command("skip")
def queue_skip(
    config: ConfigOption = Path("config.yaml"),
    step: StepOption = None,
    order: OrderOption = None,
) -> None:
    """Skip steps that have not gone out (logged as "skipped from the command line").

    Example: wcfollowup queue skip --step 42 --config /etc/wcfollowup/config.yaml
    """
    _change(config, "skipped", step, order)


@queue_app.command("retry")
def queue_retry(
    config: ConfigOption = Path("config.yaml"),
    step: StepOption = None,
    order: OrderOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Retry uncertain steps without asking.")
    ] = False,
) -> None:
    """Send failed, uncertain or skipped steps again: they are due now (send windows apply).

    Example: wcfollowup queue retry --step 42 --config /etc/wcfollowup/config.yaml
    Example: wcfollowup queue retry --order 1234 --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.tools import queue as tools_queue

    if (step is None) == (order is None):
        raise typer.BadParameter("give exactly one of --step and --order")
    cfg = load_or_exit(config)
    state = open_state(cfg)
    try:
        uncertain = tools_queue.uncertain_steps(state.engine, step=step, order=order)
        if uncertain and not yes:
            which = f"Step {step} is" if step is not None else f"{uncertain} step(s) are"
            typer.confirm(
                f"{which} uncertain: the email may already have reached the customer. "
                "Send it again anyway?",
                abort=True,
            )
        change = tools_queue.retry(state.engine, current_time(), step=step, order=order)
    finally:
        state.close()
    print(tools_queue.describe_change(change, "queued again"))
    if change.changed == 0:
        raise typer.Exit(1)
