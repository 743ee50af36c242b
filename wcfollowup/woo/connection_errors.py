"""What went wrong below HTTP, said in a few words, and whether trying again can help.

``requests`` wraps the real cause (a refused connection, a failed DNS lookup, a certificate the
store's chain does not prove) in layers whose text repeats the request line: over plain HTTP
that is the whole OAuth-signed URL, replayable for 15 minutes. So the message is built from the
innermost cause only, never from the wrappers' text.

A certificate that does not verify is not a passing network fault: every retry fails the same
way until someone changes the certificate or ``store.verify_tls``, so it is reported at once,
with what to change.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

__all__ = ["certificate_failure", "describe_connection_error", "tls_advice"]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every cause under it (``reason``, ``args``, ``__cause__``, context)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        nested = [reason] if isinstance(reason, BaseException) else []
        nested += [arg for arg in current.args if isinstance(arg, BaseException)]
        nested += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo.extend(nested)


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error somewhere under ``exc``, if that is what failed."""
    return next((e for e in _chain(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)


def describe_connection_error(exc: BaseException) -> str:
    """``connection refused``, ``name or service not known``: the innermost cause, in words."""
    causes = list(_chain(exc))
    for cause in reversed(causes):
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror)
    innermost = causes[-1]
    return type(innermost).__name__


def tls_advice(url: str, failure: ssl.SSLCertVerificationError) -> str:
    """The message for a certificate that does not verify: what failed and what to change."""
    why = failure.verify_message or failure.reason or "not trusted"
    return (
        f"the TLS certificate of {url} could not be verified ({why}). If the store uses its "
        "own or a private certificate authority, set store.verify_tls to that CA's bundle "
        "(store.verify_tls: /path/to/ca.pem); otherwise fix the store's certificate (expired, "
        "wrong host name, or an incomplete chain). Retrying cannot help."
    )
