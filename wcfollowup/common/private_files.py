"""Files this process creates are its user's alone.

Kept apart from the database code so that the command line can set it first thing without
importing SQLAlchemy (``wcfollowup --help`` stays fast).
"""

from __future__ import annotations

import os
from typing import Final

PRIVATE_UMASK: Final = 0o077


def keep_files_private() -> None:
    """Make every file this process creates readable by its own user only (0600).

    The SQLite database and its ``-wal``/``-shm`` files (SQLite gives them the database's
    mode), the lock file, the link signing key and ``preview`` files hold customers' data or
    secrets. Under systemd the unit's ``UMask=0077`` does this; from a shell or cron the
    default umask (022) would leave them readable by every local user, so the command line
    sets it itself, before anything is opened.
    """
    os.umask(PRIVATE_UMASK)
