"""The ``wcfollowup`` command line.

Heavy imports (requests, sendgrid, SQLAlchemy, APScheduler) happen inside the commands so that
``wcfollowup --help`` stays fast on a small VPS.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from wcfollowup.config import Config

app = typer.Typer(
    name="wcfollowup",
    help="Post-purchase follow-ups for WooCommerce, run from outside WordPress.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path to the YAML config.", envvar="WCFOLLOWUP_CONFIG"),
]

EXIT_CONFIG = 2
EXIT_STORE = 3
EXIT_LOCKED = 4


def load_or_exit(path: Path) -> Config:
    from wcfollowup.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(str(problem), file=sys.stderr)
        print(f"{len(error.problems)} problem(s) in {path}; nothing was started.", file=sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def check(config: ConfigOption = Path("config.yaml")) -> None:
    """Validate the config file and report every problem at once (exit code 2 on problems).

    Example: wcfollowup check --config /etc/wcfollowup/config.yaml
    """
    cfg = load_or_exit(config)
    print(f"{config}: OK ({len(cfg.sequences)} sequence(s))")


@app.command()
def run(
    config: ConfigOption = Path("config.yaml"),
    once: Annotated[
        bool, typer.Option("--once", help="Run one poll and one dispatch, then exit (cron, tests).")
    ] = False,
) -> None:
    """Run the daemon: poll the store, enrol completed orders, send what is due.

    Example: wcfollowup run --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.daemon import Daemon
    from wcfollowup.db.lock import AlreadyRunning
    from wcfollowup.logs import configure_logging
    from wcfollowup.woo.errors import StoreIncompatible, StoreTooOld

    cfg = load_or_exit(config)
    configure_logging()
    try:
        daemon = Daemon(cfg)
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_LOCKED) from None
    try:
        if once:
            daemon.run_once()
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        daemon.run_forever(stop)
    except (StoreTooOld, StoreIncompatible) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_STORE) from None
    finally:
        daemon.close()


@app.command("log")
def show_log(
    config: ConfigOption = Path("config.yaml"),
    order: Annotated[int | None, typer.Option(help="Only this order id.")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only this status: sent, failed, skipped, cancelled, uncertain."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
) -> None:
    """Show the message log: what was sent, to whom, for which order, and why not.

    Example: wcfollowup log --config /etc/wcfollowup/config.yaml --status failed
    """
    from wcfollowup.db.state import StateStore
    from wcfollowup.log_view import print_log

    cfg = load_or_exit(config)
    state = StateStore(cfg.database.sqlalchemy_url)
    try:
        rows = state.messages(order_id=order, status=status, limit=limit)
    finally:
        state.close()
    print_log(rows, cfg.store.tz)


@app.command()
def unsubscribe(
    email: Annotated[str, typer.Argument(help="The address that asked to get no more emails.")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Stop all follow-ups to an address now and in future (logged as cancelled).

    Example: wcfollowup unsubscribe siti@example.com --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.clock import SystemClock
    from wcfollowup.db.state import StateStore

    cfg = load_or_exit(config)
    state = StateStore(cfg.database.sqlalchemy_url)
    try:
        cancelled = state.unsubscribe(email, "command line", SystemClock().now())
    finally:
        state.close()
    print(f"{email}: unsubscribed; {cancelled} pending follow-up(s) cancelled")


@app.command()
def sandbox(
    store_port: Annotated[
        int, typer.Option(help="Port of the WooCommerce-compatible store.")
    ] = 8765,
    mail_port: Annotated[
        int, typer.Option(help="Port of the SendGrid-compatible mail sink.")
    ] = 8766,
) -> None:
    """Run the sandbox store and mail sink on 127.0.0.1 to try a config without a real store.

    Example: wcfollowup sandbox --store-port 8765 --mail-port 8766
    """
    from wcfollowup.sandbox import serve_forever

    serve_forever(store_port=store_port, mail_port=mail_port)


@app.command()
def demo(
    speed: Annotated[
        float, typer.Option(help="How much faster than real time the clock runs.")
    ] = 120.0,
) -> None:
    """Run the real daemon against the built-in sandbox with a fast clock and show the log.

    Example: wcfollowup demo
    """
    from wcfollowup.demo import run_demo

    raise typer.Exit(run_demo(speed=speed))


def main() -> None:
    app()
