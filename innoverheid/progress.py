"""Progress on stderr when it is a terminal; silent in cron and in pipes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class _Quiet:
    def advance(self, n: int = 1) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class _Bar:
    def __init__(self, progress, task):
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)

    def describe(self, text: str) -> None:
        self._p.update(self._t, description=text)


@contextlib.contextmanager
def progress(description: str, total: int | None = None, unit: str = "posts") -> Iterator[_Bar | _Quiet]:
    if not sys.stderr.isatty():
        yield _Quiet()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn(unit), TimeElapsedColumn()]
    with Progress(*cols, console=Console(stderr=True), transient=True) as p:
        yield _Bar(p, p.add_task(description, total=total))
