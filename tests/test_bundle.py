"""BundleMeta: the typed record of bundle.json, the upgrades of older bundles in one place."""

from __future__ import annotations

import datetime as dt

import pytest

from landcover.bundle import BundleMeta, model_file
from landcover.errors import ModelError

CURRENT = {
    "created": "2025-01-01T00:00:00+00:00",
    "architecture": {"architecture": "ltae", "filters": 4, "layers": 1, "norm": "group"},
    "input": {"layout": ["time", "y", "x", "feature"], "time_steps": 3,
              "variable_time_steps": True, "patch_size": 16, "features": ["red", "nir", "valid"],
              "bands": ["red", "nir"], "fill": "linear", "doy": False, "dtype": "float32",
              "takes_dates": True, "days": {"reference": "january1", "trained": [90.0, 250.0]}},
    "normalisation": {"mean": [0.1, 0.2], "std": [0.1, 0.1]},
    "dates": ["2024-04-01", "2024-06-01", "2024-09-01"], "dates_dropped": [],
    "classes": [{"index": 0, "code": 1, "name": "a", "color": "#000000", "weight": 1.0},
                {"index": 1, "code": 7, "name": "b", "color": "#ffffff", "weight": 1.0}],
    "output": {"kind": "logits", "classes": 2, "absent_classes": [1], "temperature": 1.5},
    "model": {"architecture": "ltae", "candidates": []},
    "landcover_model": 1, "content_hash": "sha256:0",
}


def test_a_current_bundle_reads_typed_and_writes_back_the_same_dict():
    meta = BundleMeta.from_json(CURRENT)
    assert meta.to_json() == CURRENT and list(meta.to_json()) == list(CURRENT)
    assert meta["input"] == CURRENT["input"] and dict(meta) == CURRENT  # the read-only mapping
    assert meta.input.patch_size == 16 and meta.input.valid_channel == 2
    assert meta.output.absent_classes == (1,) and meta.output.temperature == 1.5
    assert meta.class_codes == [1, 7] and meta.model_file == "model.keras"
    assert meta.window_statistics and not meta.is_pixel and meta.model_name == "ltae"
    days = meta.days([dt.date(2025, 4, 1), dt.date(2025, 9, 1)])
    assert days.tolist() == [90.0, 243.0]
    meta.to_json()["input"]["patch_size"] = 8  # a copy: the record does not change
    assert meta.input.patch_size == 16 and meta["input"]["patch_size"] == 16


def test_an_older_bundle_is_upgraded_in_from_json():
    old = {k: v for k, v in CURRENT.items() if k not in ("model", "dates_dropped")}
    old["architecture"] = {"architecture": "convlstm", "batch_norm": True}
    old["input"] = {k: v for k, v in CURRENT["input"].items()
                    if k not in ("variable_time_steps", "takes_dates", "days")}
    old["output"] = {"kind": "logits", "classes": 2}
    meta = BundleMeta.from_json(old)
    assert meta.input.variable_time_steps is True  # convlstm takes any number of dates
    assert not meta.input.takes_dates and meta.days([dt.date(2024, 4, 1)]) is None
    assert meta.output.absent_classes == () and meta.output.temperature == 1.0
    assert meta.dates_dropped == () and meta.model_name == "convlstm"
    assert meta.to_json() == old  # what the file holds is left as it is
    fixed = dict(old, architecture={"architecture": "unet"})
    assert BundleMeta.from_json({**fixed, "input": old["input"]}).input.variable_time_steps is False


def test_a_pixel_classifier_reads_the_same_way():
    meta = BundleMeta.from_json({**CURRENT, "architecture": {"architecture": "random_forest"},
                                 "model_file": "model.lgb.txt", "pixel": {"model_sha256": "x"}})
    assert meta.is_pixel and meta.model_file == "model.lgb.txt" and meta.pixel["model_sha256"]


def test_bad_fields_fail_as_before():
    other = BundleMeta.from_json({**CURRENT, "input": {**CURRENT["input"],
                                                        "days": {"reference": "epoch"}}})
    with pytest.raises(ModelError, match="counts the days of its dates as 'epoch'"):
        other.days([dt.date(2024, 4, 1)])
    for name in ("../x", "bundle.json", "", 3):
        with pytest.raises(ModelError, match="model_file"):
            model_file({"model_file": name})
    odd = BundleMeta.from_json({"config": "not a mapping", "dates": 5, "profiles": {}})
    assert odd.config == "not a mapping" and odd.dates == () and odd.profiles == ()
