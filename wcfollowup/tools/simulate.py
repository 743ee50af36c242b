"""``wcfollowup simulate``: what the rules would have done over past orders. Nothing is sent,
no coupon is made, and the state database is not even opened."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table

from wcfollowup.config import Config
from wcfollowup.tools.rules import RuleRunner, Tally
from wcfollowup.tools.store_scan import Progress, make_gateway, scan_orders
from wcfollowup.woo.gateway import WooGateway


def simulate(
    config: Config,
    since: datetime,
    *,
    gateway: WooGateway | None = None,
    progress: Progress | None = None,
) -> Tally:
    """Orders completed since ``since`` (any order completed then was modified then too, so
    ``modified_after`` finds them all; the completion time is checked per order)."""
    gateway = gateway or make_gateway(config)
    runner = RuleRunner(config, gateway)
    items = scan_orders(
        gateway,
        statuses=runner.statuses,
        fields=runner.fields,
        modified_after=since,
        progress=progress,
    )
    tally, _ = runner.run(items, since)
    return tally


def print_tally(tally: Tally, config: Config, console: Console, *, title: str) -> None:
    tz = config.store.tz
    console.print(
        f"{title}: {tally.orders_in_period} order(s) completed since "
        f"{tally.since.astimezone(tz):%Y-%m-%d %H:%M} ({tz})"
        + (f"; {tally.unreadable} unreadable order(s) left out" if tally.unreadable else "")
    )
    sequences = Table(title="sequences", expand=False)
    for column in ("sequence", "enrolled", "conditions said no", "already enrolled"):
        sequences.add_column(column)
    for seq in tally.sequences:
        sequences.add_row(seq.name, str(seq.enrolled), str(seq.rejected), str(seq.already_enrolled))
    console.print(sequences)
    steps = Table(title="steps", expand=False)
    for column in (
        "sequence",
        "step",
        "kind",
        "would go out",
        "only_if/skip_if say no",
        "depends on the survey",
        "waits for delivery",
        "no valid email",
    ):
        steps.add_column(column)
    for seq in tally.sequences:
        for step in seq.steps:
            steps.add_row(
                seq.name,
                step.step,
                step.kind,
                str(step.would_send),
                str(step.guarded),
                str(step.depends_on_survey),
                str(step.waits_for_delivery),
                str(step.no_email),
            )
    console.print(steps)
    console.print(
        f"{tally.messages} message(s) in all. Unsubscribes and frequency caps are applied "
        "when a step is due, so the real number can be lower."
    )
