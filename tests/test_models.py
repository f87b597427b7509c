"""The architecture registry (``landcover.models``): every declared network builds and behaves as
declared, the config takes its choices from it, and nothing outside the package names one."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from landcover import models
from landcover.bundle import BundleMeta
from landcover.config import Config, load_config
from landcover.errors import ConfigError, ModelError
from landcover.models import (
    architecture,
    architecture_names,
    build_model,
    check_patch,
    custom_objects,
    default_architecture,
    model_input_shape,
    model_inputs,
    rebuild_for_window,
    variable_date_architectures,
)

ROOT = Path(__file__).resolve().parents[1]
ALL = architecture_names()
NAMES = tuple(a.name for a in models.architectures() if not a.pixel)  # the networks
TINY = dict(filters=2, layers=1, kernel=3, head_kernel=1, dropout=0.0, norm="layer")


def spec(name: str, **kw) -> dict:
    return dict(TINY, architecture=name, **kw)


def series(t: int, h: int = 8, w: int = 8, f: int = 3, n: int = 2) -> np.ndarray:
    return np.random.default_rng(t).normal(size=(n, t, h, w, f)).astype(np.float32)


def predict(model, x):
    """Logits of ``x``; networks that take the dates get days 0, 10, 20 ..."""
    days = np.arange(x.shape[1], dtype=np.float32) * 10
    return np.asarray(model.predict_on_batch(model_inputs(model, x, days)))


def series_shape(model):
    return tuple(model.inputs[0].shape)


# ------------------------------------------------------------------------------------ the networks
@pytest.mark.parametrize("name", NAMES)
def test_every_architecture_builds_and_gives_logits_of_the_right_shape(name):
    s = spec(name)
    model = build_model(s, model_input_shape(s, 3, 9, 7, 3), 4, absent=[2])
    assert model.name == name and series_shape(model) == (None,) + model_input_shape(s, 3, 9, 7, 3)
    assert len(model.inputs) == (2 if architecture(name).takes_dates else 1)
    assert model.get_layer("logits") is not None and model.get_layer("class_mask") is not None
    out = predict(model, series(3, 9, 7))
    assert out.shape == (2, 9, 7, 4) and np.isfinite(out).all()
    assert (out[..., 2] == -1e4).all()  # the absent class is masked


@pytest.mark.parametrize("name", NAMES)
def test_variable_dates_is_what_the_network_accepts(name):
    arch = architecture(name)
    s = spec(name)
    shape = model_input_shape(s, 3, 8, 8, 3)
    if arch.variable_dates:
        assert shape[0] is None
        model = build_model(s, shape, 3)
        for t in (3, 5):
            assert predict(model, series(t)).shape == (2, 8, 8, 3)
    else:
        assert shape[0] == 3
        assert series_shape(build_model(s, shape, 3))[1] == 3
        with pytest.raises(ValueError, match="number of dates must be fixed"):
            build_model(s, (None, 8, 8, 3), 3)
    assert (name in variable_date_architectures()) == arch.variable_dates


def test_rebuild_for_another_window_keeps_the_weights():
    for name in NAMES:
        s = spec(name)
        model = build_model(s, model_input_shape(s, 3, 8, 8, 3), 3, absent=[1])
        meta = {"architecture": s, "classes": [{}, {}, {}], "output": {"absent_classes": [1]},
                "input": {"patch_size": 8, "time_steps": 3, "features": ["a", "b", "c"],
                          "variable_time_steps": architecture(name).variable_dates}}
        wide = rebuild_for_window(model, BundleMeta.from_json(meta), 12)
        assert series_shape(wide)[2:4] == (12, 12)
        if not models.streams_dates(s):
            assert rebuild_for_window(model, BundleMeta.from_json(meta), 8) is model
            for u, v in zip(model.get_weights(), wide.get_weights()):
                np.testing.assert_array_equal(u, v)
        else:  # its streamed network, with the same predictions
            same = rebuild_for_window(model, BundleMeta.from_json(meta), 8)
            assert same is not model and series_shape(same)[2:4] == (8, 8)
            np.testing.assert_allclose(predict(same, series(3)), predict(model, series(3)),
                                       atol=1e-5)
        out = predict(wide, series(3, 12, 12))
        assert out.shape == (2, 12, 12, 3) and (out[..., 1] == -1e4).all()
        del meta["input"]["variable_time_steps"]  # older bundles: the registry decides
        old = BundleMeta.from_json(meta)
        assert old.input.variable_time_steps == architecture(name).variable_dates
        assert series_shape(rebuild_for_window(model, old, 12))[1] == series_shape(model)[1]
    meta["architecture"] = spec("resnet")
    with pytest.raises(ModelError, match="unknown architecture 'resnet'"):
        rebuild_for_window(model, BundleMeta.from_json(meta), 12)


@pytest.mark.parametrize("norm", ["layer", "batch", "none", "group"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_streamed_convlstm_predicts_what_the_trained_network_does(norm, precision):
    """The streamed network of ``convlstm`` (every layer stepped date by date, one convolution
    for the four gates) gives the trained network's logits, with any normalisation; ``group``
    (over all dates) keeps the trained network."""
    s = dict(TINY, architecture="convlstm", filters=4, layers=3, norm=norm)
    model = build_model(s, model_input_shape(s, 5, 10, 10, 3), 3)
    rng = np.random.default_rng(4)
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    for k, w in enumerate(model.weights):
        if "variance" in w.path:
            weights[k] = np.abs(weights[k]) + 0.5
    model.set_weights(weights)  # moving statistics that are not 0 and 1
    meta = {"architecture": s, "classes": [{}, {}, {}], "output": {},
            "input": {"patch_size": 10, "time_steps": 5, "features": ["a", "b", "c"],
                      "variable_time_steps": True}}
    net = rebuild_for_window(model, BundleMeta.from_json(meta), 14, precision)
    streamed = norm != "group"
    assert any(type(layer).__name__ == "StreamedConvLSTM" for layer in net.layers) == streamed
    for t in (1, 5, 7):
        x = series(t, 14, 14)
        ref = build_model(s, model_input_shape(s, t, 14, 14, 3), 3)
        ref.set_weights(weights)
        want, got = predict(ref, x), predict(net, x)
        if precision == "float32":
            # the two networks sum the same products in another order (one convolution of [x, h]
            # against two): float32 rounding can differ by about eps per term of each sum, and it
            # compounds over the recurrence (t dates x 3 layers) and the sum's k*k*(F+filters)
            # terms, relative to the logits' size. A wrong weight or gate moves them by ~0.1.
            terms = s["kernel"] ** 2 * (3 + s["filters"])
            atol = t * s["layers"] * terms * np.finfo(np.float32).eps * np.abs(want).max()
            np.testing.assert_allclose(got, want, atol=atol, rtol=0)
        else:  # bfloat16 computations: close, most pixels the same class
            assert np.abs(got - want).mean() < 0.1 * np.abs(want).mean()  # 0.3-4 % seen
            assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.95  # 98-100 % seen


def test_a_bfloat16_streamed_convlstm_rounds_only_its_convolutions():
    """Under ``mixed_bfloat16`` the streamed ConvLSTM convolves in bfloat16 and computes its
    gates and states in float32. Inputs, weights and sums that bfloat16 holds exactly (x in
    {-1, 0, 1}, weights in quarters up to 0.5, |z| <= 36 quarters: 8 significant bits) make one
    date's convolution exact, so its output is the float32 layer's to float32 rounding; gates in
    bfloat16 would round it to 8 bits (relative 2^-9, ~2e-3)."""
    import keras

    from landcover.models.layers import StreamedConvLSTM

    rng = np.random.default_rng(0)
    inp = keras.Input((1, 6, 6, 2))
    trained = keras.Model(inp, keras.layers.ConvLSTM2D(2, 3, padding="same",
                                                       name="convlstm1")(inp))
    trained.set_weights([rng.integers(-1, 3, w.shape).astype(np.float32) / 4
                         for w in trained.get_weights()])
    x = rng.integers(-1, 2, (3, 1, 6, 6, 2)).astype(np.float32)
    out = {}
    for policy in ("float32", "mixed_bfloat16"):
        before = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            layer = StreamedConvLSTM(2, 1, 3, "none", name="convlstm")
        finally:
            keras.config.set_dtype_policy(before)
        layer(x)  # builds
        layer.take_weights(trained)
        out[policy] = np.asarray(layer(x))
        assert out[policy].dtype == np.float32
        assert layer.cell.compute_dtype == "float32"
        assert [s.conv_dtype for s in layer.cell.steps] == [policy.removeprefix("mixed_")]
        assert all(s.dtype == "float32" for s in layer.cell.get_initial_state(1))
    np.testing.assert_allclose(out["mixed_bfloat16"], out["float32"], rtol=1e-6, atol=1e-7)
    assert np.abs(out["float32"]).max() > 0.1  # the gates did not all close


def test_a_convlstm_layer_the_step_does_not_compute_is_refused():
    import keras

    from landcover.models.layers import ConvLSTMStep

    step = ConvLSTMStep(2, (3, 3))
    step.build((None, 6, 6, 3))
    for kw in ({"activation": "relu"}, {"recurrent_activation": "hard_sigmoid"},
               {"use_bias": False}, {"dilation_rate": 2}):
        layer = keras.layers.ConvLSTM2D(2, 3, padding="same", **kw)
        layer.build((None, 4, 6, 6, 3))
        with pytest.raises(ValueError, match="can be streamed"):
            step.take(layer)
    layer = keras.layers.ConvLSTM2D(2, 3, padding="same")
    layer.build((None, 4, 6, 6, 3))
    step.take(layer)  # Keras' defaults: taken


def test_saved_models_load_with_the_custom_objects_in_safe_mode(tmp_path):
    import keras

    assert {"TemporalMean", "ClassMask", "TemporalAttention", "DayEncoding"} <= \
        set(custom_objects())
    for name in NAMES:
        s = spec(name)
        model = build_model(s, model_input_shape(s, 2, 8, 8, 3), 3, absent=[0])
        model.save(tmp_path / f"{name}.keras")
        again = keras.models.load_model(tmp_path / f"{name}.keras", custom_objects=custom_objects(),
                                        compile=False, safe_mode=True)
        x = series(2)
        np.testing.assert_allclose(predict(again, x), predict(model, x), rtol=1e-6)


# ------------------------------------------------------------------------------------ the registry
def test_unknown_architecture_errors_list_the_known_names():
    with pytest.raises(ValueError, match=re.escape(f"unknown architecture 'resnet'; one of "
                                                   f"{', '.join(ALL)}")):
        architecture("resnet")
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build_model(spec("resnet"), (None, 8, 8, 3), 3)


def test_config_takes_choices_and_default_from_the_registry():
    # the default is auto (landcover.auto), whose network is the registry's default
    assert Config().train.model.architecture == "auto"
    assert architecture(default_architecture()).default
    assert [a.name for a in models.architectures() if a.default] == [default_architecture()]
    with pytest.raises(ConfigError, match=re.escape(
            f"train.model.architecture: 'resnet' is not one of {', '.join(ALL)}, auto")):
        load_config(None, ["train.model.architecture=resnet"])
    for name in ALL:
        assert load_config(None, [f"train.model.architecture={name}"]).train.model.architecture \
            == name


def test_check_patch_only_for_down_sampling_architectures():
    for name in NAMES:
        problem = check_patch(spec(name, layers=5), 8, 8)
        if architecture(name).downsamples:
            assert problem == ("train.model.layers: 5 down-sampling levels are too many for 8x8 "
                               "patches; use at most 4")
            assert check_patch(spec(name, layers=4), 8, 8) is None
        else:
            assert problem is None
    model = load_config(None, ["train.model.architecture=convlstm"]).train.model
    assert check_patch(model, 16, 16) is None  # a ModelConfig works too


EXTRA = '''
from landcover.models import Architecture


def build(inputs, spec):
    from keras import layers

    from landcover.models.layers import TemporalMean

    return layers.Conv2D(int(spec["filters"]), 1, name="extra_conv")(TemporalMean()(inputs))


ARCHITECTURES = (Architecture("{name}", build, variable_dates=True, downsamples=False,
                              summary="the mean over dates, then a 1x1 convolution"),)
'''


@pytest.fixture
def extra_module(tmp_path, monkeypatch):
    """A declaring module in a temporary folder on ``landcover.models.__path__``."""
    added = []

    def add(module: str, name: str):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(EXTRA.format(name=name)))
        added.append(module)
        monkeypatch.setattr(models, "__path__", [*models.__path__, str(tmp_path)])
        models._registry.cache_clear()

    yield add
    models._registry.cache_clear()
    for module in added:
        sys.modules.pop(f"landcover.models.{module}", None)


def test_an_architecture_declared_in_a_new_module_is_found(extra_module):
    extra_module("zz_extra_arch", "mean_conv")
    assert architecture_names()[-1] == "mean_conv" and set(NAMES) < set(architecture_names())
    assert "mean_conv" in variable_date_architectures()
    cfg = load_config(None, ["train.model.architecture=mean_conv"])
    s = dict(TINY, architecture=cfg.train.model.architecture)
    model = build_model(s, model_input_shape(s, 4, 8, 8, 3), 5)
    assert model.name == "mean_conv"
    assert np.asarray(model.predict_on_batch(series(6))).shape == (2, 8, 8, 5)


def test_an_architecture_declared_twice_is_refused(extra_module):
    extra_module("zz_twice", NAMES[0])
    with pytest.raises(RuntimeError, match=f"architecture '{NAMES[0]}' is declared twice"):
        architecture_names()


def test_the_config_and_the_registry_do_not_import_keras():
    code = ("import sys, landcover.config, landcover.cli.train, landcover.models as m; "
            "m.architecture_names(); m.check_patch({'architecture': m.default_architecture(), "
            "'layers': 2}, 8, 8); print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------- named in one module only
def test_default_yaml_comment_lists_every_architecture():
    line = next(ln for ln in (ROOT / "configs" / "default.yaml").read_text().splitlines()
                if ln.strip().startswith("architecture:"))
    comment = line.split("#", 1)[1]
    assert all(re.search(rf"\b{n}\b", comment) for n in ALL), line


def test_no_module_outside_landcover_models_names_an_architecture():
    # the networks only: random_forest is also the train.baseline value, and landcover.pixel
    # implements the pixel classifiers (their parameters are declared in landcover.models.pixel)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, NAMES)) + r")\b")
    found = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
             for path in sorted((ROOT / "landcover").rglob("*.py"))
             if "models" not in path.relative_to(ROOT / "landcover").parts
             for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


def test_a_hidden_head_layer_is_built_and_follows_the_network_to_other_windows():
    """``train.model.head_units``: a 1x1 ReLU convolution before the logits, its weights taken
    by the restatement for another window (the streamed convlstm)."""
    s = dict(TINY, architecture="convlstm", filters=4, layers=1, head_units=8)
    model = build_model(s, model_input_shape(s, 3, 8, 8, 3), 3)
    assert model.get_layer("head_hidden").get_weights()[0].shape == (1, 1, 4, 8)
    assert "head_hidden" not in [layer.name for layer in build_model(
        dict(s, head_units=0), (None, 8, 8, 3), 3).layers]
    meta = {"architecture": s, "classes": [{}, {}, {}], "output": {},
            "input": {"patch_size": 8, "time_steps": 3, "features": ["a", "b", "c"],
                      "variable_time_steps": True}}
    wide = rebuild_for_window(model, BundleMeta.from_json(meta), 12)
    np.testing.assert_array_equal(wide.get_layer("head_hidden").get_weights()[0],
                                  model.get_layer("head_hidden").get_weights()[0])
    x = series(3, 8, 8)
    np.testing.assert_allclose(predict(rebuild_for_window(model, BundleMeta.from_json(meta), 8), x),
                               predict(model, x), atol=1e-5)
