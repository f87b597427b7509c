"""The features a network makes from digital numbers (``classify.features_on: model``,
:class:`landcover.models.layers.InputFeatures`) are the host's (:mod:`landcover.features`), bit
for bit: the same float32 operations in the same order, on TensorFlow and on JAX (subprocess,
skipped without JAX)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest

pytest.importorskip("keras")

SCRIPT = r"""
import json, sys, types
import numpy as np
import keras
from landcover.features import _date_features, doy_sin_cos
from landcover.models.layers import InputFeatures
from landcover.stack import scale_dn

assert keras.backend.backend() == sys.argv[1]
rng = np.random.default_rng(int(sys.argv[2]))
N, T, B, H, W = 2, 3, 4, 5, 7
bands = [f"b{i}" for i in range(B)]
mean = rng.uniform(0.02, 0.3, B)  # float64, as a bundle's normalisation
std = rng.uniform(0.01, 0.1, B)
doy = np.array([17.0, 140.0, 301.0])
out = {}
for kind, lo, hi in (("uint16", 0, 65535), ("int16", -2000, 16000), ("uint8", 0, 255),
                     ("float32", -0.5, 1.5)):
    dn = rng.uniform(lo, hi, (N, T, B, H, W)).astype(kind)
    valid = rng.random((N, T, H, W)) > 0.3
    scenes = [types.SimpleNamespace(scale={b: float(rng.uniform(1e-5, 1e-4)) for b in bands},
                                    offset={b: float(rng.uniform(-0.3, 0.1)) for b in bands})
              for _ in range(T)]
    for with_doy in (True, False):
        host = np.empty((N, T, H, W, B + 1 + 2 * with_doy), np.float32)
        dates = np.zeros((N, T, 4 * B + 2), np.float32)
        for t, scene in enumerate(scenes):
            dates[:, t, :B] = [np.float32(scene.scale[b]) for b in bands]
            dates[:, t, B:2 * B] = [np.float32(scene.offset[b]) for b in bands]
            dates[:, t, 2 * B:3 * B] = mean.astype(np.float32)
            dates[:, t, 3 * B:4 * B] = std.astype(np.float32)
            dates[:, t, -2:] = doy_sin_cos(doy[t])
            for k in range(N):  # the host's path: landcover.classify.BlockData.features
                refl = scale_dn(dn[k, t], scene, bands, out=np.empty((B, H, W), np.float32))
                _date_features(np.moveaxis(refl, 0, -1), valid[k, t], mean, std,
                               doy[t] if with_doy else None, host[k, t])
        layer = InputFeatures(with_doy)
        model = keras.Model(i := [keras.Input((T, B, H, W), dtype=kind),
                                  keras.Input((T, H, W), dtype="uint8"),
                                  keras.Input((T, 4 * B + 2), dtype="float32")], layer(i))
        inside = np.asarray(model.predict_on_batch([dn, valid.astype(np.uint8), dates]))
        # a compiler may fuse DN x scale + offset into one rounding (XLA's FMA): from float32
        # rounding (u = 2^-24 a step) the bands then differ by at most
        # u (|DN scale| + 2 |refl| + 2 |refl - mean|) / std + 2 u |z|; twice that is allowed
        xs = np.abs(dn.astype(np.float64) * dates[..., :B, None, None]).transpose(0, 1, 3, 4, 2)
        refl = (dn.astype(np.float64) * dates[..., :B, None, None]
                + dates[..., B:2 * B, None, None]).transpose(0, 1, 3, 4, 2)
        z = host[..., :B].astype(np.float64)
        bound = 2 * 2.0 ** -24 * ((xs + 2 * np.abs(refl) + 2 * np.abs(refl - mean)) / std
                                  + 2 * np.abs(z))
        excess = np.abs(inside[..., :B] - z) / bound
        out[f"{kind} doy={with_doy}"] = [bool(np.array_equal(inside, host)),
                                         float(np.abs(inside - host).max()),
                                         float(excess.max()),
                                         bool(np.array_equal(inside[..., B:], host[..., B:])),
                                         list(inside.shape) == list(host.shape)]
print(json.dumps(out))
"""


def run(backend: str, seed: int = 0) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run([sys.executable, "-c", SCRIPT, backend, str(seed)], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_network_makes_the_hosts_features_bit_for_bit_on_tensorflow():
    """TensorFlow runs each operation as its own kernel: the host's roundings, bit for bit."""
    found = run("tensorflow")
    assert len(found) == 8
    for case, (equal, diff, _, _, shape) in found.items():
        assert shape, case
        assert equal, f"{case}: differs from the host's features by up to {diff}"


@pytest.mark.slow  # a JAX process: about 15 s on 2 cores
@pytest.mark.skipif(find_spec("jax") is None, reason="JAX is not installed")
def test_the_network_makes_the_hosts_features_on_jax_within_its_rounding():
    """XLA fuses DN x scale + offset into one rounding: the bands within the bound that
    rounding allows; validity and the day of year exact."""
    found = run("jax")
    assert len(found) == 8
    for case, (_, diff, excess, rest_equal, shape) in found.items():
        assert shape and rest_equal, case
        assert excess <= 1.0, f"{case}: {diff} off, {excess:.2f} of the rounding bound"
