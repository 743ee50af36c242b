"""Tell systemd how the daemon is doing (``man sd_notify``): ready, reloading, stopping, alive.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket in ``$NOTIFY_SOCKET``
(a path, or an abstract socket when it starts with ``@``). That is small enough to write here
rather than depend on the ``sdnotify`` package, which has been unmaintained for years.

Every function is a no-op outside systemd (``NOTIFY_SOCKET`` unset), and none of them raises:
a notification that cannot be delivered must never take the daemon down. The first failure is
logged once; later ones are silent so a broken socket cannot flood the journal.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

__all__ = [
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
]

log = structlog.get_logger("wcfollowup.service.sd_notify")

_warned = False


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    # An abstract socket name starts with a NUL byte; systemd spells it "@".
    return "\0" + address[1:] if address.startswith("@") else address


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``...) as one datagram; True if it was handed to the socket."""
    global _warned
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8"))
    except OSError as exc:
        if not _warned:
            _warned = True
            log.warning(
                "could not notify systemd; carrying on without it",
                socket=os.environ.get("NOTIFY_SOCKET"),
                reason=str(exc),
            )
        return False
    return True


def ready() -> bool:
    return notify("READY=1")


def reloading() -> bool:
    """RELOADING=1 with the monotonic timestamp systemd >= 253 (Type=notify-reload) expects.

    Older systemd ignores the extra field; every reload must be followed by ``ready()``.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}")


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """The one-line status ``systemctl status`` shows; newlines would end the field."""
    return notify("STATUS=" + " ".join(text.split()))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds within which systemd wants ``WATCHDOG=1``, or None when no watchdog is set.

    ``WATCHDOG_PID`` names the process the watchdog is meant for; a child that merely inherited
    the environment must not answer for its parent.
    """
    raw = os.environ.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None
