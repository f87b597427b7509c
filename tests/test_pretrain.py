"""Self-supervised pretraining (landcover.pretrain): the masked objective, the encoder folder,
fine-tuning from it, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from landcover.errors import ModelError

TINY = ["train.model.architecture=convlstm", "train.model.filters=4", "train.model.layers=1",
        "prepare.patches.size=16", "pretrain.epochs=3", "pretrain.batch_size=8",
        "pretrain.max_pixels=16384", "pretrain.learning_rate=0.01"]


def _series(seed=0, b=3, t=5, s=6, n_bands=3, cloudy=0.3):
    rng = np.random.default_rng(seed)
    x = np.zeros((b, t, s, s, n_bands + 3), np.float32)
    valid = rng.random((b, t, s, s)) > cloudy
    x[..., :n_bands] = np.where(valid[..., None], rng.normal(size=(b, t, s, s, n_bands)), 0)
    x[..., n_bands] = valid
    x[..., n_bands + 1], x[..., n_bands + 2] = 0.5, 0.8  # day of year
    return x, valid


@pytest.mark.parametrize("fill", ["zero", "linear"])
def test_cloudy_observations_change_nothing(fill):
    """Whatever a cloudy observation's stored values, the encoder's input and the target and
    weights are the same: it is neither seen nor reconstructed."""
    from landcover.encoder.objective import hide

    x, valid = _series()
    days = np.array([0, 16, 40, 64, 100], float)
    other = x.copy()
    other[..., :3] = np.where(valid[..., None], x[..., :3], 1e3 * np.random.default_rng(1).normal(
        size=x[..., :3].shape))
    a = hide(x, days, 3, fill, np.random.default_rng(5), 0.3, 0.2)
    b = hide(other, days, 3, fill, np.random.default_rng(5), 0.3, 0.2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    weight = a[1][..., 3:]
    assert weight.sum() > 0 and not weight[~valid].any()


@pytest.mark.parametrize("fill", ["zero", "linear"])
def test_hidden_observations_never_reach_the_encoder(fill):
    """Changing the values of the hidden observations changes the target there and nothing the
    encoder sees; they are marked missing (valid 0) like a cloud."""
    from landcover.encoder.objective import hide

    x, valid = _series()
    days = np.array([0, 16, 40, 64, 100], float)
    inp, target = hide(x, days, 3, fill, np.random.default_rng(5), 0.3, 0.0)
    hidden = valid & (inp[..., 3] == 0)
    assert hidden.sum() > 10
    other = x.copy()
    other[..., :3] = np.where(hidden[..., None], 50.0, x[..., :3])
    inp2, target2 = hide(other, days, 3, fill, np.random.default_rng(5), 0.3, 0.0)
    np.testing.assert_array_equal(inp, inp2)
    assert not np.array_equal(target, target2)
    np.testing.assert_array_equal(target[~hidden], target2[~hidden])


def test_the_loss_counts_only_hidden_valid_values():
    """The reconstruction loss is the mean squared error over the weighted entries: a wrong
    prediction elsewhere costs nothing, a batch without a hidden value costs 0."""
    import keras

    from landcover.encoder.objective import masked_reconstruction

    loss = masked_reconstruction()
    target = np.zeros((1, 2, 2, 2, 4), np.float32)
    target[0, 0, 0, 0, 2] = 1.0  # one weighted value, target 0
    pred = np.full((1, 2, 2, 2, 2), 7.0, np.float32)
    pred[0, 0, 0, 0, 0] = 3.0
    assert float(keras.ops.convert_to_numpy(loss(target, pred))) == pytest.approx(9.0)
    target[..., 2:] = 0
    assert float(keras.ops.convert_to_numpy(loss(target, pred))) == 0.0


@pytest.fixture(scope="module")
def encoder(field_series, tmp_path_factory):
    """A tiny encoder pretrained on the crop-field scenes (2 epochs)."""
    from landcover.config import load_config
    from landcover.pretrain.run import pretrain
    from landcover.scenes import find_scenes

    scenes = field_series[0]
    cfg = load_config(None, TINY)
    out = tmp_path_factory.mktemp("encoder") / "enc"
    record = pretrain(find_scenes(scenes, profile=cfg.scenes.profile), out, cfg)
    return out, record


def test_pretrain_writes_an_encoder_with_its_provenance(encoder):
    out, record = encoder
    meta = json.loads((out / "encoder.json").read_text())
    assert meta["objective"]["kind"] == "masked_observations"
    assert meta["training"]["epochs_done"] == 3 and meta["training"]["steps"] > 0
    assert meta["encoder_layers"] == ["convlstm1", "convlstm1_ln"]
    assert meta["input"]["features"][-3:] == ["valid", "doy_sin", "doy_cos"]
    assert len(meta["dates"]) == 4 and meta["sample"]["windows"] >= 8
    # the hidden values are reconstructed better than by the band mean
    assert meta["training"]["final_loss"] < meta["training"]["mean_predictor_loss"]
    assert not list(out.parent.glob(".enc*")), "no temporary or partial folder is left"


def _dataset_inputs(field_dataset):
    from landcover.dataset import open_dataset

    return open_dataset(field_dataset).attrs


def test_a_network_starts_from_the_encoder(encoder, field_dataset):
    from landcover.config import load_config
    from landcover.encoder.folder import start_from_encoder
    from landcover.encoder.objective import build_pretrain_model
    from landcover.models import build_model

    out, record = encoder
    attrs = _dataset_inputs(field_dataset)
    spec = {**load_config(None, TINY).train.model.__dict__}
    model = build_model(spec, (None, 16, 16, len(attrs["features"])), 3, (), None)
    before = model.get_layer("convlstm1").get_weights()
    info = start_from_encoder(model, out, attrs, spec, frozen=True)
    net = build_pretrain_model(spec, (None, 16, 16, len(attrs["features"])), 6, 6)
    net.load_weights(out / "encoder.weights.h5")
    for a, b in zip(model.get_layer("convlstm1").get_weights(),
                    net.get_layer("convlstm1").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(before, net.get_layer(
        "convlstm1").get_weights()))
    assert not model.get_layer("convlstm1").trainable and model.get_layer("logits").trainable
    assert info["layers"] == ["convlstm1", "convlstm1_ln"] and info["mode"] == "frozen"


def test_an_encoder_of_other_bands_or_networks_is_refused(encoder, field_dataset):
    from landcover.config import load_config
    from landcover.encoder.folder import check_encoder

    out, _ = encoder
    attrs = dict(_dataset_inputs(field_dataset))
    spec = {**load_config(None, TINY).train.model.__dict__}
    check_encoder(out, attrs, spec)  # fits
    other = {**attrs, "bands": ["blue", "green", "red", "nir"]}
    with pytest.raises(ModelError, match="train.pretrain: .*bands blue, green, red, nir, swir1"):
        check_encoder(out, other, spec)
    with pytest.raises(ModelError, match="train.model.filters: 4 there, 8 here"):
        check_encoder(out, attrs, {**spec, "filters": 8})
    with pytest.raises(ModelError, match="not an encoder"):
        check_encoder(out.parent, attrs, spec)


def test_train_refuses_a_mismatched_encoder_in_one_line(encoder, field_dataset, runner, tmp_path):
    from conftest import TINY_MODEL, one_line_error

    from landcover.cli.main import cli

    out, _ = encoder
    result = runner.invoke(cli, ["train", str(field_dataset), "--out", str(tmp_path / "m"),
                                 *[a for s in TINY_MODEL for a in ("--set", s)],
                                 "--set", "train.model.filters=8",
                                 "--set", f"train.pretrain={out}"])
    one_line_error(result, 1, "train.pretrain", "filters")
    assert not (tmp_path / "m").exists()


@pytest.mark.slow  # 4.1 s of the default run's 6 min on 2 cores
def test_pretraining_resumes_to_the_same_weights(field_series, encoder, tmp_path):
    """Killed after its first epoch (its checkpoint written), resumed: the encoder's weights are
    those of the uninterrupted run, bit for bit."""
    import h5py

    from landcover.config import load_config
    from landcover.pretrain.run import pretrain
    from landcover.runtime import import_keras
    from landcover.scenes import find_scenes

    keras = import_keras()
    cfg = load_config(None, TINY)
    scenes = find_scenes(field_series[0], profile=cfg.scenes.profile)

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    out = tmp_path / "enc"
    with pytest.raises(KeyboardInterrupt):
        pretrain(scenes, out, cfg, callbacks=[Kill()])
    assert not out.exists() and (tmp_path / ".enc.partial").is_dir()
    pretrain(scenes, out, cfg, resume=True)

    def weights(path):
        found = {}
        with h5py.File(path / "encoder.weights.h5", "r") as f:
            f.visititems(lambda name, obj: found.__setitem__(name, obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
        return found

    a, b = weights(encoder[0]), weights(out)
    assert a.keys() == b.keys() and len(a) > 4
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.slow
def test_auto_tries_the_pretrained_network_as_one_more_candidate(encoder, field_dataset,
                                                                 tmp_path):
    """With train.pretrain a folder, auto scores the network from scratch and from the encoder
    on the same validation pixels; the kept one's bundle is in place and nothing else is left."""
    from conftest import TINY_MODEL

    from landcover.bundle import read_metadata
    from landcover.config import load_config
    from landcover.train import train

    out = tmp_path / "model"
    cfg = load_config(None, [*TINY_MODEL, "train.model.architecture=auto",
                             "train.estimate=holdout", f"train.pretrain={encoder[0]}"])
    summary = train(field_dataset, out, cfg)
    model = summary["model"]
    names = [c["architecture"] for c in model["candidates"]]
    assert names[:2] == ["convlstm", "convlstm+pretrained"]
    assert all(c.get("macro_f1", {}).get("value") is not None for c in model["candidates"])
    meta = read_metadata(out)
    kept = next(c["architecture"] for c in model["candidates"] if c["kept"])
    assert meta["model"]["pretrained"] == (kept == "convlstm+pretrained")
    if kept == "convlstm+pretrained":
        assert meta["training"]["pretrained"]["path"] == str(encoder[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_pretrain_auto_pretrains_beside_the_dataset_once(field_dataset, tmp_path, monkeypatch):
    import shutil

    from landcover.config import load_config
    from landcover.dataset import open_dataset
    from landcover.pretrain import run as pretrain_run
    from landcover.train import auto_encoder_path, resolve_pretrain

    ds_path = tmp_path / "ds.zarr"
    shutil.copytree(field_dataset, ds_path)
    ds = open_dataset(ds_path)
    cfg = load_config(None, [*TINY, "train.pretrain=auto", "pretrain.epochs=1"])
    resolved = resolve_pretrain(ds, cfg)
    folder = auto_encoder_path(ds)
    assert resolved.train.pretrain == str(folder) and (folder / "encoder.json").is_file()
    calls = []
    monkeypatch.setattr(pretrain_run, "pretrain", lambda *a, **k: calls.append(a))
    assert resolve_pretrain(ds, cfg).train.pretrain == str(folder) and not calls  # reused
    other = load_config(None, [*TINY, "train.pretrain=auto", "pretrain.epochs=2"])
    resolve_pretrain(ds, other)
    assert len(calls) == 1  # other pretrain settings: made again


@pytest.mark.slow
def test_a_bundle_trained_from_an_encoder_records_it(encoder, field_dataset, tmp_path):
    from conftest import TINY_MODEL

    from landcover.bundle import read_metadata
    from landcover.config import load_config
    from landcover.train import train

    out = tmp_path / "model"
    train(field_dataset, out, load_config(None, [*TINY_MODEL, "train.epochs=1",
                                                 "train.pretrain_mode=frozen",
                                                 f"train.pretrain={encoder[0]}"]))
    meta = read_metadata(out)
    assert meta["architecture"]["head_units"] == 64  # null: a small head on a frozen encoder
    pre = meta["training"]["pretrained"]
    assert pre["path"] == str(encoder[0]) and pre["mode"] == "frozen"
    assert pre["layers"] == ["convlstm1", "convlstm1_ln"] and pre["steps"] > 0
    assert pre["objective"]["kind"] == "masked_observations" and len(pre["dates"]) == 4
    assert "Encoder pretrained without labels (frozen)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_the_pretrain_command(field_series, runner, tmp_path):
    from conftest import one_line_error

    from landcover.cli.main import cli

    sets = [a for s in TINY for a in ("--set", s)] + ["--set", "pretrain.epochs=1"]
    scenes = [str(s) for s in field_series[0]]
    out = tmp_path / "enc"
    result = runner.invoke(cli, ["pretrain", *scenes, "--out", str(out), *sets])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}: the convlstm encoder, 1 epochs" in result.output
    assert "predicting the band mean" in result.output
    again = runner.invoke(cli, ["pretrain", *scenes, "--out", str(out), *sets])
    one_line_error(again, 1, str(out), "--overwrite")
    pixel = runner.invoke(cli, ["pretrain", *scenes, "--out", str(tmp_path / "p"),
                                "--set", "train.model.architecture=random_forest"])
    one_line_error(pixel, 2, "train.model.architecture", "per-pixel classifier")
    resume = runner.invoke(cli, ["pretrain", *scenes, "--out", str(tmp_path / "r"),
                                 "--resume", *sets])
    one_line_error(resume, 1, "no interrupted pretraining")
    assert not (tmp_path / "p").exists() and not (tmp_path / "r").exists()


def test_train_names_a_missing_encoder(field_dataset, runner, tmp_path):
    from conftest import TINY_MODEL, one_line_error

    from landcover.cli.main import cli

    result = runner.invoke(cli, ["train", str(field_dataset), "--out", str(tmp_path / "m"),
                                 *[a for s in TINY_MODEL for a in ("--set", s)],
                                 "--set", f"train.pretrain={tmp_path / 'nowhere'}"])
    one_line_error(result, 1, "train.pretrain", "nowhere", "landcover pretrain")
    assert not (tmp_path / "m").exists()


def test_the_head_of_a_frozen_encoder():
    from landcover.config import load_config
    from landcover.encoder.folder import FROZEN_HEAD_UNITS, with_head

    def units(*sets):
        return with_head(load_config(None, list(sets)).train).model.head_units

    assert units() == 0
    assert units("train.pretrain=/enc") == FROZEN_HEAD_UNITS == 64
    assert units("train.pretrain=/enc", "train.pretrain_mode=finetune") == 0
    assert units("train.pretrain=/enc", "train.pretrain_mode=staged") == 64
    assert units("train.pretrain=/enc", "train.model.head_units=8") == 8
    assert units("train.model.head_units=0", "train.pretrain=/enc") == 0


def test_auto_fine_tunes_the_encoder_only_with_many_labels():
    from landcover.config import load_config
    from landcover.encoder.folder import FINETUNE_FROM_PIXELS, with_head

    tc = load_config(None, ["train.pretrain=/enc"]).train
    assert tc.pretrain_mode == "auto"
    few = with_head(tc, FINETUNE_FROM_PIXELS - 1)
    many = with_head(tc, FINETUNE_FROM_PIXELS)
    assert (few.pretrain_mode, few.model.head_units) == ("frozen", 64)
    assert (many.pretrain_mode, many.model.head_units) == ("finetune", 0)
    fixed = load_config(None, ["train.pretrain=/enc", "train.pretrain_mode=frozen"]).train
    assert with_head(fixed, 10**6).pretrain_mode == "frozen"


def test_pretraining_that_would_not_fit_in_memory_is_refused_before_reading(field_series,
                                                                           tmp_path,
                                                                           monkeypatch):
    import psutil

    from landcover.config import load_config
    from landcover.errors import ConfigError
    from landcover.pretrain.run import pretrain
    from landcover.scenes import find_scenes

    class Little:
        available = 50_000_000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little())
    cfg = load_config(None, [*TINY, "pretrain.max_pixels=10000000"])
    with pytest.raises(ConfigError, match="pretrain.max_pixels: sampling 10,000,000 window pixels"):
        pretrain(find_scenes(field_series[0], profile=cfg.scenes.profile), tmp_path / "e", cfg)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["ltae", "utae"])
def test_the_attention_networks_pretrain_and_start_from_their_encoders(arch, field_series,
                                                                      field_dataset, tmp_path):
    """L-TAE and U-TAE (their body takes the days and the validity) pretrain and hand their
    encoder's layers to a classifier."""
    from landcover.config import load_config
    from landcover.encoder.folder import start_from_encoder
    from landcover.models import build_model
    from landcover.pretrain.run import network_spec, pretrain
    from landcover.scenes import find_scenes

    cfg = load_config(None, [*TINY, f"train.model.architecture={arch}", "train.model.layers=2",
                             "pretrain.epochs=1", "pretrain.max_pixels=2048"])
    record = pretrain(find_scenes(field_series[0], profile=cfg.scenes.profile), tmp_path / "e",
                      cfg)
    assert record["encoder_layers"] and record["training"]["steps"] > 0
    attrs = _dataset_inputs(field_dataset)
    spec = network_spec(cfg)
    model = build_model(spec, (None, 16, 16, len(attrs["features"])), 3, (),
                        attrs["features"].index("valid"))
    info = start_from_encoder(model, tmp_path / "e", attrs, spec)
    assert set(info["layers"]) == set(record["encoder_layers"]) - {"valid_mask"}


@pytest.mark.slow
def test_staged_trains_the_head_then_every_weight(encoder, field_dataset, tmp_path):
    """train.pretrain_mode staged: the head on the frozen encoder for train.epochs, then every
    weight at train.finetune_lr_scale x the rate for train.finetune_epochs; the encoder of the kept
    network is the pretrained one exactly when the kept epoch is of the first stage."""
    from conftest import TINY_MODEL

    from landcover.bundle import load_bundle, read_metadata
    from landcover.config import load_config
    from landcover.encoder.objective import build_pretrain_model
    from landcover.train import train

    out = tmp_path / "model"
    train(field_dataset, out, load_config(None, [
        *TINY_MODEL, "train.epochs=2", "train.pretrain_mode=staged", "train.finetune_epochs=2",
        "train.finetune_lr_scale=0.1", "train.schedule=constant", "train.learning_rate=0.01",
        f"train.pretrain={encoder[0]}"]))
    meta = read_metadata(out)
    assert meta["training"]["pretrained"]["mode"] == "staged"
    assert meta["architecture"]["head_units"] == 64
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert [h["learning_rate"] for h in history] == pytest.approx([0.01, 0.01, 0.001, 0.001])
    attrs = _dataset_inputs(field_dataset)
    spec = {**load_config(None, TINY).train.model.__dict__}
    net = build_pretrain_model(spec, (None, 16, 16, len(attrs["features"])), 6, 6)
    net.load_weights(encoder[0] / "encoder.weights.h5")
    model, _ = load_bundle(out)
    same = all(np.array_equal(a, b) for a, b in zip(model.get_layer("convlstm1").get_weights(),
                                                    net.get_layer("convlstm1").get_weights()))
    best = meta["training"]["best_epoch"]
    assert same == (best <= 2), (best, same)


@pytest.mark.slow
@pytest.mark.parametrize("cut", [2, 3])
def test_staged_training_resumes_to_the_same_weights(encoder, field_dataset, tmp_path, cut):
    """Cut after the first stage's last epoch (2) or inside the second stage (3)."""
    from conftest import TINY_MODEL
    from test_train import Interrupt

    from landcover.bundle import load_bundle
    from landcover.config import load_config
    from landcover.train import train

    cfg = load_config(None, [*TINY_MODEL, "train.epochs=2", "train.pretrain_mode=staged",
                             "train.finetune_epochs=2", f"train.pretrain={encoder[0]}"])
    whole = train(field_dataset, tmp_path / "whole", cfg, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(field_dataset, tmp_path / "cut", cfg, progress=False, callbacks=[Interrupt(cut)])
    resumed = train(field_dataset, tmp_path / "cut", cfg, resume=True, progress=False)
    assert resumed["metrics"] == whole["metrics"]
    m1, _ = load_bundle(tmp_path / "whole")
    m2, _ = load_bundle(tmp_path / "cut")
    for u, v in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(u, v)
