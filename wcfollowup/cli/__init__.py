"""The ``wcfollowup`` command line: the Typer app, the table of its commands, and ``main``.

Each command lives in the module of its group (``check_cmd``, ``run_cmds``, ``log_cmds``,
``queue_cmds``, ``store_cmds``, ``privacy_cmds``) and stays thin over ``tools/``, the engine
and the service; what they share (options, config loading, exit codes) is in ``shared``.
The commands are registered here, in one list, so ``--help`` keeps this order and there is
one place to see every command.

Heavy imports (requests, sendgrid, SQLAlchemy, APScheduler) happen inside the commands so that
``wcfollowup --help`` stays fast on a small VPS.
"""

from __future__ import annotations

import typer

from wcfollowup.cli.check_cmd import check
from wcfollowup.cli.log_cmds import show_log, stats
from wcfollowup.cli.privacy_cmds import forget, unsubscribe
from wcfollowup.cli.queue_cmds import queue_app
from wcfollowup.cli.run_cmds import demo, run, sandbox
from wcfollowup.cli.store_cmds import backfill, preview, simulate

app = typer.Typer(
    name="wcfollowup",
    help="Post-purchase follow-ups for WooCommerce, run from outside WordPress.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

app.command()(check)
app.command()(run)
app.command("log")(show_log)
app.add_typer(queue_app, name="queue")
app.command()(preview)
app.command()(simulate)
app.command()(backfill)
app.command()(stats)
app.command()(unsubscribe)
app.command()(forget)
app.command()(sandbox)
app.command()(demo)


def main() -> None:
    """The console entry point: new files (database, keys) are private to the owner."""
    from wcfollowup.common.private_files import keep_files_private

    keep_files_private()
    app()


__all__ = ["app", "main"]
