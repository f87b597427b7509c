"""``--scheduler``: where dask runs the work, and a progress bar on stderr for it.

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
import time

from landcover.errors import SchedulerError

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


def compute(*collections, label: str = "Working", show: bool = True):
    """``dask.compute`` with a progress bar on stderr (task counts, any scheduler)."""
    import dask

    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        futures = client.compute(list(collections))
        if show:
            _poll(futures, label)
        return tuple(client.gather(futures))
    if not show:
        return dask.compute(*collections)
    with _TaskBar(label):
        return dask.compute(*collections)


def _poll(futures, label: str) -> None:
    """A bar for distributed work: counts finished keys on the scheduler."""
    import click
    from distributed import wait

    with click.progressbar(length=len(futures), label=label, file=sys.stderr) as bar:
        pending = list(futures)
        while pending:
            wait(pending, timeout=None, return_when="FIRST_COMPLETED")
            done = [f for f in pending if f.done()]
            pending = [f for f in pending if not f.done()]
            bar.update(len(done))
        for f in futures:
            if f.status == "error":
                f.result()  # re-raise the task's exception


class _TaskBar:
    """A click progress bar fed by dask's local-scheduler callbacks."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        import click
        from dask.callbacks import Callback

        bar_holder = {}

        def start_state(dsk, state):
            total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
            bar_holder["bar"] = click.progressbar(length=max(total, 1), label=self.label,
                                                  file=sys.stderr)
            bar_holder["bar"].__enter__()
            bar_holder["t"] = time.monotonic()

        def posttask(key, result, dsk, state, worker_id):
            bar = bar_holder.get("bar")
            if bar is not None:
                bar.update(1)

        def finish(dsk, state, errored):
            bar = bar_holder.pop("bar", None)
            if bar is not None:
                bar.__exit__(None, None, None)

        self._cb = Callback(start_state=start_state, posttask=posttask, finish=finish)
        self._cb.__enter__()
        return self

    def __exit__(self, *exc):
        self._cb.__exit__(*exc)
        return False
