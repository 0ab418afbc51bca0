"""Everything the CLI shows on stderr: log lines, errors and progress.

Rich progress bars when stderr is a terminal; plain periodic lines when it is not (a log
file, CI); nothing at all with --quiet. Rich honours NO_COLOR by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

stderr = Console(stderr=True, highlight=False)


class Reporter:
    """The stderr side of one command run."""

    def __init__(self, quiet: bool = False, plain_every: float = 5.0):
        self.quiet = quiet
        self.interactive = stderr.is_terminal and not quiet
        self.plain_every = plain_every

    def log(self, message: str) -> None:
        if not self.quiet:
            stderr.print(message, markup=False, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        # Warnings show even with --quiet: they change how a result should be read.
        stderr.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def bytes_progress(self, label: str) -> Iterator[Callable[[int, int], None]]:
        """A callback (done, total) drawing bytes done, MB/s and ETA."""
        if self.quiet:
            yield lambda done, total: None
            return
        if self.interactive:
            columns = [
                TextColumn(label),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            ]
            with Progress(*columns, console=stderr, transient=False) as progress:
                task = progress.add_task(label, total=None)
                yield lambda done, total: progress.update(task, completed=done, total=total)
            return
        start = time.monotonic()
        last = [start]

        def plain(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < self.plain_every and done < total:
                return
            last[0] = now
            rate = done / max(now - start, 1e-9) / 1e6
            eta = (total - done) / max(rate * 1e6, 1e-9)
            self.log(
                f"{label}: {done / 1e6:.1f}/{total / 1e6:.1f} MB, {rate:.1f} MB/s, eta {eta:.0f}s"
            )

        yield plain

    @contextmanager
    def steps_progress(self, label: str, total: float | None) -> Iterator[Callable[..., None]]:
        """A callback (completed, description) for step-wise work such as training."""
        if not self.interactive:
            yield lambda completed, description="": None
            return
        columns = [
            TextColumn(label),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
        ]
        with Progress(*columns, console=stderr, transient=False) as progress:
            task = progress.add_task("", total=total)

            def update(completed: float, description: str = "") -> None:
                progress.update(task, completed=completed, description=description)

            yield update
