"""Benchmark: does the training input pipeline keep the model fed?

The SAME model (``train.model`` config, built with ``landcover.models.build_model`` and compiled as
``landcover train`` does: Adam with the cosine schedule, ``MaskedLoss``, ``ConfusionMatrix`` as a
weighted metric) is trained with ``model.fit(..., epochs=E, verbose=0)`` on the training split of
one prepared dataset, fed

(a) by the former pipeline: ``PatchStream(ds, "train", shuffle=True, augment=cfg.train.augment,
    ...).tf_dataset()`` streaming the Zarr store (chunk reads in threads, shuffle, augmentation,
    ``from_generator`` + ``prefetch``; ``stream.epoch`` set at each epoch begin, as in training);
(d) by the pipeline ``landcover train`` uses: the same stream as a ``keras.utils.PyDataset``
    (``.keras_dataset()``, a read-ahead thread; no tf.data, so any Keras backend);
(b) by in-memory tensors: ``tf.data.Dataset.from_tensor_slices((x, y, w)).batch(B)`` holding exactly
    the training split (read once with ``ds.read`` before timing; tf.data autotuning off, there is
    nothing to tune): same shapes and batch sizes, no reading, shuffling or augmentation, so the
    only difference is the input pipeline.

Printed: training steps/s of (a), (d) and (b), the ratios (a)/(b) and (d)/(b) (target >= 0.9:
the pipeline never starves the model) and (d)/(a) (target >= 0.95: the backend-free pipeline costs
no steps/s), and (c) the pipeline alone (``stream.tf_dataset()`` iterated without a model)
in batches/s and patches/s, to show its headroom. Each model is built fresh (same seed) and trained
one warm-up epoch (tracing, page cache) that is not timed; then (a), (b) and (c) are timed in
alternating rounds (``--repeats``, the order flipped every round) and the best round is reported,
since timings on a shared machine vary; the median ratio of the rounds is printed too, since a
stall that hits only some rounds is a property of the pipeline, not noise. Note that (a) and the
model share the CPU cores.

The dataset (synthetic 12-date Landsat 8 C2 L2 stacks and a dense 5-class label raster written by
``bench_prepare``/``bench_stack``, then ``landcover.prepare.prepare`` with the default config) is
cached in ``--workdir`` and reused by later runs. The default 1024^2 px scene gives 796 training
patches of 30x30 px (12 dates x 9 features), i.e. 50 steps per epoch at batch 16.

Run:  python benchmarks/bench_train.py [--size 1024] [--batch-size 16] [--epochs 2] [--repeats 3]
          [--architecture NAME] [--filters 16] [--layers 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_prepare import make_scenes, write_labels  # noqa: E402


def dataset_path(workdir: Path, size: int, dates: int) -> Path:
    """The prepared dataset for (size, dates), made once and reused."""
    out = workdir / f"train_s{size}_d{dates}.zarr"
    if out.exists():
        return out
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes

    folder = workdir / f"scenes_s{size}_d{dates}"
    print(f"writing synthetic scenes {size}x{size} x {dates} dates in {folder}", flush=True)
    scenes = make_scenes(folder, size, dates)
    labels = write_labels(folder, size)
    print(f"preparing {out}", flush=True)
    t0 = time.perf_counter()
    prepare(LocalScenes(tuple(str(s) for s in scenes)), labels, out, load_config(None, []),
            progress=False)
    print(f"  prepared in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def compiled_model(ds, tc, steps_per_epoch: int):
    """A fresh model compiled exactly as ``landcover train`` compiles it (same seed)."""
    import keras

    from landcover.losses import MaskedLoss
    from landcover.metrics import ConfusionMatrix
    from landcover.models import build_model, model_input_shape

    keras.utils.set_random_seed(tc.seed)
    shape = model_input_shape(tc.model, *ds.input_shape)
    k = ds.num_classes
    model = build_model(dataclasses.asdict(tc.model), shape, k)
    lr = (keras.optimizers.schedules.CosineDecay(tc.learning_rate,
                                                 decay_steps=steps_per_epoch * tc.epochs)
          if tc.schedule == "cosine" else tc.learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=MaskedLoss(tc.loss.kind, k, ignore_label=ds.ignore_label,
                                  focal_gamma=tc.loss.focal_gamma,
                                  dice_weight=tc.loss.dice_weight),
                  weighted_metrics=[ConfusionMatrix(k, ignore_label=ds.ignore_label,
                                                    name="miou")],
                  jit_compile=tc.jit_compile)
    return model


def main() -> None:
    from landcover.models import architecture_names, default_architecture

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-train"))
    ap.add_argument("--size", type=int, default=1024, help="scene side in px (30 m)")
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per round (>= 2)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating timed rounds (best of)")
    ap.add_argument("--architecture", default=default_architecture(),
                    choices=architecture_names())
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.epochs < 2 or args.repeats < 1:
        ap.error("--epochs must be >= 2 and --repeats >= 1")

    path = dataset_path(args.workdir, args.size, args.dates)

    from landcover.config import load_config
    from landcover.dataset import open_dataset
    from landcover.network_training import _accelerators, _setup
    from landcover.pipeline import PatchStream
    from landcover.runtime import import_keras

    keras = import_keras()  # imports TensorFlow with its start-up noise silenced
    import tensorflow as tf

    cfg = load_config(None, [f"train.batch_size={args.batch_size}",
                             f"train.epochs={args.epochs}",
                             f"train.model.architecture={args.architecture}",
                             f"train.model.filters={args.filters}",
                             f"train.model.layers={args.layers}"])
    tc = cfg.train
    _setup(tc)  # seeds, op determinism, float32 policy: as in ``landcover train``
    ds = open_dataset(path)
    stream = PatchStream(ds, "train", batch_size=tc.batch_size, shuffle=True,
                         augment=tc.augment, seed=tc.seed, shuffle_chunks=tc.shuffle_chunks,
                         class_weights=tc.loss.class_weights)
    steps, n = len(stream), stream.size
    t, h, w, f = ds.input_shape
    gpus = _accelerators()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), {cpu}; "
          f"GPU: {', '.join(gpus) if gpus else 'none found'}")
    print(f"versions: python {platform.python_version()}, tensorflow {tf.__version__}, keras "
          f"{keras.__version__} ({keras.backend.backend()})")
    print(f"dataset: {path} ({args.size}^2 px, {t} dates), train split {n} patches of {h}x{w} px "
          f"x {f} features; batch {tc.batch_size} -> {steps} steps per epoch")
    print(f"model: {tc.model.architecture}, filters {tc.model.filters}, layers "
          f"{tc.model.layers}; {args.epochs} timed epochs per round, best of {args.repeats} "
          f"rounds after one warm-up epoch each", flush=True)

    # (b)'s data: exactly the training split, in memory, read once before any timing
    a, b = ds.split_range("train")
    x, y, wt = ds.read(a, b)
    if not tc.loss.class_weights:
        wt = (wt > 0).astype("float32")
    in_memory = tf.data.Dataset.from_tensor_slices((x, y, wt)).batch(tc.batch_size)
    # nothing to tune here; and tf.data's autotuning thread can hold up the teardown of an epoch's
    # iterator for many seconds (seen with TF 2.21), which must not count against the baseline
    options = tf.data.Options()
    options.autotune.enabled = False
    in_memory = in_memory.with_options(options)
    del x, y, wt

    epoch_offset = [0]  # each round sees new epochs of the stream (its own shuffle/augmentation)
    set_epoch = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs=None: setattr(stream, "epoch", epoch_offset[0] + e))

    def fit(model, data, epochs, callbacks=()):
        t0 = time.perf_counter()
        model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=list(callbacks))
        return time.perf_counter() - t0

    models = {}
    for key, data, cbs in (("a", stream.tf_dataset(), [set_epoch]), ("b", in_memory, []),
                           ("d", stream.keras_dataset(), [set_epoch])):
        models[key] = compiled_model(ds, tc, steps)
        seconds = fit(models[key], data, 1, cbs)
        epoch_offset[0] += 1
        print(f"  warm-up epoch ({key}): {seconds:.1f} s", flush=True)

    def run_a():
        seconds = fit(models["a"], stream.tf_dataset(), args.epochs, [set_epoch])
        epoch_offset[0] += args.epochs
        return seconds

    def run_c():
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            stream.epoch = epoch_offset[0]
            epoch_offset[0] += 1
            for _batch in stream.tf_dataset():
                pass
        return time.perf_counter() - t0

    def run_d():
        seconds = fit(models["d"], stream.keras_dataset(), args.epochs, [set_epoch])
        epoch_offset[0] += args.epochs
        return seconds

    runs = {"a": run_a, "b": lambda: fit(models["b"], in_memory, args.epochs), "c": run_c,
            "d": run_d}
    times = {k: [] for k in runs}
    for r in range(args.repeats):
        for key in ("a", "d", "b", "c") if r % 2 == 0 else ("b", "d", "a", "c"):
            times[key].append(runs[key]())
        print(f"  round {r + 1}: " + ", ".join(
            f"({k}) {times[k][-1]:.1f} s" for k in runs), flush=True)

    best = {k: min(v) for k, v in times.items()}
    per_s = {k: steps * args.epochs / best[k] for k in runs}
    median = statistics.median(tb / ta for ta, tb in zip(times["a"], times["b"]))
    median_da = statistics.median(ta / td for ta, td in zip(times["a"], times["d"]))
    rows = [("(a) fit, PatchStream.tf_dataset (tf.data, former)", f"{per_s['a']:.2f} steps/s",
             f"{per_s['a'] * n / steps:.1f}"),
            ("(d) fit, PatchStream.keras_dataset (PyDataset, used)", f"{per_s['d']:.2f} steps/s",
             f"{per_s['d'] * n / steps:.1f}"),
            ("ratio (d) / (a)", f"{per_s['d'] / per_s['a']:.3f}", "target >= 0.95"),
            ("ratio (d) / (a), median of the rounds", f"{median_da:.3f}", ""),
            ("ratio (d) / (b)", f"{per_s['d'] / per_s['b']:.3f}", "target >= 0.9"),
            ("(b) fit, in-memory tensors", f"{per_s['b']:.2f} steps/s",
             f"{per_s['b'] * n / steps:.1f}"),
            ("ratio (a) / (b)", f"{per_s['a'] / per_s['b']:.3f}", "target >= 0.9"),
            ("ratio (a) / (b), median of the rounds", f"{median:.3f}", ""),
            ("(c) pipeline alone, no model", f"{per_s['c']:.2f} batches/s",
             f"{per_s['c'] * n / steps:.1f}"),
            ("headroom (c) / (b)", f"{per_s['c'] / per_s['b']:.1f}x", "")]
    print("\n| measure | rate | patches/s |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nall rounds (s): " + "; ".join(
        f"({k}) " + ", ".join(f"{s:.1f}" for s in v) for k, v in times.items()))
    if args.json:
        import json

        args.json.write_text(json.dumps({
            "steps_per_epoch": steps, "patches": n, "backend": keras.backend.backend(),
            "steps_s": {"tf_data": per_s["a"], "in_memory": per_s["b"], "pyDataset": per_s["d"],
                        "pipeline_alone_batches_s": per_s["c"]},
            "ratio_pydataset_tf_data": per_s["d"] / per_s["a"],
            "ratio_pydataset_tf_data_median": median_da,
            "rounds_s": times}, indent=1))


if __name__ == "__main__":
    main()
