"""``landcover classify`` reads the next block while the model predicts one
(:class:`landcover.classify.blocks.ReadAhead`): the same map bit for bit, at most one block ahead,
finished blocks skipped, read errors raised by the block that needs the data."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")
rasterio = pytest.importorskip("rasterio")

from landcover import classify as lc
from landcover.classify import blocks as block_tasks
from landcover.classify import run as run_module
from landcover.classify.store import done_marker
from landcover.errors import RasterReadError
from landcover.scheduler import use_scheduler


def run(scenes, model, out, *sets, probabilities=False):
    meta, cfg = lc.resolve_config(model, None, list(sets))
    return lc.classify(lc.model_scenes(scenes, meta, cfg), model, out, cfg, meta=meta,
                       probabilities=probabilities, progress=False)


def read(path):
    with rasterio.open(path) as src:
        return src.read()


def plan_of(scenes, model, store, *sets):
    meta, cfg = lc.resolve_config(model, None, list(sets))
    plan, _, _ = lc.build_plan(lc.model_scenes(scenes, meta, cfg), model, cfg, meta, store)
    return plan


def test_read_ahead_gives_the_map_of_blocks_read_by_their_tasks(field_series, field_bundle,
                                                               tmp_path, monkeypatch):
    """9 blocks of 64 px: read ahead in the pool's threads (one block after the other) and read
    by each block's own task (the tasks of a cluster) give the same probabilities bit for bit."""
    reads = []
    real = block_tasks.read_date_entry

    def spy(*args, **kwargs):
        reads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    readied = []
    take_prepared = block_tasks.ReadAhead.take_prepared

    def prepared_spy(self, block, *args, **kwargs):
        got = take_prepared(self, block, *args, **kwargs)
        readied.append((tuple(block), got is not None))
        return got

    monkeypatch.setattr(block_tasks, "read_date_entry", spy)
    monkeypatch.setattr(block_tasks.ReadAhead, "take_prepared", prepared_spy)
    ahead = run(field_series[0], field_bundle, tmp_path / "ahead.tif", "classify.block_size=64",
                probabilities=True)
    assert ahead["blocks"] == 9
    pooled = sum(name.startswith("landcover-read") for name in reads)
    dates = len(reads) // 9
    assert pooled == 8 * dates  # every block but the first read ahead, in the pool
    assert not block_tasks.READERS  # the run's read-ahead is closed with it
    # every block but the first was readied (windows, first batch) beside its predecessor
    assert [ok for _, ok in readied] == [False] + [True] * 8, readied

    reads.clear()
    monkeypatch.setattr(run_module, "runs_here", lambda: False)
    with use_scheduler("threads"):
        by_task = run(field_series[0], field_bundle, tmp_path / "task.tif",
                      "classify.block_size=64", probabilities=True)
    assert not any(name.startswith("landcover-read") for name in reads)
    assert by_task["windows"] == ahead["windows"]
    np.testing.assert_array_equal(read(tmp_path / "ahead.tif"), read(tmp_path / "task.tif"))
    np.testing.assert_array_equal(read(tmp_path / "ahead_probabilities.tif"),
                                  read(tmp_path / "task_probabilities.tif"))


def test_read_ahead_holds_one_block_skips_finished_ones_and_gives_the_same_rasters(
        field_series, field_bundle, tmp_path):
    plan = plan_of(field_series[0], field_bundle, tmp_path / "store", "classify.block_size=64")
    assert plan.blocks()[:4] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    done = done_marker(plan, 0, 2)  # finished by an interrupted run: not read again
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    reader = block_tasks.ReadAhead(plan, ahead=1)
    try:
        reader.prefetch_after((0, 0))
        reader.prefetch_after((0, 0))
        assert list(reader.pending) == [(0, 1)]  # one block ahead, not two
        rows, cols = block_tasks.block_origins(plan, *block_tasks.block_area(plan, 0, 1))[2:]
        taken = reader.take((0, 1), rows, cols)
        assert not reader.pending
        direct = block_tasks.BlockData(plan, rows, cols)
        np.testing.assert_array_equal(taken.any_valid, direct.any_valid)
        for (s1, v1, ok1), (s2, v2, ok2) in zip(taken.dates, direct.dates):
            assert s1 is s2 or s1 == s2
            np.testing.assert_array_equal(v1, v2)
            np.testing.assert_array_equal(ok1, ok2)
        reader.prefetch_after((0, 1))
        assert list(reader.pending) == [(1, 0)]  # (0, 2) is finished
        # a block asked for over other pixels than were read ahead is read again, not mixed up
        other = reader.take((1, 0), rows, cols)
        np.testing.assert_array_equal(other.any_valid, direct.any_valid)
    finally:
        reader.close()
    assert not reader.pending


def test_a_read_error_ahead_is_raised_by_the_block_that_needs_it(field_series, field_bundle,
                                                                 tmp_path, monkeypatch):
    plan = plan_of(field_series[0], field_bundle, tmp_path / "store", "classify.block_size=64")

    def broken(plan, group, *box):
        raise RasterReadError(f"{group[0].source}: cannot read (test); re-download the scene")

    monkeypatch.setattr(block_tasks, "read_date_entry", broken)
    with block_tasks.reading_ahead(plan) as reader:
        reader.prefetch_after((0, 0))  # no error yet: it belongs to block (0, 1)
        rows, cols = block_tasks.block_origins(plan, *block_tasks.block_area(plan, 0, 1))[2:]
        with pytest.raises(RasterReadError, match="cannot read"):
            reader.take((0, 1), rows, cols)
        reader.prefetch_after((0, 1))
        reader.prepare_next((0, 1))  # readying block (0, 2) beside (0, 1): no error there
        assert list(reader.prepared) == [(0, 2)] and not reader.pending
        rows, cols = block_tasks.block_origins(plan, *block_tasks.block_area(plan, 0, 2))[2:]
        with pytest.raises(RasterReadError, match="cannot read"):
            reader.take_prepared((0, 2), rows, cols)
    assert not block_tasks.READERS


def test_the_products_warm_up_runs_beside_the_last_calls_not_the_features(
        field_series, field_bundle, tmp_path, monkeypatch):
    """The quicklook's imports (Python's lock for about 0.4 s) run once every block has been
    read, in the features thread after a block's last features: never beside a window's
    features, which they once held up 0.44 s."""
    spans, warm = [], []
    features = block_tasks.BlockData.features

    def timed_features(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return features(self, *args, **kwargs)
        finally:
            spans.append((t0, time.perf_counter()))

    def timed_warm():
        t0 = time.perf_counter()
        time.sleep(0.05)
        warm.append((t0, time.perf_counter(), threading.current_thread().name))

    monkeypatch.setattr(block_tasks.BlockData, "features", timed_features)
    monkeypatch.setattr(run_module, "warm_quicklook", timed_warm)
    summary = run(field_series[0], field_bundle, tmp_path / "map.tif", "classify.block_size=64")
    assert summary["blocks"] == 9 and (tmp_path / "map_quicklook.png").exists()
    assert len(warm) == 1 and warm[0][2].startswith("landcover-features")
    assert not [s for s in spans if s[0] < warm[0][1] and s[1] > warm[0][0]]
