"""Schema migrations with Alembic, run by the daemon on start (and by any command that writes).

The migration scripts live inside the package, so an installed wcfollowup can upgrade its own
database without an alembic.ini. Alembic itself (about 10 MB resident, for the life of the
process) is imported only when the database is not already at ``HEAD``: on a small VPS the
daemon's idle memory matters more than the one-time cost of asking.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0005"
"""The newest revision in ``migrations/versions``; a test keeps it in step with Alembic's."""


def alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    if current_revision(engine) == HEAD:
        return
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
