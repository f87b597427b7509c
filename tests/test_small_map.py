"""Small maps start fast (issue 27, item 4): a pixel classifier's map is made without Keras or
TensorFlow and predicts each pixel once, a map of one window is predicted in one call of one
window, and a map of one block reports its progress before the block ends."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from landcover.classify import tiling
from landcover.classify.plan import BATCH_PIXELS
from landcover.config import ClassifyConfig
from landcover.grid import Grid


def _grid(h: int, w: int) -> Grid:
    return Grid("EPSG:32632", (30.0, 0.0, 0.0, 0.0, -30.0, 0.0), w, h)


def test_a_small_map_is_one_window_in_one_call_of_one_window():
    t = tiling(ClassifyConfig(), _grid(100, 101), 30, 47)
    assert (t["window"], t["overlap"], t["batch_size"]) == (117, 16, 1)
    big = tiling(ClassifyConfig(), _grid(2048, 2048), 30, 12)
    assert big["batch_size"] == max(1, BATCH_PIXELS["cpu"] // big["window"] ** 2)
    pixel = tiling(ClassifyConfig(), _grid(100, 101), 30, 47, context=False)
    assert (pixel["window"], pixel["overlap"], pixel["blend"], pixel["batch_size"]) == \
        (101, 0, 0, 1)
    pixel = tiling(ClassifyConfig(), _grid(1000, 1000), 30, 12, context=False)
    assert pixel["overlap"] == 0 and pixel["block"] % pixel["window"] == 0
    # an overlap asked for is kept
    asked = tiling(ClassifyConfig(overlap=8), _grid(100, 101), 30, 47, context=False)
    assert asked["overlap"] == 8


@pytest.fixture(scope="module")
def pixel_case(tmp_path_factory):
    """Scenes of the crop fields (48 px, 4 dates) and a random-forest bundle fitted on seeded
    pixels (20 rounds): ``(scenes, bundle folder)``."""
    from landcover.bundle import write_metadata
    from landcover.config import load_config
    from landcover.features import feature_names
    from landcover.pixel_model import bundle_attrs, fit_pixel_classifier, pixel_features
    from landcover.scenes import find_scenes
    from landcover.stack import date_groups
    from landcover.synthetic import FIELD_CLASSES, write_field_series

    root = tmp_path_factory.mktemp("small_map")
    scenes, _ = write_field_series(root / "scenes", size=48, dates=4, seed=3)
    cfg = load_config(None, ["train.model.architecture=random_forest"])
    bands = list(cfg.scenes.bands)
    dates = [d.isoformat() for d, _ in date_groups(find_scenes([str(s) for s in scenes]))]
    meta = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": cfg.to_dict()["train"]["model"],
        "input": {"layout": ["time", "y", "x", "feature"], "time_steps": len(dates),
                  "variable_time_steps": False, "patch_size": 16,
                  "features": feature_names(bands, True), "bands": bands, "fill": "zero",
                  "doy": True, "dtype": "float32"},
        "normalisation": {"mean": [0.05, 0.08, 0.07, 0.25, 0.2, 0.12],
                          "std": [0.02, 0.03, 0.03, 0.1, 0.05, 0.05], "bands": bands},
        "dates": dates, "dates_dropped": [],
        "classes": [{"index": i, "code": c, "name": n, "color": col, "weight": 1.0}
                    for i, (c, n, col) in enumerate(FIELD_CLASSES)],
        "ignore_label": 255, "output": {"kind": "log_probabilities", "classes": 4},
        "config": {"scenes": cfg.to_dict()["scenes"]},
    }
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    x = rng.normal(0, 1, (2000, len(dates), len(meta["input"]["features"]))).astype(np.float32)
    x[:, :, :len(bands)] += y[:, None, None] * 0.7
    x[:, :, len(bands)] = 1.0
    attrs = bundle_attrs(meta)
    model = fit_pixel_classifier("random_forest", pixel_features(x, attrs), y, num_classes=4,
                                 attrs=attrs, rounds=20)
    folder = root / "bundle"
    folder.mkdir()
    meta.update(model.to_files(folder))
    write_metadata(folder, meta)
    return scenes, folder


@pytest.mark.slow
def test_a_pixel_map_needs_no_keras_and_no_overlap(pixel_case, tmp_path):
    scenes, bundle = pixel_case
    code = ("import json, sys; from landcover.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(json.dumps(['keras' in sys.modules, 'tensorflow' in sys.modules]))")
    args = ["-q", "classify", *map(str, scenes), "--model", str(bundle), "--json"]
    done = subprocess.run([sys.executable, "-c", code, *args, "--out", str(tmp_path / "a.tif")],
                          capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout[:done.stdout.rindex("}") + 1])
    assert json.loads(done.stdout.splitlines()[-1]) == [False, False]
    assert summary["overlap"] == 0 and summary["predictions_per_pixel"] == 1.0
    # the map is the one windows with the former 16 px of context make
    from click.testing import CliRunner

    from landcover.cli.main import cli

    result = CliRunner().invoke(cli, [*args[:-1], "--out", str(tmp_path / "b.tif"), "--set",
                                      "classify.overlap=16", "--set", "classify.window=32"])
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
        assert len(np.unique(a.read(1))) > 1


def test_a_one_block_map_moves_before_its_block_ends(pixel_case, tmp_path):
    from landcover.classify import classify, model_scenes, resolve_config

    scenes, bundle = pixel_case
    meta, cfg = resolve_config(bundle)
    events = []
    summary = classify(model_scenes([str(s) for s in scenes], meta, cfg), bundle,
                       tmp_path / "map.tif", cfg, meta=meta, progress=events.append)
    assert summary["blocks"] == 1
    stage = [e for e in events if e.label == "Classifying"]
    assert stage and all(e.unit == "blocks" for e in stage)
    moving = [e.fraction for e in stage if e.done == 0 and 0 < e.fraction < 1]
    assert len(moving) >= len(scenes)  # a step a date read, then the model and its windows
    assert moving == sorted(moving) and stage[-1].fraction == 1.0


def test_only_the_thread_importing_keras_is_refused_the_deferred_libraries():
    import threading

    from landcover.runtime import _Refuse

    finder = _Refuse()
    with pytest.raises(ModuleNotFoundError, match="sklearn.base"):
        finder.find_spec("sklearn.base")
    with pytest.raises(ModuleNotFoundError, match="matplotlib.pyplot"):
        finder.find_spec("matplotlib.pyplot")
    assert finder.find_spec("scipy") is None and finder.find_spec("sklearnish") is None
    assert finder.refused == {"sklearn", "matplotlib"}
    seen = []
    other = threading.Thread(target=lambda: seen.append(finder.find_spec("sklearn")))
    other.start()
    other.join()
    assert seen == [None]  # another thread imports it as usual


def test_the_collector_is_paused_for_an_import_and_what_it_made_set_aside():
    import gc

    from landcover.runtime import _collector_paused

    def seen_by_the_collector(objects):  # a frozen object is in none of its generations
        ids = {id(o) for o in gc.get_objects()}
        return [id(o) in ids for o in objects]

    assert gc.isenabled()
    try:
        with _collector_paused():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]  # objects the collector tracks
        assert gc.isenabled() and not any(seen_by_the_collector(made))
        gc.disable()  # the caller's choice is kept: nothing paused, nothing set aside
        with _collector_paused():
            more = [[i] for i in range(1000)]
        assert not gc.isenabled() and all(seen_by_the_collector(more))
    finally:
        gc.enable()


@pytest.mark.slow
def test_keras_starts_without_scikit_learn_or_pyplot_and_their_parts_still_work():
    """Importing Keras for a map imports neither scikit-learn, matplotlib's pyplot nor pandas
    (about 1.9 s of its start); the parts of Keras that use them (its scikit-learn wrappers, its
    image galleries, its slicing of DataFrames) import them on first use, as tf.keras's do."""
    script = (
        "import sys\n"
        "from landcover.runtime import import_keras\n"
        "keras = import_keras()\n"
        "before = [m in sys.modules for m in ('sklearn', 'matplotlib', 'pandas')]\n"
        "wrapper = keras.wrappers.SKLearnClassifier(model=lambda X, y: None)\n"
        "import sklearn.base\n"
        "from keras.wrappers import SKLearnRegressor\n"
        "gallery = keras.visualization.plot_image_gallery\n"
        "import tensorflow as tf\n"
        "boxes = tf.keras.visualization.plot_bounding_box_gallery\n"
        "print(*before, isinstance(wrapper, sklearn.base.BaseEstimator),\n"
        "      issubclass(SKLearnRegressor, sklearn.base.RegressorMixin),\n"
        "      sys.modules[gallery.__module__].plt is not None,\n"
        "      sys.modules[boxes.__module__].patches is not None,\n"
        "      tf.keras.wrappers.SKLearnClassifier is keras.wrappers.SKLearnClassifier)\n"
        "import gc\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 100_000)\n"
        "import numpy as np, pandas as pd\n"
        "from keras.src.backend.tensorflow import trainer\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "model.compile(loss='mse')\n"
        "x = pd.DataFrame(np.ones((8, 3), np.float32))\n"
        "model.fit(x, pd.DataFrame(np.zeros((8, 2), np.float32)), epochs=1, verbose=0)\n"
        "print(model.predict(x, verbose=0).shape == (8, 2),\n"
        "      pd.DataFrame in trainer.array_slicing.ARRAY_TYPES)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    # the collector runs again, and the import's objects are out of its way; Keras takes
    # DataFrames (the trainer's slicing module, imported again, knows pandas)
    assert out == ["False"] * 3 + ["True"] * 9


def test_batches_by_the_device(monkeypatch):
    """classify.batch_pixels: null is one 256 px window a call on a CPU, 16 where an NVIDIA GPU
    is present (a call of one window leaves a GPU idle between calls); a value set is kept."""
    from dataclasses import replace

    monkeypatch.setattr("landcover.precision.NVIDIA_DEVICES", ("/nonexistent/nvidia0",))
    assert tiling(ClassifyConfig(), _grid(2048, 2048), 30, 12)["batch_size"] == 1
    monkeypatch.setattr("landcover.precision.NVIDIA_DEVICES", ("/",))  # a node that exists
    t = tiling(ClassifyConfig(), _grid(4096, 4096), 30, 12)
    assert t["batch_size"] == 16 * 256 ** 2 // t["window"] ** 2 == 17  # 244 px windows
    assert tiling(ClassifyConfig(), _grid(100, 101), 30, 47)["batch_size"] == 1  # one window
    mine = replace(ClassifyConfig(), batch_pixels=4 * 244 ** 2)
    assert tiling(mine, _grid(4096, 4096), 30, 12)["batch_size"] == 4
