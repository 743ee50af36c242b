"""Shared fixtures: the real sandbox servers on 127.0.0.1 and the real daemon, on a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support import sandbox_env, thank_you_config

from wcfollowup.config import Config, load_config
from wcfollowup.core.clock import FakeClock
from wcfollowup.sandbox import Sandbox
from wcfollowup.service.daemon import Daemon

# Property tests check behaviour, not speed: on a loaded CI machine a slow draw or example is
# the machine, not a bug (a hypothesis "too slow" health check failed CI once that way).
settings.register_profile("wcfollowup", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("wcfollowup")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with Sandbox(clock, timezone="Asia/Jakarta") as sb:
        yield sb


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path, sandbox: Sandbox) -> WriteConfig:
    def write(
        *,
        after: str = "30m",
        batch_size: int = 50,
        language: str = "id",
        name: str = "config.yaml",
    ) -> Path:
        path = tmp_path / name
        path.write_text(
            thank_you_config(
                sandbox,
                tmp_path / "state.db",
                after=after,
                batch_size=batch_size,
                language=language,
            ),
            encoding="utf-8",
        )
        return path

    return write


@pytest.fixture
def make_config(write_config: WriteConfig, sandbox: Sandbox) -> Callable[..., Config]:
    def make(**kwargs: object) -> Config:
        return load_config(write_config(**kwargs), env=sandbox_env(sandbox))

    return make


@pytest.fixture
def make_daemon(
    make_config: Callable[..., Config], clock: FakeClock
) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def make(config: Config | None = None, **kwargs: object) -> Daemon:
        daemon = Daemon(config or make_config(**kwargs), clock, sleep=lambda _s: None)
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.close()
