"""What a user hits in the first hour (issue 24, points 4, 7 and 8): one-line errors instead of
tracebacks, warnings where a run would go on silently, nothing half-written or left behind."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from conftest import one_line_error  # noqa: E402
from landcover.cli.main import cli  # noqa: E402
from test_smooth import noisy_fields, write_probabilities  # noqa: E402


@pytest.fixture
def probs(tmp_path):
    """A 96 x 96 probability file of classify (three classes)."""
    prob, truth, _ = noisy_fields(size=96, seed=2)
    write_probabilities(tmp_path / "p.tif", prob, np.ones(truth.shape, bool))
    return tmp_path / "p.tif"


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# ------------------------------------------------------------------------------------- smooth
def test_smooth_of_a_truncated_input_names_the_input(runner, probs, tmp_path):
    from rasterio.shutil import copy

    cog = tmp_path / "cog.tif"  # a COG: the header is first, so a cut file still opens
    copy(str(probs), str(cog), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=64)
    data = cog.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "smooth", str(cut), "--out", str(tmp_path / "m.tif")])
    one_line_error(res, 1, "cut.tif", "truncated")
    assert "m.tif" not in res.output
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("window", ["1001", "100000000000000000000000000001"])
def test_smooth_refuses_a_huge_window(runner, probs, tmp_path, window):
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "smooth", str(probs), "--out", str(tmp_path / "m.tif"),
                              "--set", f"classify.smooth.window={window}"])
    one_line_error(res, 2, "classify.smooth.window", window, "at most 99")
    assert _listing(tmp_path) == before


def test_smooth_never_overwrites_its_own_input(runner, probs, tmp_path):
    data = probs.read_bytes()
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "smooth", str(probs), "--out", str(probs), "--overwrite"])
    one_line_error(res, 2, "--out", "p.tif", "input would be overwritten")
    assert probs.read_bytes() == data and _listing(tmp_path) == before


def test_a_killed_smooth_leaves_a_store_the_next_run_removes(runner, probs, tmp_path,
                                                             monkeypatch):
    import landcover.smooth as sm
    from landcover.outputs import OutputSet

    def killed(self, *exc):  # what a SIGKILL leaves: the temporaries stay, the kernel unlocks
        self._lock.release()
        return False

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(OutputSet, "__exit__", killed)
        m.setattr(sm, "smooth_block", boom)
        with pytest.raises(RuntimeError):
            sm.smooth(probs, tmp_path / "m.tif")
    left = [p for p in _listing(tmp_path) if p.startswith(".m.tif")]
    assert left and all(".work-" in p for p in left), left
    res = runner.invoke(cli, ["-q", "smooth", str(probs), "--out", str(tmp_path / "m.tif")])
    assert res.exit_code == 0, res.output
    assert not [p for p in _listing(tmp_path) if p.startswith(".m.tif")]
