"""``landcover train``: a prepared dataset to a model bundle.

:func:`train` opens the dataset and the output and hands them to the trainer of
``train.model.architecture``: ``auto`` (:mod:`landcover.auto`: the network and the pixel
classifiers scored on the same pixels, the best kept), a pixel classifier (:mod:`landcover.pixel`)
or a network (:mod:`landcover.network_training`). What a trained model scored and how its bundle
records it is :mod:`landcover.scoring`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from landcover.config import Config
from landcover.dataset import open_dataset, verify_checksums
from landcover.errors import ResumeError
from landcover.models import architecture
from landcover.network_training import STATE_FILE, check_dataset, train_network
from landcover.outputs import OutputSet, PartialRun


def train(dataset: str | Path, out: str | Path, cfg: Config, *, overwrite: bool = False,
          resume: bool = False, progress=None, callbacks: Sequence = ()) -> dict:
    """Train on a prepared dataset and write a model bundle to ``out``; returns the summary.

    Args:
        dataset: a folder written by ``landcover prepare``.
        out: the bundle folder to write.
        cfg: resolved configuration; only ``cfg.train`` is used (the dataset's own scenes and
            prepare settings are copied into the bundle).
        resume: continue the interrupted run of the same ``out`` (same dataset and train config).
        callbacks: extra Keras callbacks (after the built-in one).
        progress: a :mod:`landcover.progress` reporter (batches of every epoch and one line of
            scores per epoch; ``True`` logs them; ``None`` silent).

    Raises:
        DatasetError, OutputExistsError, OutputLockedError, ResumeError, ModelError.
    """
    out = Path(out).absolute()
    ds = open_dataset(dataset)
    cfg = resolve_pretrain(ds, cfg, progress)
    name = cfg.train.model.architecture
    partial = PartialRun(out, STATE_FILE)
    if resume and not partial.exists():  # before any work, for every model
        raise ResumeError(f"no interrupted run of {out} to continue (looked for {partial.path})")
    if name == "auto":  # landcover.auto: the network and the pixel classifiers, the best kept
        from landcover.auto import train_auto

        if ds.split_size("train") == 0:
            check_dataset(ds, cfg.train)
        with OutputSet([out], overwrite, folders=[True]) as outputs:
            verify_checksums(ds.path)
            return train_auto(ds, outputs, cfg, resume=resume, progress=progress,
                              callbacks=callbacks)
    if getattr(architecture(name), "pixel", False):  # a LightGBM pixel classifier (landcover.pixel)
        from landcover.pixel import train_pixel_bundle

        with OutputSet([out], overwrite, folders=[True]) as outputs:
            verify_checksums(ds.path)
            return train_pixel_bundle(ds, outputs, cfg, progress=progress)
    check_dataset(ds, cfg.train)
    with OutputSet([out], overwrite, folders=[True]) as outputs:
        verify_checksums(ds.path)  # every chunk as prepare wrote it (reads the dataset once)
        return train_network(ds, outputs, cfg, resume=resume, progress=progress,
                             callbacks=callbacks)


def auto_encoder_path(ds) -> Path:
    """Where ``train.pretrain: auto`` keeps the encoder of a dataset's scenes: beside the
    dataset, ``NAME.encoder``."""
    return ds.path.parent / f"{ds.path.name}.encoder"


def resolve_pretrain(ds, cfg: Config, progress=None) -> Config:
    """``cfg`` with ``train.pretrain: auto`` replaced by an encoder folder: the one beside the
    dataset (:func:`auto_encoder_path`) when it fits this dataset and network and was made with
    these ``pretrain.*`` settings, else one pretrained now on the dataset's own scenes (with
    the dataset's ``scenes`` and ``prepare`` settings) and kept there for the next run.
    Per-pixel classifiers leave it as it is."""
    tc = cfg.train
    if tc.pretrain != "auto" or (tc.model.architecture != "auto"
                                 and getattr(architecture(tc.model.architecture), "pixel", False)):
        return cfg
    from landcover.config import load_config
    from landcover.encoder.folder import mismatch, read_encoder
    from landcover.pretrain.run import network_spec, pretrain
    from landcover.scenes import LocalScenes

    made = load_config(base=ds.attrs.get("config") or {})
    data_cfg = dataclasses.replace(cfg, scenes=made.scenes, prepare=made.prepare)
    spec = network_spec(data_cfg)
    folder = auto_encoder_path(ds)
    reuse = False
    if folder.is_dir():
        try:
            meta = read_encoder(folder)
            reuse = (mismatch(meta, ds.attrs, spec) is None
                     and meta.get("config", {}).get("pretrain") == dataclasses.asdict(
                         cfg.pretrain)
                     and sorted(i for s in meta.get("scenes", []) for i in s.split("+"))
                     == sorted(s["scene_id"] for s in ds.attrs["scenes"]))
        except Exception:  # noqa: BLE001 - a damaged folder is made again
            reuse = False
    if not reuse:
        sources = tuple(dict.fromkeys(s["source"] for s in ds.attrs["scenes"]))
        pretrain(LocalScenes(sources, made.scenes.profile), folder, data_cfg, overwrite=True,
                 progress=progress)
    return dataclasses.replace(cfg, train=dataclasses.replace(tc, pretrain=str(folder)))
