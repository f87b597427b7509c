"""Progress: reports from inside a running task, the overall bar of a command, and the bars drawn
on a terminal (rich) or the plain lines written elsewhere."""

from __future__ import annotations

import io
import re
import threading

import pytest

dask = pytest.importorskip("dask")

from landcover.cli.main import cli  # noqa: E402
from landcover.cli.progress import Bars  # noqa: E402
from landcover.progress import Event, Overall, Stage, message, part, stage  # noqa: E402
from landcover.scheduler import compute  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Record:
    def __init__(self):
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)


def windows_task(n: int, seen: list):
    """One task of ``n`` units (the windows of a block), reporting each."""
    p = part(n)
    for _ in range(n):
        p.advance()
    seen.append(n)
    return n


# ------------------------------------------------------------------------ parts of a task
@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_a_single_task_moves_before_it_ends(scheduler):
    """A map of one block is one task: its windows move the bar before the task ends."""
    record, seen = Record(), []
    with dask.config.set(scheduler=scheduler):
        (result,) = compute([dask.delayed(windows_task, pure=False)(8, seen)],
                            label="Classifying", show=record, unit="blocks")
    assert result == [8] and seen == [8]
    fractions = [e.fraction for e in record.events]
    assert record.events[0].done == 0 and record.events[-1].done == record.events[-1].total
    inside = [f for f in fractions if 0 < f < 1]
    assert len(inside) >= 7, fractions  # 1/8 .. 7/8 of the task, before it is counted done
    assert fractions == sorted(fractions), "never moves back"
    assert {e.unit for e in record.events} == {"blocks"}


def test_parts_of_several_tasks_add_up_and_end_whole():
    record = Record()
    tasks = [dask.delayed(windows_task, pure=False)(n, []) for n in (3, 5, 2, 4)]
    with dask.config.set(scheduler="threads", num_workers=2):
        compute(tasks, label="Cutting", show=record)
    last = record.events[-1]
    assert last.done == last.total == 4 and last.part == 0
    assert all(e.done + e.part <= e.total + 1e-9 for e in record.events)
    assert any(e.part > 0 for e in record.events)


def test_a_part_outside_a_reported_stage_does_nothing():
    p = part(3)
    p.advance(2)
    p.advance(5)
    with part(0) as q:
        q.advance()
    assert windows_task(4, []) == 4  # a task run without compute's reporter


def test_a_stage_counts_a_tasks_part_once_it_is_done():
    record = Record()
    s = Stage(record, "x", 2).start()
    from landcover.progress import running

    with running(s):
        p = part(2)
        p.advance()
        assert record.events[-1].part == pytest.approx(0.5)
        p.advance()  # the part ends; its task is not counted yet: the share stays
        assert record.events[-1].fraction == pytest.approx(0.5)
        s.advance()  # now the task is counted whole
        assert record.events[-1].done == 1 and record.events[-1].part == 0
    s.finish()


# ------------------------------------------------------------------------------- overall
def test_overall_counts_the_stages_as_steps_and_grows_when_more_come():
    record = Record()
    overall = Overall(record, "prepare", 2)
    for label in ("Reading", "Cutting", "Writing"):
        with stage(overall, label, 3) as s:
            s.advance()
    message(overall, "done")
    overall.close()
    steps = [(e.done, e.total) for e in record.events if e.label == "prepare"]
    assert steps[0] == (0, 2) and steps[-1] == (3, 3)
    assert (1, 2) in steps and (2, 2) in steps and (2, 3) in steps
    assert record.events.index(next(e for e in record.events if e.label == "prepare")) == 0
    assert [e.message for e in record.events if e.message] == ["done"]


# ---------------------------------------------------------------------------------- drawing
def test_bars_on_a_terminal_show_counts_rate_eta_and_the_overall_bar():
    out = Terminal()
    bars = Bars(out, width=140)
    overall = Overall(bars, "prepare", 2)
    with stage(overall, "Reading labels", 4) as s:
        for _ in range(3):
            s.advance()
        bars._live.refresh()
        screen = ANSI.sub("", out.getvalue())
    with stage(overall, "Writing dataset", 2) as s:
        s.advance()
    overall.close()
    bars.close()
    assert "3/4 tasks" in screen and "eta" in screen and "0/2 steps" in screen
    assert re.search(r"prepare\s.*━", screen) and re.search(r"\n  Reading labels\s.*75%", screen)
    # the overall bar moves with its open step: 3/4 of step 1 of 2
    assert re.search(r"prepare\s.*\b38%", screen), screen
    text = ANSI.sub("", out.getvalue())
    assert "Reading labels: 4 tasks in" in text and "Writing dataset: 2 tasks in" in text
    assert "prepare:" not in text  # an overall bar leaves no line


def test_bars_off_a_terminal_write_plain_lines_only():
    out = io.StringIO()
    bars = Bars(out)
    with stage(bars, "Reading QA", 3) as s:
        s.advance(3)
    with stage(bars, "Epoch 1/2", 5, unit="batches") as s:
        s.advance(5)
    message(bars, "epoch 1/2: loss 0.5")
    assert out.getvalue().splitlines() == ["Reading QA: 3 tasks in 0.0 s", "epoch 1/2: loss 0.5"]
    assert "\x1b[" not in out.getvalue()


def test_quiet_draws_nothing_and_stderr_only_otherwise(runner, scenes_dir):
    loud = runner.invoke(cli, ["info", str(scenes_dir)])
    assert loud.exit_code == 0, loud.output
    assert re.search(r"^Reading QA: \d+ tasks in \d+\.\d s$", loud.stderr, re.MULTILINE)
    assert "Reading QA" not in loud.stdout
    quiet = runner.invoke(cli, ["-q", "info", str(scenes_dir)])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_local_work_does_not_import_distributed():
    """Naming dask's local scheduler by its name makes dask import ``distributed`` (to look for a
    client): seconds a small map does not need. ``compute`` hands dask the function instead."""
    import subprocess
    import sys

    code = ("import sys, dask, dask.array as da\n"
            "from landcover.scheduler import compute, use_scheduler\n"
            "for name in ('threads', 'synchronous'):\n"
            "    with use_scheduler(name):\n"
            "        assert compute(da.ones(4, chunks=2).sum())[0] == 4\n"
            "print('distributed' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
