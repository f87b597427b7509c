"""The command line's progress reporter: rich progress bars on stderr.

On a terminal every open stage is a bar with its counts, rate, elapsed time and ETA; a stage opened
while another is open (an epoch of a training run, a dask stage of ``prepare``) is drawn indented
under it, and the outer bar, the command's overall one, moves with its open step. A finished stage
leaves one line (``Reading labels: 12 tasks in 3.1 s``; training steps and overall bars leave
none, an epoch's line of scores says more). Off a terminal (logs, CI) only those lines and the
messages are written. ``-q``
draws nothing (:func:`bars_for` gives no reporter).
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass

import click

from landcover.progress import Event, Overall

QUIET_UNITS = ("batches", "epochs", "steps")
"""Units of stages that leave no line when they end: training steps (the epoch's line says more)
and the overall stages of commands."""


def bars_for(ctx: click.Context, steps: int | None = None):
    """The reporter for a command: bars unless ``-q`` was given (then ``None``); they are put away
    when the command ends, also on an error. With ``steps``, the stages that the library reports
    one after the other are the steps of an overall bar named after the command
    (:class:`landcover.progress.Overall`)."""
    if (ctx.obj or {}).get("verbosity", 0) < 0:
        return None
    bars = Bars()
    ctx.call_on_close(bars.close)
    if steps is None:
        return bars
    overall = Overall(bars, ctx.info_name or "working", steps)
    ctx.call_on_close(overall.close)  # called before bars.close (callbacks run last first)
    return overall


def finished_line(event: Event) -> str:
    """The line a finished stage leaves on stderr (``Reading labels: 12 tasks in 3.1 s``)."""
    return f"{event.label}: {event.total:,d} {event.unit} in {event.seconds or 0:.1f} s"


@dataclass
class _Row:
    task: int  # the rich task id
    depth: int  # 0: an outermost stage; 1: a step of the stage above it, ...
    parent: str | None
    event: Event


class Bars:
    """A :mod:`landcover.progress` reporter drawing rich bars on ``file`` (stderr) when it is a
    terminal; plain lines otherwise. Safe to call from several threads (dask tasks report their
    parts from theirs)."""

    def __init__(self, file=None, *, tty: bool | None = None, width: int | None = None):
        self.file = file or sys.stderr
        self.tty = bool(getattr(self.file, "isatty", lambda: False)()) if tty is None else tty
        self.width = width
        self._lock = threading.RLock()
        self._live = None  # the rich Progress while a stage is open
        self._rows: dict[str, _Row] = {}
        self._streams: list = []  # (log handler, its stream) redirected while bars are drawn

    # ----------------------------------------------------------------------------- events
    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.message is not None:
                self._line(event.message)
                return
            finished = bool(event.total) and event.done >= event.total
            if not self.tty:
                if finished and event.unit not in QUIET_UNITS:
                    self._line(finished_line(event))
                return
            if not event.total:  # a stage of nothing: no bar
                return
            row = self._rows.get(event.label)
            if row is None and finished:  # ended before it was drawn (or drawn to its end)
                if event.unit not in QUIET_UNITS and event.done:
                    self._line(finished_line(event))
                return
            if row is None:
                row = self._open(event)
            row.event = event
            if finished:
                self._close(event.label)
            else:
                self._update(event.label)

    def close(self) -> None:
        """Stop drawing (a command that ends with stages still open, e.g. on an error)."""
        with self._lock:
            for label in list(self._rows):
                self._rows.pop(label)
            self._stop()

    # ---------------------------------------------------------------------------- drawing
    def _progress(self):
        from rich.console import Console
        from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        console = Console(file=self.file, force_terminal=True, width=self.width,
                          highlight=False, soft_wrap=True)
        return Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=30), TaskProgressColumn(),
            TextColumn("{task.fields[count]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=True, redirect_stdout=False,
            redirect_stderr=self.file is sys.stderr,
            refresh_per_second=8, speed_estimate_period=60)

    def _open(self, event: Event) -> _Row:
        if self._live is None:
            self._live = self._progress()
            self._live.start()
            self._redirect_logs()
        parent = max(self._rows, key=lambda k: self._rows[k].depth) if self._rows else None
        depth = self._rows[parent].depth + 1 if parent else 0
        task = self._live.add_task("  " * depth + event.label, total=max(event.total, 1),
                                   count="", rate="")
        row = _Row(task, depth, parent, event)
        self._rows[event.label] = row
        return row

    def _update(self, label: str) -> None:
        row = self._rows[label]
        e = row.event
        completed = e.done + e.part
        child = next((r for r in self._rows.values() if r.parent == label), None)
        if child is not None and child.event.total:  # the overall bar moves with its open step
            completed = min(e.total, completed + child.event.fraction)
        rate = ""
        task = next(t for t in self._live.tasks if t.id == row.task)
        if task.speed and e.unit != "steps":  # steps differ too much in length for a rate
            rate = f"{task.speed:.3g} {e.unit}/s" if task.speed >= 0.1 else \
                f"{1 / task.speed:.3g} s/{e.unit.rstrip('s')}"
        self._live.update(row.task, total=max(e.total, 1), completed=max(task.completed, completed),
                          count=f"{e.done:,d}/{e.total:,d} {e.unit}", rate=rate)
        if row.parent in self._rows:
            self._update(row.parent)

    def _close(self, label: str) -> None:
        row = self._rows.pop(label)
        self._live.remove_task(row.task)
        for other in self._rows.values():  # its steps (left open) are steps of its parent now
            if other.parent == label:
                other.parent = row.parent
        if row.event.unit not in QUIET_UNITS:
            self._line(finished_line(row.event))
        if row.parent in self._rows:
            self._update(row.parent)
        if not self._rows:
            self._stop()

    def _stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
            self._restore_logs()

    def _line(self, text: str) -> None:
        if self._live is not None:  # above the bars
            self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(text, file=self.file)

    # ------------------------------------------------------------------ logs while drawing
    def _redirect_logs(self) -> None:
        """Log records of ``landcover`` go above the bars while they are drawn (its handler
        writes to the stream it was given, which the bars' redirection does not reach)."""
        if self.file is not sys.__stderr__ or sys.stderr is self.file:
            return  # not drawing on the process's stderr, or it is not redirected
        for handler in logging.getLogger("landcover").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.file:
                self._streams.append((handler, handler.setStream(sys.stderr)))

    def _restore_logs(self) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams.clear()
