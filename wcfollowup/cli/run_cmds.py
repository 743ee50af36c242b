"""The commands that start something long-running: ``run`` (the daemon, or one round with
``--once``), ``sandbox`` (a fake store and mail sink) and ``demo`` (both together).

``run --once`` is what cron calls, so its exit code must say what stopped the work; the
mapping from failure to code lives here and in ``service.exit_codes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wcfollowup.cli.shared import ConfigOption, fail, load_or_exit
from wcfollowup.service.exit_codes import ExitCode, exit_code_for


def run(
    config: ConfigOption = Path("config.yaml"),
    once: Annotated[
        bool, typer.Option("--once", help="Run one poll and one dispatch, then exit (cron, tests).")
    ] = False,
) -> None:
    """Run the daemon: poll the store, enrol completed orders, send what is due.

    With --once the exit code says what stopped the work (0: nothing did): 2 config,
    3 store too old, 4 already running, 5 store refused the keys, 6 store certificate does
    not verify, 7 store unreachable or failing, 8 SendGrid refused its key, 9 database.

    Example: wcfollowup run --config /etc/wcfollowup/config.yaml
    """
    if not once:
        # systemd notify, SIGHUP reload and SIGTERM live in the service; it loads the config.
        from wcfollowup.service.systemd import serve

        raise typer.Exit(serve(config))

    from wcfollowup.db.lock import AlreadyRunning, LockLost
    from wcfollowup.db.opening import StateUnavailable
    from wcfollowup.service.daemon import Daemon
    from wcfollowup.service.logs import configure_logging
    from wcfollowup.web.tokens import KeyUnavailable
    from wcfollowup.woo.errors import StoreIncompatible, StoreTooOld

    cfg = load_or_exit(config)
    configure_logging()
    try:
        daemon = Daemon(cfg)
    except AlreadyRunning as exc:
        fail(exc, ExitCode.ALREADY_RUNNING)
    except KeyUnavailable as exc:
        fail(exc, ExitCode.CONFIG)
    except StateUnavailable as exc:
        fail(exc, ExitCode.DATABASE_UNAVAILABLE)
    try:
        problem = daemon.run_once()
    except (StoreTooOld, StoreIncompatible) as exc:
        fail(exc, ExitCode.STORE_INCOMPATIBLE)
    except LockLost as exc:
        fail(exc, ExitCode.LOCK_LOST)
    finally:
        daemon.close()
    if problem is not None:
        fail(problem, exit_code_for(problem))


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


def demo(
    speed: Annotated[
        float, typer.Option(help="How much faster than real time the clock runs.")
    ] = 360.0,
) -> None:
    """Run the real daemon against the built-in sandbox with a fast clock and show the log.

    Example: wcfollowup demo
    """
    # cli.demo imports rich and the clock at module level: only when the demo runs.
    from wcfollowup.cli.demo import run_demo

    raise typer.Exit(run_demo(speed=speed))
