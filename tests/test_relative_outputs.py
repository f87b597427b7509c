"""Every command takes a relative ``--out`` from any working directory, twice in a row, and a
replacement interrupted by a killed run (journal with relative or absolute paths) never blocks the
next run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rasterio")

from test_change import GRID, TABLE, planted  # noqa: E402
from test_evaluate import coarse_reference, write_map  # noqa: E402
from test_sample import known_maps, write  # noqa: E402
from test_smooth import noisy_fields, write_probabilities  # noqa: E402

from landcover.cli.main import cli  # noqa: E402
from landcover.maps import write_array_map  # noqa: E402
from landcover.outputs import OutputSet, recover  # noqa: E402


def no_hidden_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_evaluate_twice_into_a_relative_out_from_another_folder(runner, tmp_path, monkeypatch):
    (tmp_path / "inputs").mkdir()
    mp = write_map(tmp_path / "inputs" / "map.tif")
    ref, _ = coarse_reference(tmp_path / "inputs")
    (tmp_path / "work" / "demo").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    rel_map, rel_ref = os.path.relpath(mp), os.path.relpath(ref)
    for extra in ([], ["--overwrite"]):
        res = runner.invoke(cli, ["evaluate", rel_map, "--reference", rel_ref,
                                  "--out", "demo/accuracy", *extra])
        assert res.exit_code == 0, res.output
        assert (tmp_path / "work" / "demo" / "accuracy" / "evaluation.json").is_file()
        no_hidden_leftovers(tmp_path / "work" / "demo")


def test_smooth_change_and_sample_take_relative_outs(runner, tmp_path, monkeypatch):
    prob, truth, _ = noisy_fields(size=66, seed=1)
    write_probabilities(tmp_path / "p.tif", prob, np.ones(truth.shape, bool))
    a, b = planted()
    write_array_map(a, GRID, TABLE, tmp_path / "a.tif")
    write_array_map(b, GRID, TABLE, tmp_path / "b.tif")
    _, mapped = known_maps(seed=1)
    write(tmp_path / "m.tif", mapped)
    (tmp_path / "sub" / "out").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "sub")
    for extra in ([], ["--overwrite"]):
        for args in (["smooth", "../p.tif", "--out", "out/s.tif"],
                     ["change", "../a.tif", "../b.tif", "--out", "out/change"],
                     ["sample", "../m.tif", "--out", "out/sample.gpkg", "--count", "20",
                      "--design", "stratified", "--min-per-class", "5"]):
            res = runner.invoke(cli, ["-q", *args, *extra])
            assert res.exit_code == 0, (args, res.output)
        no_hidden_leftovers(tmp_path / "sub" / "out")
    assert (tmp_path / "sub" / "out" / "s.tif").is_file()
    assert (tmp_path / "sub" / "out" / "change").is_dir()
    assert (tmp_path / "sub" / "out" / "sample.gpkg").is_file()


def test_a_relative_commit_records_absolute_paths(tmp_path, monkeypatch):
    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    with OutputSet([Path("demo/report")], folders=[True]) as outputs:
        tmp = outputs.temporary()
        tmp.mkdir()
        (tmp / "a.txt").write_text("new")
        outputs.commit({Path("demo/report"): tmp})
    assert (tmp_path / "demo" / "report" / "a.txt").read_text() == "new"
    no_hidden_leftovers(tmp_path / "demo")


@pytest.mark.parametrize("committed", [True, False])
@pytest.mark.parametrize("relative", [True, False])
def test_a_stale_journal_of_a_killed_run_is_recovered(tmp_path, monkeypatch, committed, relative):
    """A run killed between renames left its journal (older versions wrote paths relative to their
    working directory): the next run, from another folder, finishes or rolls back, then works."""
    demo = tmp_path / "demo"
    demo.mkdir()
    final, aside, tmp = demo / "report", demo / ".report.old-1234abcd", demo / ".report.tmp-1234abcd"
    (aside if committed else final).mkdir()
    ((aside if committed else final) / "x").write_text("old")
    tmp.mkdir()
    (tmp / "x").write_text("new")
    if committed:
        os.replace(tmp, final)
    names = {k: (os.path.relpath(v, tmp_path) if relative else str(v))
             for k, v in {"final": final, "aside": aside, "tmp": tmp}.items()}
    journal = demo / ".report.replace.json"
    journal.write_text(json.dumps({"main": names["final"],
                                   "entries": [dict(names, had_old=True)]}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    recover(journal)
    assert (final / "x").read_text() == ("new" if committed else "old")
    no_hidden_leftovers(demo)
    with OutputSet([final], overwrite=True, folders=[True]) as outputs:  # the next run works
        t = outputs.temporary()
        t.mkdir()
        outputs.commit({final: t})
    no_hidden_leftovers(demo)


def test_a_journal_that_cannot_be_acted_on_is_one_line(tmp_path, monkeypatch):
    """A rename the recovery needs fails (a read-only folder, a full disk): an OutputError naming
    the journal and what to do, not a traceback."""
    import landcover.outputs as outputs_module
    from landcover.errors import OutputError

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / ".m.old-1").mkdir()  # killed before the new map went in: roll back
    journal = demo / ".m.replace.json"
    journal.write_text(json.dumps({"main": str(demo / "m"), "entries": [
        {"final": str(demo / "m"), "aside": str(demo / ".m.old-1"), "tmp": str(demo / ".m.tmp-1"),
         "had_old": True}]}))

    def refuse(a, b):
        raise PermissionError(13, "Permission denied", str(a))

    monkeypatch.setattr(outputs_module.os, "replace", refuse)
    with pytest.raises(OutputError, match=r"\.m\.replace\.json.*delete the journal"):
        recover(journal)
