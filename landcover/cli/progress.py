"""The command line's progress reporter: click progress bars on stderr."""

from __future__ import annotations

import sys

import click

from landcover.progress import Event


def bars_for(ctx: click.Context):
    """The reporter for a command: bars unless ``-q`` was given (then ``None``)."""
    return Bars() if (ctx.obj or {}).get("verbosity", 0) >= 0 else None


class Bars:
    """Draws a click progress bar per stage when stderr is a terminal.

    Off a terminal (logs, CI) it writes one line per finished stage of dask tasks (training steps
    are summarised by their epoch lines instead); messages are written in both cases.
    """

    def __init__(self, file=None):
        self.file = file or sys.stderr
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())
        self._bars: dict[str, object] = {}
        self._done: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if event.message is not None:
            click.echo(event.message, file=self.file)
            return
        finished = event.total and event.done >= event.total
        if not self.tty:
            if finished and event.unit == "tasks":
                click.echo(f"{event.label}: {event.total} {event.unit} in "
                           f"{event.seconds or 0:.1f} s", file=self.file)
            return
        bar = self._bars.get(event.label)
        if bar is None:
            bar = click.progressbar(length=max(event.total, 1), label=event.label,
                                    file=self.file)
            bar.__enter__()
            self._bars[event.label], self._done[event.label] = bar, 0
        bar.update(event.done - self._done[event.label])
        self._done[event.label] = event.done
        if finished:
            bar.__exit__(None, None, None)
            del self._bars[event.label], self._done[event.label]
