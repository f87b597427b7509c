"""Model, loss and metric code uses only keras/keras.ops: the same code runs on the JAX backend
(skipped where JAX is not installed; the backend is chosen per process, hence the subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest

SCRIPT = r"""
import json, sys
import numpy as np
import keras
from landcover.bundle import BundleMeta
from landcover.losses import MaskedLoss
from landcover.metrics import ConfusionMatrix
from landcover.models import (architectures, build_model, model_input_shape, model_inputs,
                              rebuild_for_window, streams_dates)
assert keras.backend.backend() == sys.argv[1]
rng = np.random.default_rng(0)
logits = rng.normal(0, 2, (2, 16, 16, 3)).astype("float32")
y = rng.integers(0, 3, (2, 16, 16)).astype("uint8"); y[:, :4] = 255
w = np.where(y == 255, 0, rng.uniform(0.5, 2, y.shape)).astype("float32")
out = {"loss": {k: float(MaskedLoss(k, 3)(y, logits, w)) for k in ("ce", "focal", "dice", "ce+dice")}}
m = ConfusionMatrix(3); m.update_state(y, logits, w)
out["matrix"] = np.asarray(keras.ops.convert_to_numpy(m.matrix.value)).tolist()
spec = dict(filters=4, layers=2, kernel=3, head_kernel=1, dropout=0.1, norm="batch")
x = rng.normal(size=(4, 3, 16, 16, 5)).astype("float32")
yy = np.concatenate([y, y]); ww = np.concatenate([w, w])
out["architectures"] = [a.name for a in architectures() if not a.pixel]  # the networks
for arch in out["architectures"]:
    s = dict(spec, architecture=arch)
    model = build_model(s, model_input_shape(s, 3, 16, 16, 5), 3)
    model.compile("adam", loss=MaskedLoss("ce", 3), weighted_metrics=[ConfusionMatrix(3)])
    inputs = model_inputs(model, x, np.array([10, 50, 90], "float32"))  # days: date models
    hist = model.fit(inputs, yy, sample_weight=ww, batch_size=2, epochs=1, verbose=0)
    out[arch] = [hist.history["loss"][0], list(model.predict(inputs, verbose=0).shape)]
    if streams_dates(s):  # its streamed network predicts the same
        meta = {"architecture": s, "classes": [{}] * 3, "output": {},
                "input": {"patch_size": 16, "time_steps": 3, "features": list("abcde")}}
        net = rebuild_for_window(model, BundleMeta.from_json(meta), 16)
        out.setdefault("streamed", {})[arch] = float(np.abs(
            np.asarray(net.predict_on_batch(inputs)) - model.predict(inputs, verbose=0)).max())
print(json.dumps(out))
"""


def run(backend: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run([sys.executable, "-c", SCRIPT, backend], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # about 2 minutes on 2 cores (a JAX process per architecture)
@pytest.mark.skipif(find_spec("jax") is None or find_spec("tensorflow") is None,
                    reason="JAX (and TensorFlow) needed to compare backends")
def test_models_losses_and_metric_run_on_jax_with_the_same_numbers():
    jax, tf = run("jax"), run("tensorflow")
    for kind, value in tf["loss"].items():
        assert jax["loss"][kind] == pytest.approx(value, rel=1e-5)
    assert jax["matrix"] == tf["matrix"] and np.sum(tf["matrix"]) == 2 * 12 * 16
    assert jax["architectures"] == tf["architectures"]
    for arch in tf["architectures"]:
        assert np.isfinite(jax[arch][0]) and jax[arch][1] == [4, 16, 16, 3]
    assert "convlstm" in tf["streamed"] and jax["streamed"].keys() == tf["streamed"].keys()
    for backend in (tf, jax):
        assert max(backend["streamed"].values()) < 1e-4, backend["streamed"]


@pytest.mark.slow  # about a minute on 2 cores
@pytest.mark.skipif(find_spec("jax") is None, reason="JAX not installed")
def test_landcover_train_runs_on_jax(field_dataset, tmp_path):
    """The training loop, its input pipeline (no tf.data), checkpoints and bundle on JAX: the
    bundle loads and its network learned the fields."""
    out = tmp_path / "jax_model"
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run(
        [sys.executable, "-c", "from landcover.cli.main import main; main()", "-q", "train", str(field_dataset), "--out", str(out),
         "--set", "train.model.architecture=convlstm", "--set", "train.model.filters=8",
         "--set", "train.model.layers=1", "--set", "train.epochs=4",
         "--set", "train.batch_size=8", "--set", "train.learning_rate=0.005",
         "--set", "train.min_epoch_steps=0", "--set", "train.baseline=none", "--json"],
        env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["versions"]["backend"] == "jax"
    assert meta["training"]["epochs_run"] == 4
    assert meta["metrics"]["validation"]["overall_accuracy"] > 0.5
