"""``--scheduler``: where dask runs the work, and progress reports of it (:mod:`landcover.progress`).

===================  ==========================================================================
``threads``          the local threaded scheduler (default): one process, all cores
``synchronous``      one thread, in order (debugging, profiling)
``local:N``          a ``dask.distributed.LocalCluster`` of N worker processes (1 thread each)
``tcp://HOST:PORT``  an existing ``dask.distributed`` cluster; workers must see the same paths
===================  ==========================================================================

Every task opens its files by path, so results do not depend on the scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys

from landcover.errors import SchedulerError
from landcover.progress import Stage, reporter, running, stage

log = logging.getLogger(__name__)


def check_scheduler(spec: str | None) -> str:
    spec = (spec or "threads").strip()
    if spec in ("threads", "synchronous") or spec.startswith("tcp://") or \
            re.fullmatch(r"local:[1-9]\d*", spec):
        return spec
    raise SchedulerError(f"--scheduler {spec!r}: use threads, synchronous, local:N (N worker "
                         "processes) or tcp://HOST:PORT (an existing dask cluster)")


@contextlib.contextmanager
def use_scheduler(spec: str | None):
    """Make ``spec`` the dask scheduler inside the ``with`` block."""
    import dask

    spec = check_scheduler(spec)
    if spec in ("threads", "synchronous"):
        with dask.config.set(scheduler=spec):
            yield spec
        return
    from distributed import Client, LocalCluster

    if spec.startswith("local:"):
        workers = int(spec.split(":", 1)[1])
        log.info("starting a LocalCluster with %d worker processes", workers)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            with dask.config.set(scheduler=client.get):
                yield spec
        return
    try:
        client = Client(spec, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(f"--scheduler {spec}: cannot connect ({exc}); start the scheduler "
                             "or use local:N") from None
    with client:
        with dask.config.set(scheduler=client.get):
            yield spec


def parallel_tasks() -> int:
    """Tasks that may run at once in this process on the current scheduler (dask's threads; 1
    when synchronous or on a distributed client, whose workers have memory of their own)."""
    import os

    import dask

    scheduler = dask.config.get("scheduler", "threads")
    if not isinstance(scheduler, str) or scheduler in ("synchronous", "sync", "single-threaded"):
        return 1
    return max(1, int(dask.config.get("num_workers", None) or os.cpu_count() or 1))


def compute(*collections, label: str = "Working", show=None, unit: str = "tasks"):
    """``dask.compute`` reporting finished tasks to ``show`` (a :mod:`landcover.progress`
    reporter, ``True`` to log, ``None``/``False`` for none), on any scheduler; tasks of the local
    schedulers may report their own progress with :func:`landcover.progress.part`."""
    import dask

    report = reporter(show)
    client = None
    if "distributed" in sys.modules:  # a client exists only once distributed was imported
        from distributed import get_client

        try:
            client = get_client()
        except ValueError:
            pass
    if client is not None:
        futures = client.compute(list(collections))
        if report is not None:
            _poll(futures, label, report, unit)
        return tuple(client.gather(futures))
    get = local_get(dask.config.get("scheduler", None))
    if report is None:
        return dask.compute(*collections, scheduler=get)
    with _task_callback(label, report, unit):
        return dask.compute(*collections, scheduler=get)


def local_get(name):
    """The function of a local dask scheduler named in dask's config (``threads``, the default, or
    ``synchronous``; a function as it is). Given by name, dask would import ``distributed`` (when
    installed) to look for a client: 1.4 s of CPU, 3.4 s of wall time under load, for a small map
    that needs none."""
    import dask.local
    import dask.threaded

    if callable(name):
        return name
    if name in ("synchronous", "sync", "single-threaded"):
        return dask.local.get_sync
    return dask.threaded.get


def _poll(futures, label: str, report, unit: str = "tasks") -> None:
    """Progress of distributed work: counts finished futures."""
    from distributed import wait

    with stage(report, label, len(futures), unit) as s:
        pending = list(futures)
        while pending:
            wait(pending, timeout=None, return_when="FIRST_COMPLETED")
            done = [f for f in pending if f.done()]
            pending = [f for f in pending if not f.done()]
            s.advance(len(done))
    for f in futures:
        if f.status == "error":
            f.result()  # re-raise the task's exception


@contextlib.contextmanager
def _task_callback(label: str, report, unit: str = "tasks"):
    """Reports from dask's local-scheduler callbacks (one stage per graph), with the parts that
    running tasks report (:func:`landcover.progress.part`)."""
    from dask.callbacks import Callback

    holder: dict = {}
    scope = contextlib.ExitStack()

    def start_state(dsk, state):
        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        holder["stage"] = Stage(report, label, max(total, 1), unit).start()
        scope.enter_context(running(holder["stage"]))

    def posttask(key, result, dsk, state, worker_id):
        if "stage" in holder:
            holder["stage"].advance()

    def finish(dsk, state, errored):
        scope.close()
        s = holder.pop("stage", None)
        if s is not None:
            s.finish()

    with scope, Callback(start_state=start_state, posttask=posttask, finish=finish):
        yield
