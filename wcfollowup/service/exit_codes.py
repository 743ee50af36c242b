"""Every exit code of ``wcfollowup``, in one place, so cron and systemd can tell failures apart.

``run --once`` under cron must not exit 0 when nothing could be done: a store refusing the
keys, a certificate that does not verify, a store that is down, or SendGrid refusing its key
each get their own code (the README lists them). 2, 3 and 4 keep the meaning they always had.
"""

from __future__ import annotations

from enum import IntEnum

from wcfollowup.mail.errors import MailAuthError
from wcfollowup.woo.errors import (
    StoreAuthError,
    StoreError,
    StoreIncompatible,
    StoreTlsError,
    StoreTooOld,
)


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # anything else: the link listener could not start, the scheduler died
    CONFIG = 2  # the config has problems (each printed with its line)
    STORE_INCOMPATIBLE = 3  # WooCommerce older than 5.8, or an order status the store lacks
    ALREADY_RUNNING = 4  # another daemon holds this database
    STORE_AUTH = 5  # the store refused the API keys (or this machine's clock)
    STORE_TLS = 6  # the store's TLS certificate does not verify (see store.verify_tls)
    STORE_UNAVAILABLE = 7  # the store could not be reached or kept failing
    MAIL_AUTH = 8  # SendGrid refused the API key
    DATABASE_UNAVAILABLE = 9  # the state database cannot be opened or written
    # This daemon lost its database lock while running (another took over, or PostgreSQL
    # ended its session): EX_TEMPFAIL, so systemd starts a fresh one.
    LOCK_LOST = 75


def exit_code_for(failure: BaseException) -> ExitCode:
    """The code a command exits with when ``failure`` stopped it."""
    from wcfollowup.db.state import DatabaseUnavailable

    if isinstance(failure, StoreTooOld | StoreIncompatible):
        return ExitCode.STORE_INCOMPATIBLE
    if isinstance(failure, StoreAuthError):
        return ExitCode.STORE_AUTH
    if isinstance(failure, StoreTlsError):
        return ExitCode.STORE_TLS
    if isinstance(failure, StoreError):
        return ExitCode.STORE_UNAVAILABLE
    if isinstance(failure, MailAuthError):
        return ExitCode.MAIL_AUTH
    if isinstance(failure, DatabaseUnavailable):
        return ExitCode.DATABASE_UNAVAILABLE
    return ExitCode.FAILED


__all__ = ["ExitCode", "exit_code_for"]
