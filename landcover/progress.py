"""Progress reports: the library says how far it is, the caller decides how to show it.

Long functions (``prepare``, ``train``, ``classify``, ``summarize``) take ``progress``: a callable
that receives :class:`Event` objects, or ``None``/``False`` for silence. The library never draws
anything itself; the command line passes a reporter that draws progress bars on stderr
(:class:`landcover.cli.progress.Bars`), a notebook could pass one that updates a widget, and
``True`` logs each finished stage at INFO level (:func:`log_progress`).

A stage is reported as ``Event(label, 0, total)`` when it starts, ``Event(label, done, total)`` as
it advances and once with ``done == total`` when it ends; ``Event(label, message=text)`` is a line
to show once (an epoch's scores). A stage opened while another is open is a step of it (an epoch of
a training run, a dask stage of ``prepare``); reporters may show the outer one as the command's
overall bar, moving with its open step.

Work inside one long task (the windows of a classified block) is reported with :func:`part`:
``with part(len(windows)) as p: ... p.advance(n)`` moves the stage whose tasks are running
(:func:`running`, which :func:`landcover.scheduler.compute` sets) by the share of the task that is
done, in ``Event.part``; without such a stage (no reporter, a distributed worker) it does nothing.
So a map of one block moves as its windows are predicted instead of jumping from 0 to 100 %.
"""

from __future__ import annotations

import contextlib
import logging
import threading
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
    part: float = 0.0  # shares of the running tasks already done, in units (see part())

    @property
    def fraction(self) -> float:
        """The share of the stage that is done, counting the running tasks' parts (0..1)."""
        if not self.total:
            return 0.0
        return min(1.0, (self.done + self.part) / self.total)


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
        self._parts: dict[int, float] = {}  # running Part -> its share done
        self._ended = 0.0  # shares of parts that ended, until their tasks are counted done
        self._lock = threading.Lock()

    def _part(self) -> float:
        with self._lock:
            part = sum(self._parts.values()) + self._ended
        return max(0.0, min(part, self.total - self.done - 1e-9)) if self.done < self.total \
            else 0.0

    def _send(self) -> None:
        if self.report is not None:
            self.report(Event(self.label, self.done, self.total, self.unit,
                              seconds=time.monotonic() - self.t0, part=self._part()))

    def start(self) -> Stage:
        self._send()
        return self

    def advance(self, n: int = 1) -> None:
        with self._lock:  # a task whose part ended is now counted whole
            self._ended = max(0.0, self._ended - n)
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


# ---------------------------------------------------------------------- progress inside a task
_RUNNING: list[Stage] = []  # stages whose tasks run in this process now (innermost last)
_RUNNING_LOCK = threading.Lock()


@contextlib.contextmanager
def running(s: Stage) -> Iterator[Stage]:
    """Make ``s`` the stage that :func:`part` reports to while its tasks run (the scheduler wraps
    a local ``dask.compute`` in it)."""
    with _RUNNING_LOCK:
        _RUNNING.append(s)
    try:
        yield s
    finally:
        with _RUNNING_LOCK:
            _RUNNING.remove(s)


class Part:
    """The progress of one running task, as a share of it (:func:`part`)."""

    def __init__(self, s: Stage | None, total: int):
        self.stage, self.total, self.done = s, max(int(total), 0), 0

    def advance(self, n: int = 1) -> None:
        s = self.stage
        if s is None or not self.total:
            return
        self.done = min(self.total, self.done + n)
        with s._lock:
            s._parts[id(self)] = self.done / self.total
        if self.done >= self.total:
            self._end()
        s._send()

    def _end(self) -> None:
        s = self.stage
        if s is None:
            return
        with s._lock:  # the task is whole now; its share stays until the scheduler counts it
            if s._parts.pop(id(self), None) is not None:
                s._ended += 1.0


    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._end()


def part(total: int) -> Part:
    """``n`` units of work inside the running task: ``p = part(n)`` then ``p.advance(k)`` as they
    are done (or ``with part(n) as p:``), reported as a share of the task to the stage whose
    tasks are running (a no-op without one). The part ends when all ``n`` are done or the
    ``with`` block is left."""
    with _RUNNING_LOCK:
        s = _RUNNING[-1] if _RUNNING else None
    return Part(s, total)


class Overall:
    """A reporter that shows the command's stages as the steps of an overall stage ``label`` of
    ``steps`` steps (more when more come), around ``report``: each stage that finishes while no
    other is open is one step. For commands whose library function reports its stages one after
    the other (``prepare``): ``progress=Overall(bars, "prepare", 7)``. Finished by :meth:`close`
    (or when the last step ends)."""

    def __init__(self, report: Reporter, label: str, steps: int, unit: str = "steps"):
        self.report, self.overall = report, Stage(report, label, steps, unit)
        self.open: set[str] = set()
        self.started = self.closed = False
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            o = self.overall
            if event.message is None and event.label != o.label and not self.closed:
                finished = bool(event.total) and event.done >= event.total
                if not self.started:
                    self.started = True
                    o.start()
                if not finished and event.label not in self.open and event.total:
                    self.open.add(event.label)
                    if o.done >= o.total:  # more steps than announced: one more
                        o.total = o.done + 1
                        o._send()
            self.report(event)
            if event.message is None and event.label in self.open and event.total and \
                    event.done >= event.total:
                self.open.discard(event.label)
                if not self.open and not self.closed:
                    o.advance()
                    if o.done >= o.total:  # the last step announced: the overall bar ends
                        o._send()

    def close(self) -> None:
        with self._lock:
            if self.started and not self.closed:
                self.closed = True
                if self.overall.done < self.overall.total:
                    self.overall.finish()
