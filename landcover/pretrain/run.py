"""``landcover pretrain``: scenes to a pretrained encoder folder, with progress, a budget and resume.

The loop is Keras ``fit`` over the sampled windows (:mod:`landcover.pretrain.sample`) with the
masked-observation objective (:mod:`landcover.encoder.objective`). Every batch (its windows, their
flips and rotations, the observations hidden) is a function of ``(pretrain.seed, epoch, batch)``
only, and the dropout seeds are set per epoch, so a run resumed after its last finished epoch
(``--resume``: weights and optimizer state from ``.NAME.partial/``) ends with the same weights as
an uninterrupted one. ``pretrain.max_minutes`` stops the run at the end of the batch that passes
it; the encoder is written with what was learnt by then, and the record says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from landcover.config import Config
from landcover.encoder.folder import ENCODER_FORMAT, RECORD, WEIGHTS
from landcover.encoder.objective import (
    build_pretrain_model,
    head_layers,
    hide,
    masked_reconstruction,
)
from landcover.errors import ConfigError, ModelError, ResumeError
from landcover.outputs import OutputSet, PartialRun, atomic_file, check_space, remove

log = logging.getLogger(__name__)

STATE_FILE = "pretrain_state.json"
OBJECTIVE = "masked_observations"


def network_spec(cfg: Config) -> dict:
    """``train.model`` as a mapping, ``auto`` resolved to the network ``auto`` trains.

    Raises:
        ConfigError: a per-pixel classifier (it has no encoder to pretrain).
    """
    from landcover.models import architecture, default_architecture

    spec = dataclasses.asdict(cfg.train.model)
    if spec["architecture"] == "auto":
        spec["architecture"] = default_architecture()
    if architecture(spec["architecture"]).pixel:
        raise ConfigError(f"train.model.architecture: {spec['architecture']} is a per-pixel "
                          "classifier and has no encoder to pretrain; choose a network")
    return spec


def _batches_class():
    from landcover.runtime import import_keras

    keras = import_keras()

    class Batches(keras.utils.PyDataset):
        """Batch ``i`` of epoch :attr:`epoch`: a function of (seed, epoch, i) only."""

        def __init__(self, x, days, n_bands, fill, pc):
            super().__init__(workers=1, use_multiprocessing=False)
            self.x, self.days, self.n_bands, self.fill, self.pc = x, days, n_bands, fill, pc
            self.epoch = 0

        def __len__(self):
            return math.ceil(len(self.x) / self.pc.batch_size)

        def __getitem__(self, i):
            pc = self.pc
            order = np.random.default_rng([pc.seed, self.epoch]).permutation(len(self.x))
            idx = np.sort(order[i * pc.batch_size:(i + 1) * pc.batch_size])
            rng = np.random.default_rng([pc.seed, self.epoch, i])
            xb = self.x[idx]
            k = int(rng.integers(4))
            xb = np.rot90(xb, k, axes=(2, 3))
            if rng.random() < 0.5:
                xb = xb[:, :, :, ::-1]
            inp, target = hide(np.ascontiguousarray(xb), self.days, self.n_bands, self.fill, rng,
                               pc.hide, pc.hide_bands)
            days = np.broadcast_to(self.days, (len(idx), len(self.days))).astype(np.float32)
            return (inp, days), target

    return Batches


def _fingerprint(windows, spec: dict, cfg: Config) -> str:
    body = {"scenes": windows.scene_ids, "grid": windows.grid, "spec": spec,
            "pretrain": dataclasses.asdict(cfg.pretrain), "scenes_cfg": dataclasses.asdict(cfg.scenes),
            "window": cfg.prepare.patches.size, "features": windows.spec.names,
            "fill": windows.spec.fill}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def pretrain(scenes, out: str | Path, cfg: Config, *, overwrite: bool = False,
             resume: bool = False, progress=None, callbacks: Sequence = ()) -> dict:
    """Pretrain the encoder of ``cfg.train.model`` on ``scenes`` (a
    :class:`landcover.scenes.SceneSource` or scenes) and write the folder ``out``; returns its
    record (``encoder.json``).

    Raises:
        ConfigError, DatasetError, OutputExistsError, OutputLockedError, ResumeError, ModelError.
    """
    from landcover.pretrain.sample import sample_windows
    from landcover.progress import message, reporter
    from landcover.runtime import check_memory
    from landcover.scenes import as_scenes
    from landcover.stack import stack_scenes

    out = Path(out).absolute()
    pc = cfg.pretrain
    spec = network_spec(cfg)
    run = PartialRun(out, STATE_FILE, needs=("last.weights.h5",))
    if resume and not run.exists():
        raise ResumeError(f"no interrupted pretraining of {out} to continue (looked for "
                          f"{run.path})")
    report = reporter(progress)
    with OutputSet([out], overwrite, folders=[True]) as outputs:
        scenes = as_scenes(scenes)
        stack = stack_scenes(scenes, cfg.scenes)
        # the windows' reflectance and validity, then their features (float32), side by side
        t, b = stack.sizes["time"], stack.sizes["band"]
        check_memory(pc.max_pixels * t * (2 * b + 5) * 4 + 4 * stack.nbytes / max(
            1, stack.sizes["y"] * stack.sizes["x"]) * cfg.scenes.chunk_size ** 2,
            "pretrain.max_pixels", f"sampling {pc.max_pixels:,d} window pixels of {t} dates takes",
            "pretrain.max_pixels")
        t0 = time.monotonic()
        windows = sample_windows(stack, cfg.prepare.patches.size, pc.max_pixels,
                                 cfg.prepare.features.fill, cfg.prepare.features.doy, pc.seed,
                                 progress)
        if report is not None:
            message(report, f"pretraining on {len(windows.x):,d} windows of "
                            f"{cfg.prepare.patches.size} px, {len(windows.dates)} dates "
                            f"({windows.valid_observations:,d} valid observations)")
        record = _train(windows, spec, cfg, run, outputs, resume=resume, progress=progress,
                        callbacks=callbacks, sample_seconds=time.monotonic() - t0)
    return record


def _train(windows, spec: dict, cfg: Config, run: PartialRun, outputs: OutputSet, *,
           resume: bool, progress, callbacks, sample_seconds: float) -> dict:
    from landcover.models import valid_channel_of
    from landcover.network_memory import checkpoint_bytes
    from landcover.network_training import restore
    from landcover.progress import Stage, message, reporter
    from landcover.runtime import import_keras, reseed, versions

    keras = import_keras()
    pc = cfg.pretrain
    fingerprint = _fingerprint(windows, spec, cfg)
    state = run.resume(
        {"fingerprint": fingerprint},
        nothing=f"no interrupted pretraining of {outputs.main} to continue",
        other=f"the interrupted pretraining in {run.path} used other scenes or settings "
              "({keys}); use the same ones",
        hint="or run without --resume to start over") if resume else None
    names = windows.spec.names
    n_bands = len(windows.spec.bands)
    valid_channel = valid_channel_of({"features": names})
    size = windows.x.shape[2]
    from landcover.models import architecture

    variable = architecture(spec["architecture"]).variable_dates
    shape = (None if variable else windows.x.shape[1], size, size, len(names))
    keras.utils.set_random_seed(pc.seed)
    model = build_pretrain_model(spec, shape, n_bands, valid_channel)
    data = _batches_class()(windows.x, windows.days, n_bands, windows.spec.fill, pc)
    steps = len(data) * pc.epochs
    lr = keras.optimizers.schedules.CosineDecay(pc.learning_rate, decay_steps=max(1, steps),
                                                alpha=0.1)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=masked_reconstruction())
    partial = run.path
    if state is not None:
        restore(model, partial)
        log.info("resuming the pretraining after epoch %d of %d", state["epochs_done"],
                 pc.epochs)
    else:
        run.start()
        state = {"fingerprint": fingerprint, "epochs_done": 0, "history": [], "seconds": 0.0,
                 "stopped": None}
        run.write(state)
    report = reporter(progress)
    deadline = time.monotonic() + pc.max_minutes * 60 - state["seconds"]
    over = []

    class Loop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            data.epoch = epoch
            reseed(self.model, pc.seed, epoch)
            self.t0 = time.monotonic()
            self.steps = Stage(report, f"Pretraining epoch {epoch + 1}/{pc.epochs}", len(data),
                               unit="batches").start()

        def on_train_batch_end(self, batch, logs=None):
            self.steps.advance()
            if time.monotonic() > deadline and not over:
                over.append(batch + 1)
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            self.steps.finish()
            loss = float((logs or {}).get("loss", float("nan")))
            if not math.isfinite(loss):
                raise ModelError(f"pretraining diverged: the loss is {loss} at epoch "
                                 f"{epoch + 1}; lower pretrain.learning_rate")
            seconds = time.monotonic() - self.t0
            state["history"].append({"epoch": epoch + 1, "loss": round(loss, 5),
                                     "seconds": round(seconds, 2),
                                     **({"batches": over[0]} if over else {})})
            state["seconds"] += seconds
            if over:
                state["stopped"] = (f"pretrain.max_minutes ({pc.max_minutes:g}) reached after "
                                    f"{over[0]} batches of epoch {epoch + 1}")
            check_space(partial, checkpoint_bytes(self.model), "writing a checkpoint")
            with atomic_file(partial / "last.weights.h5") as tmp:
                self.model.save_weights(tmp)
            state["epochs_done"] = epoch + 1
            run.write(state)
            if report is not None:
                message(report, f"pretraining epoch {epoch + 1}/{pc.epochs}: loss {loss:.4f}, "
                                f"{seconds:.1f} s")

    with run.kept_on_failure(state, "pretraining"):
        if state["epochs_done"] < pc.epochs and not state.get("stopped"):
            model.fit(data, epochs=pc.epochs, initial_epoch=state["epochs_done"],
                      callbacks=[Loop(), *callbacks], shuffle=False, verbose=0)
    final = build_pretrain_model(spec, shape, n_bands, valid_channel)
    _take_trained(final, model)
    baseline = _mean_loss(data, pc)
    head = set(head_layers(final))
    encoder_layers = [layer.name for layer in final.layers
                      if layer.weights and layer.name not in head]
    tmp = outputs.temporary()
    try:
        tmp.mkdir()
        final.save_weights(tmp / WEIGHTS)
        digest = hashlib.sha256((tmp / WEIGHTS).read_bytes()).hexdigest()
        record = {
            "landcover_encoder": ENCODER_FORMAT,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "network": spec,
            "encoder_layers": encoder_layers,
            "input": {"bands": list(windows.spec.bands), "features": names,
                      "fill": windows.spec.fill, "doy": windows.spec.doy,
                      "normalisation": {"mean": list(windows.spec.mean),
                                        "std": list(windows.spec.std),
                                        "computed_on": "valid observations of the sampled "
                                                       "windows"},
                      "window": int(size), "valid_channel": valid_channel,
                      "variable_dates": variable, "time_steps": int(windows.x.shape[1])},
            "objective": {"kind": OBJECTIVE, "hide": pc.hide, "hide_bands": pc.hide_bands,
                          "loss": "mean squared error of the standardised bands of the hidden "
                                  "observations and bands (valid ones only)",
                          "head_units": 64},
            "scenes": windows.scene_ids,
            "dates": [d.isoformat() for d in windows.dates],
            "grid": windows.grid,
            "sample": {"windows": len(windows.x), "pixels": int(windows.x[..., 0].size
                                                                     // windows.x.shape[1]),
                       "valid_observations": windows.valid_observations,
                       "blocks_read": windows.blocks_read, "seed": pc.seed,
                       "seconds": round(sample_seconds, 1)},
            "training": {"epochs_done": state["epochs_done"], "epochs": pc.epochs,
                         "steps": int(sum(h.get("batches", len(data)) for h in state["history"])),
                         "batch_size": pc.batch_size, "learning_rate": pc.learning_rate,
                         "seconds": round(state["seconds"], 1), "stopped": state.get("stopped"),
                         "history": state["history"],
                         "final_loss": state["history"][-1]["loss"] if state["history"] else None,
                         "mean_predictor_loss": baseline},
            "weights_sha256": digest,
            "config": cfg.to_dict(),
            "versions": versions(model=True),
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=1))
        outputs.commit({outputs.main: tmp})
    finally:
        remove(tmp)
    remove(partial)
    record["output"] = str(outputs.main)
    return record


def _take_trained(final, model) -> None:
    """The trained weights (without the optimizer's state) into ``final``."""
    for layer in final.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())


def _mean_loss(data, pc, batches: int = 8) -> float:
    """The loss of predicting every hidden value as the band's mean (0): the figure the
    reconstruction is to beat, over the first ``batches`` batches of epoch 0."""
    data.epoch = 0
    total = weight = 0.0
    for i in range(min(batches, len(data))):
        _, target = data[i]
        n = target.shape[-1] // 2
        w = target[..., n:]
        total += float((np.square(target[..., :n]) * w).sum())
        weight += float(w.sum())
    return round(total / max(weight, 1.0), 5)
