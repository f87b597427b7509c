"""Outputs that survive crashes, parallel runs, full disks and damaged datasets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import one_line_error
from landcover.cli.main import cli
from landcover.errors import DatasetError, OutputLockedError
from landcover.outputs import OutputSet

ROOT = Path(__file__).resolve().parents[1]


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# ------------------------------------------------------------------------------------ the lock
def test_a_second_run_into_the_same_output_is_refused(tmp_path):
    out = tmp_path / "ds.zarr"
    with OutputSet([out]):
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}") as info:
            OutputSet([out]).__enter__()
        assert "choose another --out" in info.value.cli_message()
    with OutputSet([out]):  # released: free again
        pass
    assert _listing(tmp_path) == []  # no lock file left behind


@pytest.mark.slow  # two classify processes: about 12 s on 2 cores
def test_two_classify_runs_into_one_output(field_series, field_bundle, runner, tmp_path):
    """The first run (another process) keeps its output; the second is refused at once."""
    pytest.importorskip("tensorflow")
    import rasterio

    out = tmp_path / "map.tif"
    scenes = [str(s) for s in field_series[0]]
    args = ["-q", "classify", *scenes, "--model", str(field_bundle), "--set",
            "classify.block_size=64"]
    first = subprocess.Popen([sys.executable, "-m", "landcover.cli.main", *args, "--out",
                              str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lock = tmp_path / ".map.tif.lock"
    t0 = time.monotonic()
    while not lock.exists() and first.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    second = runner.invoke(cli, [*args, "--out", str(out), "--overwrite"])
    one_line_error(second, 1, "is being written by another landcover run", f"pid {first.pid}")
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr.decode()
    reference = runner.invoke(cli, [*args, "--out", str(tmp_path / "ref.tif")])
    assert reference.exit_code == 0, reference.output
    with rasterio.open(out) as a, rasterio.open(tmp_path / "ref.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert not lock.exists() and not (tmp_path / ".map.tif.partial").exists()


# ------------------------------------------------------------------------------ atomic replace
KILLER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from landcover import outputs
    folder, stage = Path(sys.argv[1]), sys.argv[2]
    outputs._hook = lambda s: os._exit(9) if s == stage else None
    paths = [folder / "map.tif", folder / "map.qml", folder / "ds.zarr"]
    with outputs.OutputSet(paths, overwrite=True) as out:
        new = {}
        for p in paths:
            tmp = out.temporary(p)
            if p.suffix == ".zarr":
                tmp.mkdir()
                (tmp / "data").write_text("new")
            else:
                tmp.write_text("new")
            new[p] = tmp
        out.commit(new)
""")

STAGES = ["journal", "aside map.qml", "aside ds.zarr", "aside map.tif", "in map.qml",
          "in ds.zarr", "in map.tif", "none"]


def _content(p: Path) -> str:
    return (p / "data").read_text() if p.is_dir() else p.read_text()


@pytest.mark.parametrize("stage", STAGES)
def test_a_kill_inside_the_replace_leaves_a_complete_old_or_new_set(tmp_path, stage):
    paths = [tmp_path / "map.tif", tmp_path / "map.qml", tmp_path / "ds.zarr"]
    paths[0].write_text("old")
    paths[1].write_text("old")
    paths[2].mkdir()
    (paths[2] / "data").write_text("old")
    done = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path), stage], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    assert done.returncode == (0 if stage == "none" else 9), done.stderr.decode()
    with OutputSet(paths, overwrite=True):  # the next run recovers under the lock
        contents = {_content(p) for p in paths}
    assert len(contents) == 1, contents  # one complete set
    expected = "new" if stage in ("in map.tif", "none") else "old"
    assert contents == {expected}
    assert _listing(tmp_path) == ["ds.zarr", "map.qml", "map.tif"]  # nothing else left


# --------------------------------------------------------------------------- damaged datasets
def _chunk(ds: Path, name: str, index: int) -> Path:
    files = sorted(p for p in (ds / name / "c").rglob("*") if p.is_file())
    return files[index]


@pytest.mark.parametrize("array,damage", [("labels", "delete"), ("inputs", "flip"),
                                          ("weights", "flip")])
def test_a_damaged_or_missing_chunk_is_refused_naming_it(field_dataset, tmp_path, runner,
                                                         array, damage):
    from landcover.dataset import open_dataset

    ds = tmp_path / "ds.zarr"
    shutil.copytree(field_dataset, ds)
    open_dataset(ds, verify=True)  # intact
    chunk = _chunk(ds, array, 1)
    key = chunk.relative_to(ds / array).as_posix()
    if damage == "delete":
        chunk.unlink()
    else:
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    word = "missing" if damage == "delete" else "damaged"
    with pytest.raises(DatasetError, match=f"chunk {key} of array {array} is {word}"):
        open_dataset(ds, verify=True)
    result = runner.invoke(cli, ["-q", "train", str(ds), "--out", str(tmp_path / "model")])
    one_line_error(result, 1, f"chunk {key} of array {array}", "landcover prepare")
    assert not (tmp_path / "model").exists()


def test_damaged_blocks_of_an_interrupted_classification_are_computed_again(
        field_series, field_bundle, tmp_path, monkeypatch, caplog):
    pytest.importorskip("tensorflow")
    import rasterio

    from landcover import classify as lc
    from landcover.classify import run as lc_run

    meta, cfg = lc.resolve_config(field_bundle, None, ["classify.block_size=64"])
    scenes = lc.model_scenes(field_series[0], meta, cfg)
    out = tmp_path / "map.tif"
    lc.classify(scenes, field_bundle, tmp_path / "ref.tif", cfg, meta=meta)

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lc_run, "write_products", die)  # every block done, then killed
    with pytest.raises(KeyboardInterrupt):
        lc.classify(scenes, field_bundle, out, cfg, meta=meta)
    monkeypatch.undo()
    store = lc.partial_path(out)
    chunk = next(p for p in sorted((store / "classes").rglob("*")) if p.is_file() and
                 "c" in p.relative_to(store / "classes").parts)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="landcover"):
        summary = lc.classify(scenes, field_bundle, out, cfg, meta=meta, resume=True)
    assert "missing or damaged" in caplog.text
    assert summary["blocks_resumed"] == summary["blocks"] - 1
    with rasterio.open(out) as a, rasterio.open(tmp_path / "ref.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


# ---------------------------------------------------------------------------- resource checks
def test_the_memory_check_refuses_a_huge_window_at_once(field_series, field_bundle, runner,
                                                        tmp_path, monkeypatch):
    from landcover.classify import blocks, worker

    began = []  # before the model is loaded or a pixel is read
    monkeypatch.setattr(worker, "load_model", lambda *a, **k: began.append("model"))
    monkeypatch.setattr(blocks, "read_date_entry", lambda *a, **k: began.append("read"))
    result = runner.invoke(cli, ["-q", "classify", *map(str, field_series[0]), "--model",
                                 str(field_bundle), "--out", str(tmp_path / "map.tif"),
                                 "--set", "classify.window=8000"])
    one_line_error(result, 2, "classify.window=8000", "GB", "lower classify.window")
    assert began == []
    assert _listing(tmp_path) == []


def _mount_tmpfs(folder: Path, size: str, readonly: bool = False) -> None:
    folder.mkdir()
    options = f"size={size}" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    _mount_tmpfs(folder, "48k")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.fixture
def readonly_disk(tmp_path):
    folder = tmp_path / "ro"
    _mount_tmpfs(folder, "1m", readonly=True)
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def _evaluate_args(field_series, runner, tmp_path, field_bundle):
    made = runner.invoke(cli, ["-q", "classify", *map(str, field_series[0]), "--model",
                               str(field_bundle), "--out", str(tmp_path / "map.tif")])
    assert made.exit_code == 0, made.output
    return ["-q", "evaluate", str(tmp_path / "map.tif"), "--reference", str(field_series[1])]


def test_a_full_disk_is_one_line_and_leaves_nothing(field_series, field_bundle, field_dataset,
                                                    runner, tmp_path, small_disk):
    args = _evaluate_args(field_series, runner, tmp_path, field_bundle)
    result = runner.invoke(cli, [*args, "--out", str(small_disk / "accuracy")])
    one_line_error(result, 1, "No space left on device", "free some space")
    assert _listing(small_disk) == []
    # the same with a dataset: refused before any work, from the expected size
    result = runner.invoke(cli, ["-q", "prepare", *map(str, field_series[0]), "--labels",
                                 str(field_series[1]), "--out", str(small_disk / "ds.zarr")])
    one_line_error(result, 1, "kB free")
    assert _listing(small_disk) == []
    # training: checked before the first checkpoint (HDF5 crashes the process on a full disk)
    result = runner.invoke(cli, ["-q", "train", str(field_dataset), "--out",
                                 str(small_disk / "model"), "--set", "train.epochs=1",
                                 "--set", "train.model.architecture=convlstm"])
    one_line_error(result, 1, "free", "writing the checkpoints")
    assert _listing(small_disk) == []


def test_a_read_only_folder_is_one_line_before_any_work(field_series, field_bundle, runner,
                                                        tmp_path, readonly_disk):
    args = _evaluate_args(field_series, runner, tmp_path, field_bundle)
    for command in (args, ["-q", "prepare", *map(str, field_series[0]), "--labels",
                           str(field_series[1])]):
        t0 = time.monotonic()
        result = runner.invoke(cli, [*command, "--out", str(readonly_disk / "out")])
        one_line_error(result, 1, "not writable")
        assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------------- scenes and leftovers
def test_symlinked_scene_folders_are_stacked_and_loops_are_not_followed(field_series, tmp_path):
    from landcover.scenes import find_scenes

    scenes = [Path(s) for s in field_series[0]]
    top = tmp_path / "scenes"
    top.mkdir()
    for s in scenes[:2]:
        shutil.copytree(s, top / s.name)
    for s in scenes[2:]:
        (top / s.name).symlink_to(s, target_is_directory=True)
    (top / "loop").symlink_to(top, target_is_directory=True)
    found = find_scenes([top])
    assert [f.scene_id for f in found] == [s.name for s in scenes]


def test_stale_temporaries_and_locks_of_dead_runs_are_removed(tmp_path, caplog):
    out = tmp_path / "map.tif"
    stale = [tmp_path / ".map.tif.tmp-0badc0de", tmp_path / ".map.tif.tmp-1234abcd.plain.tif",
             tmp_path / ".map.qml.tmp-deadbeef", tmp_path / ".map.tif.old-00000000"]
    for p in stale:
        p.write_text("x")
    (tmp_path / ".map.tif.work-abcdef12").mkdir()
    (tmp_path / ".map.tif.lock").write_text("pid=999999 host=gone since=0")
    (tmp_path / ".map.tif.partial").mkdir()  # resumable work: kept
    keep = tmp_path / ".other.tif.tmp-0badc0de"  # another output's: not ours to remove
    keep.write_text("x")
    with caplog.at_level("INFO", logger="landcover"):
        with OutputSet([out, tmp_path / "map.qml"]):
            pass
    assert "taking over the lock" in caplog.text and "left-over" in caplog.text
    assert _listing(tmp_path) == [".map.tif.partial", ".other.tif.tmp-0badc0de"]


def test_a_journal_of_a_finished_replace_is_completed(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    aside = tmp_path / ".model.old-12345678"
    aside.mkdir()
    journal = tmp_path / ".model.replace.json"
    journal.write_text(json.dumps({"main": str(out), "entries": [
        {"final": str(out), "tmp": str(tmp_path / ".model.tmp-1"), "had_old": True,
         "aside": str(aside)}]}))
    with OutputSet([out], overwrite=True):
        pass
    assert _listing(tmp_path) == ["model"]


def test_prepare_and_train_refuse_settings_that_cannot_fit_in_memory(field_series, field_dataset,
                                                                     runner, tmp_path):
    result = runner.invoke(cli, ["-q", "prepare", *map(str, field_series[0]), "--labels",
                                 str(field_series[1]), "--out", str(tmp_path / "ds.zarr"),
                                 "--set", "prepare.patches.tile_size=4000000"])
    one_line_error(result, 2, "prepare.patches.tile_size=", "lower prepare.patches.tile_size")
    # a batch too large is halved until it fits (landcover.network_memory.fit_batch_size); a network whose
    # single patch cannot fit is refused, naming what to lower
    result = runner.invoke(cli, ["-q", "train", str(field_dataset), "--out",
                                 str(tmp_path / "model"), "--set", "train.model.filters=10000000",
                                 "--set", "train.model.architecture=convlstm"])
    one_line_error(result, 2, "train.batch_size=1", "lower train.shuffle_chunks or "
                   "train.model.filters")
    assert _listing(tmp_path) == []
