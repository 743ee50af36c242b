"""A Rich progress bar fed by ``store_scan``'s (seen, total) callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from wcfollowup.tools.store_scan import Progress as ProgressCallback


@contextmanager
def order_progress(label: str, *, enabled: bool = True) -> Iterator[ProgressCallback]:
    """Yields the callback; a disabled bar (``--json``, piped output) costs nothing."""
    if not enabled:
        yield lambda _seen, _total: None
        return
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(label, total=None)
    with bar:
        yield lambda seen, total: bar.update(task, completed=seen, total=total)
