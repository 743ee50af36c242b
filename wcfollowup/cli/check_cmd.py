"""``wcfollowup check``: the owner's dry run of a config before the daemon ever starts."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from wcfollowup.cli.shared import ConfigOption, load_or_exit
from wcfollowup.service.exit_codes import ExitCode


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
