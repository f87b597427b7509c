"""Progress reports: the library says how far it is, the caller decides how to show it.

Long functions (``prepare``, ``train``, ``classify``, ``summarize``) take ``progress``: a callable
that receives :class:`Event` objects, or ``None``/``False`` for silence. The library never draws
anything itself; the command line passes a reporter that draws progress bars on stderr
(:class:`landcover.cli.progress.Bars`), a notebook could pass one that updates a widget, and
``True`` logs each finished stage at INFO level (:func:`log_progress`).

A stage is reported as ``Event(label, 0, total)`` when it starts, ``Event(label, done, total)`` as
it advances and once with ``done == total`` when it ends; ``Event(label, message=text)`` is a line
to show once (an epoch's scores).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    label: str  # the stage: "Reading labels", "Epoch 3/40", ...
    done: int = 0  # units finished so far
    total: int = 0  # units in the stage
    unit: str = "tasks"  # tasks (dask tasks) or batches (training steps)
    message: str | None = None  # a line to show once; done/total are not used then
    seconds: float | None = None  # time since the stage started (in the last event)


Reporter = Callable[[Event], None]


def log_progress(event: Event) -> None:
    """A reporter that logs every finished stage and every message at INFO level."""
    if event.message is not None:
        log.info("%s", event.message)
    elif event.total and event.done >= event.total:
        log.info("%s: %d %s in %.1f s", event.label, event.total, event.unit,
                 event.seconds or 0.0)


def reporter(progress) -> Reporter | None:
    """The reporter for a ``progress`` argument: a callable as it is, ``True`` for
    :func:`log_progress`, ``None``/``False`` for none."""
    if callable(progress):
        return progress
    return log_progress if progress else None


class Stage:
    """One stage of work reported to a reporter (no-op without one)."""

    def __init__(self, report: Reporter | None, label: str, total: int, unit: str = "tasks"):
        self.report, self.label, self.total, self.unit = report, label, max(int(total), 0), unit
        self.done = 0
        self.t0 = time.monotonic()

    def _send(self) -> None:
        if self.report is not None:
            self.report(Event(self.label, self.done, self.total, self.unit,
                              seconds=time.monotonic() - self.t0))

    def start(self) -> Stage:
        self._send()
        return self

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.done < self.total:  # the last one is sent by finish()
            self._send()

    def finish(self) -> None:
        self.done = self.total
        self._send()


@contextlib.contextmanager
def stage(progress, label: str, total: int, unit: str = "tasks") -> Iterator[Stage]:
    """``with stage(progress, "Reading", n) as s: ... s.advance()``; finished on exit (also when
    the work fails, so that a bar is closed before the error is shown)."""
    s = Stage(reporter(progress), label, total, unit).start()
    try:
        yield s
    finally:
        s.finish()


def message(progress, text: str, label: str = "") -> None:
    """Send a one-off line to the reporter of ``progress`` (if any)."""
    report = reporter(progress)
    if report is not None:
        report(Event(label, message=text))
