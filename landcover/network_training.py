"""Training a network (``train.model``) on a prepared dataset into a model bundle, with masked,
class-weighted training (:func:`landcover.train.train` hands a network here).

What each batch contributes (see :mod:`landcover.losses` and ``docs/training.md``):

* inputs ``x`` (B, T, H, W, F), integer labels ``y`` (B, H, W) with 255 = ignore, and per-pixel
  weights ``w`` (B, H, W) = the class weight of the pixel's class, 0 where the label is unusable;
* the loss is ``sum(w * pixel loss) / number of valid pixels``; masked pixels contribute nothing;
* the metric is a confusion matrix over valid pixels (counts, not weights); every score comes from it.

The loop is Keras ``fit`` with one callback (:class:`_Loop`) that seeds each epoch, derives the
scores, keeps the best epoch by validation mIoU, stops early, and writes a resumable checkpoint
(``.NAME.partial/`` next to the output) after every epoch. The bundle is written under a temporary
name and renamed when complete; the checkpoint folder is removed then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from landcover.bundle import writer
from landcover.config import Config, TrainConfig
from landcover.dataset import PreparedDataset
from landcover.encoder.folder import train_pixels, unfreeze, with_head
from landcover.errors import DatasetError, ModelError, ResumeError
from landcover.models import (
    check_patch,
    model_input_shape,
    takes_dates,
    valid_channel_of,
)
from landcover.network_memory import checkpoint_bytes, fit_batch_size
from landcover.outputs import OutputSet, PartialRun, atomic_file, check_space, remove
from landcover.progress import Stage, message, reporter
from landcover.runtime import import_keras, reseed
from landcover.scores import scores
from landcover.scoring import evaluate_stream, score_held_out

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


# ---------------------------------------------------------------------------------------- helpers
def _accelerators() -> list[str]:
    keras = import_keras()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    return []


def _setup(tc: TrainConfig) -> contextlib.AbstractContextManager:
    """Seeds, determinism, precision; returns the distribution scope for building the model."""
    keras = import_keras()
    backend = keras.backend.backend()
    keras.utils.set_random_seed(tc.seed)
    if tc.deterministic and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    gpus = _accelerators()
    if tc.mixed_precision:
        if gpus:
            keras.mixed_precision.set_global_policy("mixed_float16")
            log.info("mixed precision (float16 compute, float32 logits and loss)")
        else:
            log.warning("train.mixed_precision: no GPU found, training in float32")
    else:
        keras.mixed_precision.set_global_policy("float32")
    if backend == "tensorflow" and len(gpus) > 1:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        log.info("MirroredStrategy over %d GPUs", strategy.num_replicas_in_sync)
        return strategy.scope()
    return contextlib.nullcontext()


def _fingerprint(ds: PreparedDataset, tc: TrainConfig) -> str:
    body = {"dataset": str(ds.path.absolute()), "created": ds.attrs.get("created"),
            "train": dataclasses.asdict(tc)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def check_dataset(ds: PreparedDataset, tc: TrainConfig) -> None:
    if ds.split_size("train") == 0:
        raise DatasetError(f"{ds.path}: the training split is empty; prepare it again with "
                           "other prepare.split settings")
    _, h, w, _ = ds.input_shape
    problem = check_patch(tc.model, h, w)
    if problem:
        raise DatasetError(problem)


# ------------------------------------------------------------------------------------ the callback
def _make_loop_callback():
    keras = import_keras()

    class _Loop(keras.callbacks.Callback):
        """Epoch seeding, scores, best/last checkpoints, early stopping, history, progress."""

        def __init__(self, *, stream, metric, names, partial: Path, tc: TrainConfig, state: dict,
                     monitor: str, progress):
            super().__init__()
            self.stream, self.metric, self.names = stream, metric, names
            self.partial, self.tc, self.state = partial, tc, state
            self.monitor, self.report = monitor, reporter(progress)
            self.total = tc.epochs  # the last epoch of this stage (staged: the second's)
            self.prefix = "val_" if monitor.startswith("val_") else ""
            self._steps = None

        def on_epoch_begin(self, epoch, logs=None):
            self.stream.epoch = epoch
            reseed(self.model, self.tc.seed, epoch)
            self._t0 = time.monotonic()
            self._steps = Stage(self.report, f"Epoch {epoch + 1}/{self.total}",
                                len(self.stream), unit="batches").start()

        def on_train_batch_end(self, batch, logs=None):
            self._steps.advance()
            if batch == len(self.stream) - 1:  # the epoch's training confusion, before validation
                self._train_cm = _metric_matrix(self.model, self.metric)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            self._steps.finish()
            loss = float(logs.get("loss", float("nan")))
            if not math.isfinite(loss):
                raise ModelError(f"training diverged: the loss is {loss} at epoch {epoch + 1}; "
                                 "lower train.learning_rate or check the dataset")
            cm = _metric_matrix(self.model, self.metric)
            s = scores(cm, self.names)
            p = self.prefix
            extra = {f"{p}overall_accuracy": s["overall_accuracy"], f"{p}kappa": s["kappa"],
                     f"{p}macro_f1": s["macro_f1"]}
            for name, c in s["per_class"].items():
                extra[f"{p}f1_{name}"] = c["f1"]
                extra[f"{p}iou_{name}"] = c["iou"]
            logs.update({k: v for k, v in extra.items() if v is not None})
            record = {"epoch": epoch + 1,
                      **{k: writer.round_metric(v) for k, v in logs.items() if np.isscalar(v)},
                      "learning_rate": writer.round_metric(float(keras.ops.convert_to_numpy(
                          self.model.optimizer.learning_rate))),
                      "seconds": round(time.monotonic() - self._t0, 2),
                      f"{p}confusion_matrix": cm.tolist()}
            if p and getattr(self, "_train_cm", None) is not None:
                record["overall_accuracy"] = writer.round_metric(
                    scores(self._train_cm, self.names)["overall_accuracy"] or float("nan"))
            st = self.state
            st["history"].append(record)
            value = float(logs[self.monitor])
            this_loss = float(logs.get("val_loss" if self.prefix else "loss", float("inf")))
            if improves(st, value, this_loss):
                st.update(best=value, best_epoch=epoch + 1, wait=0, best_loss=this_loss)
                self._save_weights("best.weights.h5")
            else:
                st["wait"] += 1
            self._save_weights("last.weights.h5")  # with the optimizer's state (Keras 3)
            st["epochs_done"] = epoch + 1
            writer.write_history_csv(self.partial / "history.csv", st["history"])
            _write_atomic(self.partial / STATE_FILE, json.dumps(st, allow_nan=True))
            if self.report is not None:
                shown = [f"loss {loss:.4f}"]
                if "val_loss" in logs:
                    shown.append(f"val_loss {float(logs['val_loss']):.4f}")
                shown.append(f"{self.monitor} {value:.3f} (best {st['best']:.3f} at epoch "
                             f"{st['best_epoch']})")
                if s["overall_accuracy"] is not None:
                    shown.append(f"{p}OA {s['overall_accuracy']:.3f}")
                shown.append(f"{record['seconds']:.1f} s")
                message(self.report, f"epoch {epoch + 1}/{self.total}: " + ", ".join(shown))
            if (self.tc.patience and st["wait"] >= self.tc.patience
                    and epoch + 1 >= self.tc.min_epochs):
                log.info("early stopping: no better %s for %d epochs", self.monitor, st["wait"])
                st["stopped_early"] = epoch + 1
                self.model.stop_training = True

        def _save_weights(self, name: str) -> None:
            # HDF5 may crash the process on a full disk instead of raising: check first
            check_space(self.partial, checkpoint_bytes(self.model), "writing a checkpoint")
            with atomic_file(self.partial / name) as tmp:
                self.model.save_weights(tmp)

    return _Loop


def _metric_matrix(model, metric) -> np.ndarray:
    """The confusion matrix a :class:`landcover.metrics.ConfusionMatrix` holds now, on any
    backend: JAX keeps the training state outside the model's variables between epochs, and a
    callback that reads a variable asks for the state first (``jax_state_sync``)."""
    import keras

    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()
    return np.asarray(keras.ops.convert_to_numpy(metric.matrix.value), dtype=np.int64)


def improves(state: dict, value: float, loss: float) -> bool:
    """Whether an epoch with monitored score ``value`` and (validation) ``loss`` is better than the
    kept one (``state["best"]``, ``state["best_loss"]``): a higher score, or the same score and a
    lower loss. A small validation split often scores 1.000 from the first epoch on: the tie then
    goes to the epoch with the lower validation loss, never to the first epoch."""
    best = state.get("best")
    if best is None or value > best + 1e-9:
        return True
    tie = abs(value - best) <= 1e-9
    return bool(tie and loss < state.get("best_loss", float("inf")) - 1e-9)


# --------------------------------------------------------------------------------------- training
PROJECT_AFTER = (5, 20)  # batches (after the first) after which a fold's total time is projected against its budget


def fit_fold_network(ds: PreparedDataset, cfg: Config, exclude_groups, *, progress=None,
                     label: str = "", deadline: float | None = None, epochs_after: int = 0,
                     stats: dict | None = None):
    """The network of ``cfg.train`` trained for a cross-validation fold: on the training and
    validation patches with the pixels of ``exclude_groups`` ignored, for ``train.epochs``
    epochs of at least ``train.min_epoch_steps`` steps (no early stopping: there is no
    validation split left to stop on), with the masked, weighted loss of every training run.
    Returns the predictor of :func:`network_predictor`, or None when, after its first epoch,
    this fold and ``epochs_after`` more epochs (the folds still to come) would end after
    ``deadline`` (``time.monotonic()``); the projection is made after the first
    :data:`PROJECT_AFTER` batches of the first epoch and after it. ``stats`` receives
    ``batches``: the training batches run."""
    keras = import_keras()
    from landcover.models import build_model
    from landcover.pipeline import PatchStream

    tc = cfg.train
    scope = _setup(tc)
    t, h, w, f = ds.input_shape
    spec = dataclasses.asdict(tc.model)
    days = writer.dataset_days(ds) if takes_dates(spec) else None
    common = {"batch_size": tc.batch_size, "seed": tc.seed,
              "class_weights": tc.loss.class_weights, "days": days}
    probe = PatchStream(ds, ("train", "validation"), **common)
    passes = math.ceil(probe.size / tc.batch_size)
    repeats = max(1, math.ceil(tc.min_epoch_steps / passes))
    stream = PatchStream(ds, ("train", "validation"), shuffle=True, augment=tc.augment,
                         shuffle_chunks=tc.shuffle_chunks, repeats=repeats,
                         exclude_groups=exclude_groups, **common)
    with scope:
        model = build_model(spec, model_input_shape(spec, t, h, w, f), ds.num_classes, [],
                            valid_channel_of(ds.attrs))
        pretrained = start_encoder(model, tc, ds, spec)
        loss = _masked_loss(tc, ds)
        model.compile(optimizer=keras.optimizers.Adam(_schedule(keras, tc, len(stream))),
                      loss=loss, jit_compile=tc.jit_compile)
    staged = pretrained is not None and tc.pretrain_mode == "staged"
    total = tc.epochs + (tc.finetune_epochs if staged else 0)
    report = reporter(progress)
    stage = Stage(report, f"{label}network, {total} epochs", total, unit="epochs").start()

    over = []

    class _Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            stream.epoch = epoch
            self.epoch = epoch
            reseed(self.model, tc.seed, epoch)
            self.t0 = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            # the first epoch alone may outlast the budget: project from its first batches (the
            # first one, which traces the model, left out)
            if stats is not None:
                stats["batches"] = stats.get("batches", 0) + 1
            if batch == 0:
                self.t1 = time.monotonic()
            if deadline is None or self.model.stop_training or batch not in PROJECT_AFTER:
                return
            per_batch = (time.monotonic() - self.t1) / batch
            left = len(stream) - batch - 1 + (total - self.epoch - 1 + epochs_after) * len(stream)
            if time.monotonic() + left * per_batch > deadline:
                over.append(True)
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            stage.advance()
            left = total - epoch - 1 + epochs_after
            if (deadline is not None and epoch == 0
                    and time.monotonic() + left * (time.monotonic() - self.t0) > deadline):
                over.append(True)
                self.model.stop_training = True
            loss = float((logs or {}).get("loss", float("nan")))
            if not math.isfinite(loss):
                raise ModelError(f"training diverged in a cross-validation fold: the loss is "
                                 f"{loss} at epoch {epoch + 1}; lower train.learning_rate")

    model.fit(stream.keras_dataset(), epochs=tc.epochs, callbacks=[_Epochs()], shuffle=False,
              verbose=0)
    if staged and not over:  # the second stage: every weight, at a lower rate
        with scope:
            unfreeze(model, pretrained["layers"])
            model.compile(optimizer=keras.optimizers.Adam(_schedule(keras, tc, len(stream), 2)),
                          loss=loss, jit_compile=tc.jit_compile)
        model.fit(stream.keras_dataset(), initial_epoch=tc.epochs, epochs=total,
                  callbacks=[_Epochs()], shuffle=False, verbose=0)
    stage.finish()
    if over:
        return None
    return network_predictor(model, tc.batch_size, days)


def train_network(ds: PreparedDataset, outputs: OutputSet, cfg: Config, *, resume: bool,
                  progress, callbacks: Sequence) -> dict:
    """Train the network of ``cfg.train.model`` and write its bundle through ``outputs`` (held
    under the output lock)."""
    # train.pretrain_mode auto and train.model.head_units null resolved (auto's candidates come so)
    tc = with_head(cfg.train, train_pixels(ds))
    out, cfg = outputs.main, dataclasses.replace(cfg, train=tc)
    batch = fit_batch_size(tc, ds)
    if batch != tc.batch_size:  # the bundle records the batch that ran, and why
        tc = dataclasses.replace(tc, batch_size=batch)
        cfg = dataclasses.replace(cfg, train=tc)
    run = PartialRun(out, STATE_FILE, needs=("last.weights.h5",))
    partial = run.path
    fingerprint = _fingerprint(ds, tc)
    state = run.resume(
        {"fingerprint": fingerprint},
        nothing=f"no interrupted run of {out} to continue (looked for {partial})",
        other=f"the interrupted run in {partial} used another dataset or other train.* "
              "settings; use the same ones",
        hint="or run without --resume to start over") if resume else None
    if state is None:
        run.clear()

    keras = import_keras()
    from landcover.metrics import ConfusionMatrix
    from landcover.models import build_model
    from landcover.pipeline import PatchStream

    scope = _setup(tc)
    k = ds.num_classes
    names = ds.class_names
    t, h, w, f = ds.input_shape
    spec = dataclasses.asdict(tc.model)
    shape = model_input_shape(spec, t, h, w, f)
    common = dict(batch_size=tc.batch_size, seed=tc.seed, class_weights=tc.loss.class_weights,
                  days=writer.dataset_days(ds) if takes_dates(spec) else None)
    valid_channel = valid_channel_of(ds.attrs)
    passes = math.ceil(ds.split_size("train") / tc.batch_size)
    repeats = max(1, math.ceil(tc.min_epoch_steps / passes))
    if repeats > 1:
        log.info("%d training batches per pass: each epoch makes %d passes (%d steps; "
                 "train.min_epoch_steps=%d)", passes, repeats, passes * repeats, tc.min_epoch_steps)
    train_stream = PatchStream(ds, "train", shuffle=True, augment=tc.augment,
                               shuffle_chunks=tc.shuffle_chunks, repeats=repeats, **common)
    absent = absent_classes(ds)
    val_stream = PatchStream(ds, "validation", **common)
    has_val = val_stream.size > 0
    monitor = "val_miou" if has_val else "miou"
    if not has_val:
        log.warning("%s: no validation split; the best epoch is chosen by the training mIoU "
                    "(optimistic)", ds.path)
    loss = _masked_loss(tc, ds)

    def compile_stage(stage: int):  # staged: 1 = the head on the frozen encoder, 2 = every weight
        with scope:
            metric = ConfusionMatrix(k, ignore_label=ds.ignore_label, name="miou")
            model.compile(optimizer=keras.optimizers.Adam(_schedule(
                keras, tc, len(train_stream), stage)), loss=loss, weighted_metrics=[metric],
                jit_compile=tc.jit_compile)
        return metric

    with scope:
        model = build_model(spec, shape, k, absent, valid_channel)
        pretrained = start_encoder(model, tc, ds, spec)
    staged = pretrained is not None and tc.pretrain_mode == "staged"
    resumed_stage = state.get("stage", 1) if state is not None else 1
    if resumed_stage == 2:
        unfreeze(model, pretrained["layers"])
    metric = compile_stage(resumed_stage)
    # two checkpoints (weights and optimizer moments), the bundle, its pictures
    check_space(out.parent, 4 * checkpoint_bytes(model) + 5e6, "writing the checkpoints and the bundle")
    if state is not None:
        restore(model, partial)
        log.info("resuming after epoch %d of %d", state["epochs_done"], tc.epochs)
    else:
        run.start()
        state = {"fingerprint": fingerprint, "epochs_done": 0, "best": None, "best_epoch": None,
                 "wait": 0, "history": [], "stopped_early": None}
        run.write(state)
    loop = _make_loop_callback()(stream=train_stream, metric=metric, names=names, partial=partial,
                                 tc=tc, state=state, monitor=monitor, progress=progress)
    t0 = time.monotonic()
    finished = state.get("stopped_early") or state["epochs_done"] >= tc.epochs

    def fit(epochs):
        loop.total = epochs
        model.fit(train_stream.keras_dataset(), epochs=epochs, initial_epoch=state["epochs_done"],
                  validation_data=val_stream.keras_dataset() if has_val else None,
                  callbacks=[loop, *callbacks], shuffle=False, verbose=0)

    with run.kept_on_failure(state, "training"):
        if state.get("stage", 1) == 1 and not finished:
            fit(tc.epochs)
        if staged and state.get("stage", 1) == 1:  # from the best epoch on, every weight trains
            model.load_weights(partial / "best.weights.h5")
            unfreeze(model, pretrained["layers"])
            loop.metric = compile_stage(2)
            state.update(stage=2, stage2_from=state["epochs_done"], wait=0, stopped_early=None)
            run.write(state)
        end = state.get("stage2_from", 0) + tc.finetune_epochs
        if staged and not (state.get("stopped_early") or state["epochs_done"] >= end):
            log.info("the encoder trains too from epoch %d, at %g x the learning rate",
                     state["epochs_done"] + 1, tc.finetune_lr_scale)
            fit(end)
    seconds = time.monotonic() - t0

    # the kept model: the best epoch's weights in a fresh, uncompiled network
    final = build_model(spec, shape, k, absent, valid_channel)
    final.load_weights(partial / "best.weights.h5")
    mode_check = _mode_check(final, ds, common, names, state, partial)
    _check_schedule(state, tc)
    # the test split is scored only now
    evaluation, calibration, baseline = score_held_out(
        network_predictor(final, tc.batch_size, common["days"]), ds, tc)
    extra = {"mode_check": mode_check, "baseline": baseline, "absent": absent,
             "repeats": repeats, "calibration": calibration, "pretrained": pretrained}
    summary = writer.write_network_bundle(final, ds, cfg, outputs, state, evaluation, monitor,
                                          seconds, extra)
    remove(partial)
    return summary


def _masked_loss(tc: TrainConfig, ds: PreparedDataset):
    """The masked, weighted loss every network training compiles with (``train.loss``)."""
    from landcover.losses import MaskedLoss

    return MaskedLoss(tc.loss.kind, ds.num_classes, ignore_label=ds.ignore_label,
                      focal_gamma=tc.loss.focal_gamma, dice_weight=tc.loss.dice_weight)


def start_encoder(model, tc: TrainConfig, ds: PreparedDataset, spec: dict) -> dict | None:
    """With ``train.pretrain`` a folder: ``model``'s encoder set to its weights (frozen with
    ``train.pretrain_mode`` frozen or staged), after the checks of
    :func:`landcover.encoder.folder.check_encoder`; returns the provenance the bundle records.
    ``auto`` (of either key) is resolved before training (:func:`landcover.train.train`)."""
    if tc.pretrain in (None, "", "none"):
        return None
    if tc.pretrain == "auto" or tc.pretrain_mode == "auto":
        raise ModelError("train.pretrain and train.pretrain_mode: auto must be resolved before "
                         "the network is built (landcover.train.train does it)")
    from landcover.encoder.folder import start_from_encoder

    pretrained = start_from_encoder(model, tc.pretrain, ds.attrs, spec,
                                    frozen=tc.pretrain_mode in ("frozen", "staged"))
    pretrained["mode"] = tc.pretrain_mode
    log.info("the %s encoder starts from %s (%s)", spec["architecture"], tc.pretrain,
             pretrained["mode"])
    return pretrained


def absent_classes(ds: PreparedDataset) -> list[int]:
    """Indices of the classes without training pixels (the model is built not to predict them)."""
    absent = [c["index"] for c in ds.classes if not c.get("pixels", {}).get("train", 1)]
    if absent:
        names = ", ".join(ds.class_names[i] for i in absent)
        log.warning("%s: no training pixels of %s; the model will not predict %s", ds.path, names,
                    "it" if len(absent) == 1 else "them")
    return absent


def _schedule(keras, tc: TrainConfig, steps_per_epoch: int, stage: int = 1):
    """Learning rate: linear warm-up over ``warmup_epochs`` (at most all epochs but the last) from a
    tenth of the rate, then cosine decay to ``lr_floor`` x the rate at the last step (or
    constant). Stage 2 of ``train.pretrain_mode: staged``: ``finetune_lr_scale`` x the rate, cosine
    over ``finetune_epochs`` without warm-up."""
    if stage == 2:
        rate = tc.learning_rate * tc.finetune_lr_scale
        if tc.schedule != "cosine":
            return rate
        return keras.optimizers.schedules.CosineDecay(
            rate, decay_steps=max(1, tc.finetune_epochs * steps_per_epoch), alpha=tc.lr_floor)
    if tc.schedule != "cosine":
        return tc.learning_rate
    warmup = min(tc.warmup_epochs, tc.epochs - 1) * steps_per_epoch  # never the whole run
    decay = max(1, tc.epochs * steps_per_epoch - warmup)
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            tc.learning_rate / 10, decay_steps=decay, alpha=tc.lr_floor,
            warmup_target=tc.learning_rate, warmup_steps=warmup)
    return keras.optimizers.schedules.CosineDecay(tc.learning_rate, decay_steps=decay,
                                                  alpha=tc.lr_floor)


def _check_schedule(state: dict, tc: TrainConfig) -> None:
    """Warn when the kept epoch is the last one and validation loss was still falling."""
    hist = state["history"]
    if not hist or state["best_epoch"] != len(hist) or state.get("stopped_early"):
        return
    losses = [h.get("val_loss") for h in hist[-3:]]
    if len(losses) == 3 and all(v is not None for v in losses) and losses[0] > losses[1] > losses[2]:
        state["still_improving"] = True
        log.warning("the kept epoch is the last one (%d) and the validation loss is still falling "
                    "(%.4f -> %.4f over the last 3 epochs): the model may be undertrained; raise "
                    "train.epochs", len(hist), losses[0], losses[2])


def _mode_check(model, ds: PreparedDataset, common: dict, names, state: dict,
                partial: Path) -> dict:
    """Training-split scores of the kept weights in inference mode and in training mode (batch
    statistics), next to the accuracy logged during training; a gap of more than 5 points is a
    warning (normalisation statistics that did not settle)."""
    from landcover.pipeline import PatchStream

    stream = PatchStream(ds, "train", **common)
    inference = evaluate_stream(model, stream, names, ds.ignore_label)
    training = evaluate_stream(model, stream, names, ds.ignore_label, training=True)
    model.load_weights(partial / "best.weights.h5")  # training mode updated moving statistics
    kept = state["history"][state["best_epoch"] - 1]
    out = {"train_oa_inference": inference["overall_accuracy"],
           "train_oa_training_mode": training["overall_accuracy"],
           "train_oa_logged": kept.get("overall_accuracy"),
           "train_macro_f1_inference": inference["macro_f1"]}
    gap = (training["overall_accuracy"] or 0) - (inference["overall_accuracy"] or 0)
    out["gap"] = round(gap, 4)
    if abs(gap) > 0.05:
        log.warning("training-split accuracy is %.3f in inference mode but %.3f with batch "
                    "statistics: the normalisation statistics did not settle; the map will be "
                    "wrong. Use train.model.norm=layer", inference["overall_accuracy"],
                    training["overall_accuracy"])
    return out


def restore(model, partial: Path) -> None:
    """Weights and optimizer state (moments, step count) of the last finished epoch.

    Keras 3 stores a compiled model's optimizer variables in ``.weights.h5`` and loads them only
    into an optimizer that is already built, so it is built first."""
    model.optimizer.build(model.trainable_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Skipping variable loading" = not restored
        try:
            model.load_weights(partial / "last.weights.h5")
        except (UserWarning, ValueError) as exc:
            raise ResumeError(f"{partial}: the checkpoint does not fit this model ({exc})") \
                from None


def network_predictor(model, batch_size: int, days=None):
    """``x (n, T, H, W, F) -> logits (n, H, W, K)`` of a network, in batches."""
    from landcover.models import model_inputs

    def predict(x):
        out = [np.asarray(model.predict_on_batch(model_inputs(model, x[a:a + batch_size], days)))
               for a in range(0, len(x), batch_size)]
        return np.concatenate(out)

    return predict
