"""The ``wcfollowup`` command line.

Heavy imports (requests, sendgrid, SQLAlchemy, APScheduler) happen inside the commands so that
``wcfollowup --help`` stays fast on a small VPS.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from wcfollowup.service.exit_codes import ExitCode, exit_code_for

if TYPE_CHECKING:
    from wcfollowup.config import Config
    from wcfollowup.db.state import MessageRow, StateStore

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


def load_or_exit(path: Path) -> Config:
    from wcfollowup.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(str(problem), file=sys.stderr)
        print(f"{len(error.problems)} problem(s) in {path}; nothing was started.", file=sys.stderr)
        raise typer.Exit(ExitCode.CONFIG) from None


@app.command()
def check(config: ConfigOption = Path("config.yaml")) -> None:
    """Validate the config and render every template against a sample order; report every
    problem at once (exit code 2 on problems).

    Example: wcfollowup check --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.db.privacy import steps_beyond_retention
    from wcfollowup.render.check import check_templates

    cfg = load_or_exit(config)
    problems = check_templates(cfg) + steps_beyond_retention(cfg)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in templates and steps", file=sys.stderr)
        raise typer.Exit(ExitCode.CONFIG)
    print(f"{config}: OK ({len(cfg.sequences)} sequence(s))")


@app.command()
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
        _fail(exc, ExitCode.ALREADY_RUNNING)
    except KeyUnavailable as exc:
        _fail(exc, ExitCode.CONFIG)
    except StateUnavailable as exc:
        _fail(exc, ExitCode.DATABASE_UNAVAILABLE)
    try:
        problem = daemon.run_once()
    except (StoreTooOld, StoreIncompatible) as exc:
        _fail(exc, ExitCode.STORE_INCOMPATIBLE)
    except LockLost as exc:
        _fail(exc, ExitCode.LOCK_LOST)
    finally:
        daemon.close()
    if problem is not None:
        _fail(problem, exit_code_for(problem))


def _fail(problem: BaseException, code: ExitCode) -> NoReturn:
    """One line on stderr (cron mails it) and a distinct exit code; never a traceback."""
    from wcfollowup.common.redact import redact

    print(f"error: {redact(str(problem))}", file=sys.stderr)
    raise typer.Exit(code)


def _open_state(cfg: Config) -> StateStore:
    """The state database, or one clear message and exit code 9 when it cannot be used."""
    from wcfollowup.db.opening import StateUnavailable, open_state

    try:
        return open_state(cfg)
    except StateUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(ExitCode.DATABASE_UNAVAILABLE) from None


def _now() -> datetime:
    from wcfollowup.core.clock import SystemClock

    return SystemClock().now()


def _point(text: str | None, now: datetime, cfg: Config, *, end: bool = False) -> datetime | None:
    from wcfollowup.tools.timespec import BadTime, parse_point

    if text is None:
        return None
    try:
        return parse_point(text, now, cfg.store.tz, end=end)
    except BadTime as exc:
        raise typer.BadParameter(str(exc)) from None


def _store_failed(exc: Exception) -> NoReturn:
    from wcfollowup.common.redact import redact

    print(f"error: the store could not be read: {redact(str(exc))}", file=sys.stderr)
    raise typer.Exit(exit_code_for(exc))


SinceHelp = "A date in store time (2026-11-01) or a duration meaning the last N (7d, 12h)."
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("log")
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
    from wcfollowup.tools.log_query import LogFilter, follow_log, read_log
    from wcfollowup.tools.log_view import make_console, print_lines, print_log, write_csv
    from wcfollowup.tools.log_view import write_json_lines as write_json

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    cfg = load_or_exit(config)
    now = _now()
    where = LogFilter(
        order=order,
        email=email,
        sequence=sequence,
        step=step,
        status=status,
        since=_point(since, now, cfg),
        until=_point(until, now, cfg, end=True),
    )
    tz = cfg.store.tz
    state = _open_state(cfg)
    try:
        rows = _redacted(read_log(state.engine, where, limit=limit))
        if as_json:
            write_json(rows, tz, sys.stdout)
        elif as_csv:
            write_csv(rows, tz, sys.stdout)
        elif follow:
            print_lines(rows, tz)
        else:
            print_log(rows, tz)
        if not follow:
            return
        console = make_console()

        def emit(fresh: Sequence[MessageRow]) -> None:
            fresh = _redacted(fresh)
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


def _redacted(rows: Sequence[MessageRow]) -> list[MessageRow]:
    """Rows written before reasons were redacted on the way in may still hold a secret."""
    import dataclasses

    from wcfollowup.common.redact import redact

    return [dataclasses.replace(row, reason=redact(row.reason)) for row in rows]


queue_app = typer.Typer(
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(queue_app, name="queue")


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
    state = _open_state(cfg)
    try:
        items = list_queue(state.engine, order=order, limit=limit)
    finally:
        state.close()
    if as_json:
        print(json_text([queued_record(i, cfg.store.tz) for i in items]))
    else:
        print_queue(items, cfg.store.tz, make_console())


StepOption = Annotated[int | None, typer.Option("--step", help="A step id from `queue`.")]
OrderOption = Annotated[int | None, typer.Option("--order", help="Every open step of an order.")]


def _change(config: Path, action: str, step: int | None, order: int | None) -> None:
    from wcfollowup.tools import queue as tools_queue

    if (step is None) == (order is None):
        raise typer.BadParameter("give exactly one of --step and --order")
    cfg = load_or_exit(config)
    state = _open_state(cfg)
    try:
        move = tools_queue.cancel if action == "cancelled" else tools_queue.skip
        change = move(state.engine, _now(), step=step, order=order)
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
    state = _open_state(cfg)
    try:
        uncertain = tools_queue.uncertain_steps(state.engine, step=step, order=order)
        if uncertain and not yes:
            which = f"Step {step} is" if step is not None else f"{uncertain} step(s) are"
            typer.confirm(
                f"{which} uncertain: the email may already have reached the customer. "
                "Send it again anyway?",
                abort=True,
            )
        change = tools_queue.retry(state.engine, _now(), step=step, order=order)
    finally:
        state.close()
    print(tools_queue.describe_change(change, "queued again"))
    if change.changed == 0:
        raise typer.Exit(1)


@app.command()
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
        _store_failed(exc)
    if not emails:
        print(f"order {order}: no step in the config applies")
        return
    write_previews(order, emails, html_out, make_console())


@app.command()
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
    start = _point(since, _now(), cfg)
    assert start is not None
    try:
        with order_progress("orders", enabled=not as_json) as progress:
            tally = run_simulation(cfg, start, progress=progress)
    except StoreError as exc:
        _store_failed(exc)
    if as_json:
        print(json_text(tally.as_dict()))
    else:
        print_tally(tally, cfg, make_console(), title="simulation (nothing was sent)")


@app.command()
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
    now = _now()
    start = _point(since, now, cfg)
    assert start is not None
    try:
        tools_backfill.check_since(start, now)
    except tools_backfill.BackfillRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    state = _open_state(cfg)
    try:
        try:
            with order_progress("orders") as progress:
                prepared = tools_backfill.prepare(cfg, state, start, now, progress=progress)
        except StoreError as exc:
            _store_failed(exc)
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
                state, prepared, cfg.store.url, _now(), progress=progress
            )
    finally:
        state.close()
    print(
        f"{stored} enrolment(s) stored; the daemon sends them at their due times "
        "(within the send window)."
    )


@app.command()
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
    now = _now()
    start = _point(since, now, cfg)
    assert start is not None
    state = _open_state(cfg)
    try:
        with order_progress("orders", enabled=not as_json) as progress:
            result = collect(cfg, state.engine, start, now, progress=progress)
    except StoreError as exc:
        _store_failed(exc)
    finally:
        state.close()
    if as_json:
        print(json_text(result.as_dict()))
    else:
        print_stats(result, cfg, make_console())


@app.command()
def unsubscribe(
    email: Annotated[str, typer.Argument(help="The address that asked to get no more emails.")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Stop all follow-ups to an address now and in future (logged as cancelled).

    Example: wcfollowup unsubscribe siti@example.com --config /etc/wcfollowup/config.yaml
    """
    from wcfollowup.core.clock import SystemClock

    cfg = load_or_exit(config)
    state = _open_state(cfg)
    try:
        cancelled = state.unsubscribe(email, "command line", SystemClock().now())
    finally:
        state.close()
    print(f"{email}: unsubscribed; {cancelled} pending follow-up(s) cancelled")


@app.command()
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
    now = _now()
    cutoff = _point(older_than, now, cfg)
    if email is not None and "@" not in email:
        raise typer.BadParameter(f"{email!r} is not an email address")
    state = _open_state(cfg)
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
    ] = 360.0,
) -> None:
    """Run the real daemon against the built-in sandbox with a fast clock and show the log.

    Example: wcfollowup demo
    """
    from wcfollowup.cli.demo import run_demo

    raise typer.Exit(run_demo(speed=speed))


def main() -> None:
    from wcfollowup.db.opening import keep_files_private

    keep_files_private()
    app()
