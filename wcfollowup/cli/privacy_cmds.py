"""The owner's privacy commands: ``unsubscribe`` (no more emails to an address) and ``forget``
(erase a customer's personal data, or everyone's past the retention period). The erasing
lives in ``db.privacy`` and the state store; this module asks before anything irreversible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wcfollowup.cli.shared import ConfigOption, current_time, load_or_exit, open_state, time_point


def unsubscribe(
    email: Annotated[str, typer.Argument(help="The address that asked to get no more emails.")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Stop all follow-ups to an address now and in future (logged as cancelled).

    Example: wcfollowup unsubscribe siti@example.com --config /etc/wcfollowup/config.yaml
    """
    cfg = load_or_exit(config)
    state = open_state(cfg)
    try:
        cancelled = state.unsubscribe(email, "command line", current_time())
    finally:
        state.close()
    print(f"{email}: unsubscribed; {cancelled} pending follow-up(s) cancelled")


def forget(
    email: Annotated[
        str | None, typer.Argument(help="The customer's address whose data is erased.")
    ] = None,
    config: ConfigOption = Path("config.yaml"),
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Instead of one customer: erase personal data of every follow-up that "
            "finished (or waited without becoming due) more than this long ago (365d), as the "
            "daily retention job does.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Erase without asking.")] = False,
) -> None:
    """Erase a customer's personal data (a privacy request) and keep them unsubscribed.

    Their address, survey comments and log texts are removed; counts, scores and order
    numbers stay, so stats still add up. Follow-ups not sent yet are cancelled. Coupons
    already created in WooCommerce keep the address there: delete them in WordPress.

    Example: wcfollowup forget siti@example.com --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.db import privacy

    if (email is None) == (older_than is None):
        raise typer.BadParameter("give an email address, or --older-than (not both)")
    cfg = load_or_exit(config)
    now = current_time()
    cutoff = time_point(older_than, now, cfg)
    if email is not None and "@" not in email:
        raise typer.BadParameter(f"{email!r} is not an email address")
    state = open_state(cfg)
    try:
        if cutoff is not None:
            if not yes:
                typer.confirm(
                    f"Erase personal data of follow-ups finished before {cutoff:%Y-%m-%d} "
                    "(cancelling any still waiting since then)?",
                    abort=True,
                )
            purged = privacy.purge_older_than(state.engine, cutoff, now)
            print(f"Erased personal data from: {privacy.describe_purge(purged)}.")
            return
        assert email is not None
        found = privacy.preview_forget(state.engine, email)
        print(f"{email}: found")
        print("\n".join(found.lines()))
        if not yes:
            typer.confirm(
                "Erase this personal data and keep the address unsubscribed? "
                "This cannot be undone.",
                abort=True,
            )
        done = privacy.forget(state.engine, email, now)
    finally:
        state.close()
    print(
        f"Erased: {done.enrollments} enrollment(s), {done.messages} log row(s), "
        f"{done.survey_answers} survey answer(s) ({done.survey_comments} comment(s)), "
        f"{done.coupons} coupon(s); {done.steps_cancelled} follow-up(s) cancelled. "
        "The address is kept only as a one-way hash so it stays unsubscribed."
    )
