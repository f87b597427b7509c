"""The one resume rule of train and classify (landcover.outputs.PartialRun): an interrupted run's
folder beside its output, resumed only under the same settings, started afresh otherwise."""

from __future__ import annotations

import logging

import pytest

from landcover.errors import ResumeError
from landcover.outputs import PartialRun, partial_path


def test_a_run_is_resumed_only_under_the_same_settings(tmp_path, caplog):
    out = tmp_path / "map.tif"
    run = PartialRun(out, "run.json", needs=("weights.h5",))
    assert run.path == partial_path(out) == tmp_path / ".map.tif.partial"
    kw = {"nothing": "nothing to resume", "other": "other settings ({keys})"}
    with pytest.raises(ResumeError, match="nothing to resume"):
        run.resume({"a": 1}, **kw)
    run.start()
    run.write({"a": 1, "b": [1, 2], "done": 3})
    with pytest.raises(ResumeError, match="nothing to resume"):  # a needed file is missing
        run.resume({"a": 1}, **kw)
    (run.path / "weights.h5").write_bytes(b"w")
    assert run.resume({"a": 1, "b": [1, 2]}, **kw)["done"] == 3
    with pytest.raises(ResumeError, match=r"other settings \(a, b\)"):
        run.resume({"a": 2, "b": [2]}, **kw)
    run.record.write_text("{not json")
    with pytest.raises(ResumeError, match="record is damaged"):
        run.resume({"a": 1}, **kw)
    with caplog.at_level(logging.WARNING, logger="landcover.outputs"):
        run.start()
    assert "discarding the interrupted run" in caplog.text
    assert list(run.path.iterdir()) == []
    run.discard()
    assert not run.path.exists()
