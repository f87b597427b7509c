"""A pretrained encoder folder (``landcover pretrain --out DIR``): reading it, checking it against a
dataset and a network, and starting a network from it.

The folder holds ``encoder.json`` (what it was trained on and how: its provenance) and
``encoder.weights.h5`` (the weights of the pretraining network: the encoder and the
reconstruction head; Keras' HDF5 weights, no code, nothing unpickled). A network takes the
encoder's weights layer by layer name (the encoder was built by the same builder); a folder made
for other bands, features or network settings is refused with what differs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from landcover.errors import ModelError

ENCODER_FORMAT = 1
RECORD = "encoder.json"
WEIGHTS = "encoder.weights.h5"
FLAG = "train.pretrain"
FROZEN_HEAD_UNITS = 64
"""``train.model.head_units: null`` with a frozen pretrained encoder: maipo 10 % / 3 %, three
seeds, macro F1 0.723 / 0.684 with these 64 units against 0.675 / 0.638 with the logits straight
from the encoder (docs/training.md)."""


FINETUNE_FROM_PIXELS = 3000
"""``train.pretrain_mode: auto``: the encoder is fine-tuned (every weight trains) from this many
labelled training pixels on, and kept frozen below. Measured on maipo (docs/training.md, three
seeds, test macro F1): with all 4,822 training pixels fine-tuning scored 0.882 against 0.798
frozen (0.856 from scratch); with 1,403, 458 and 122 the frozen encoder scored 0.774, 0.723 and
0.684 against 0.753, 0.660 and 0.581 fine-tuned. On nc the rule is within 1 point of the better
mode at every share."""


def train_pixels(ds) -> int:
    """Labelled pixels of a prepared dataset's training split (as ``prepare`` counted them)."""
    return int(sum(c.get("pixels", {}).get("train", 0) for c in ds.classes))


def with_head(tc, pixels: int | None = None):
    """``tc`` (a ``TrainConfig``) with ``train.pretrain_mode: auto`` resolved (``finetune`` from
    :data:`FINETUNE_FROM_PIXELS` labelled training ``pixels`` on, else ``frozen``) and
    ``train.model.head_units: null``: :data:`FROZEN_HEAD_UNITS` when the network starts from a
    frozen pretrained encoder, else 0."""
    import dataclasses

    if tc.pretrain_mode == "auto":
        mode = "finetune" if pixels is not None and pixels >= FINETUNE_FROM_PIXELS else "frozen"
        tc = dataclasses.replace(tc, pretrain_mode=mode)
    if tc.model.head_units is not None:
        return tc
    frozen = tc.pretrain not in (None, "", "none") and tc.pretrain_mode in ("frozen", "staged")
    return dataclasses.replace(tc, model=dataclasses.replace(
        tc.model, head_units=FROZEN_HEAD_UNITS if frozen else 0))


def unfreeze(model, layers) -> None:
    """The second stage of ``train.pretrain_mode: staged``: the encoder ``layers`` (names, as
    :func:`start_from_encoder` returns them) of ``model`` trainable again (compile after)."""
    for name in layers:
        model.get_layer(name).trainable = True


def read_encoder(path: str | Path) -> dict:
    """The ``encoder.json`` of an encoder folder.

    Raises:
        ModelError: no such folder, not an encoder folder, or a damaged record.
    """
    path = Path(path)
    record = path / RECORD
    if not path.is_dir():
        raise ModelError(f"{FLAG}: {path} is not a folder; give a folder written by 'landcover "
                         "pretrain', or none")
    if not record.is_file() or not (path / WEIGHTS).is_file():
        raise ModelError(f"{FLAG}: {path} holds no {RECORD} and {WEIGHTS}: it is not an "
                         "encoder written by 'landcover pretrain'")
    try:
        meta = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{record}: the encoder's record is damaged ({exc}); run 'landcover "
                         "pretrain' again") from None
    if not isinstance(meta, dict) or meta.get("landcover_encoder") != ENCODER_FORMAT:
        raise ModelError(f"{record}: not an encoder record of this landcover (format "
                         f"{ENCODER_FORMAT}); run 'landcover pretrain' again")
    return meta


def spec_keys(spec: Mapping) -> dict:
    """The settings of ``train.model`` that decide the encoder's weights (the head's are left
    out)."""
    from landcover.models import architecture

    arch = architecture(spec["architecture"])
    keep = [k for k in arch.keys if k not in ("head_kernel", "head_units", "dropout")]
    return {"architecture": spec["architecture"], **{k: spec.get(k) for k in keep}}


def mismatch(meta: Mapping, inp: Mapping, spec: Mapping) -> str | None:
    """Why the encoder ``meta`` cannot start ``spec``'s network on inputs ``inp`` (a dataset's
    attributes or a bundle's ``input``: ``bands``, ``features``), or None."""
    enc = meta.get("input", {})
    if list(enc.get("bands", [])) != list(inp.get("bands", [])):
        return (f"it was pretrained on the bands {', '.join(enc.get('bands', []))}, the dataset "
                f"has {', '.join(inp.get('bands', []))}; pretrain with the dataset's "
                "scenes.bands")
    if list(enc.get("features", [])) != list(inp.get("features", [])):
        return (f"its features are {', '.join(enc.get('features', []))}, the dataset's "
                f"{', '.join(inp.get('features', []))}; pretrain with the dataset's "
                "prepare.features settings")
    if enc.get("fill") != inp.get("fill", "zero"):
        return (f"it was pretrained with prepare.features.fill={enc.get('fill')}, the dataset "
                f"has {inp.get('fill', 'zero')}")
    want, have = spec_keys(spec), meta.get("network", {})
    differ = sorted(k for k in want if have.get(k) != want[k])
    if differ:
        return ("it was pretrained for another network (" + ", ".join(
            f"train.model.{k}: {have.get(k)} there, {want[k]} here" for k in differ)
                + "); pretrain with the same train.model settings")
    return None


def check_encoder(path: str | Path, inp: Mapping, spec: Mapping) -> dict:
    """:func:`read_encoder`, then :func:`mismatch`.

    Raises:
        ModelError: the folder is not an encoder, or does not fit (naming what differs).
    """
    meta = read_encoder(path)
    why = mismatch(meta, inp, spec)
    if why:
        raise ModelError(f"{FLAG}: the encoder in {path} does not fit: {why}")
    return meta


def start_from_encoder(model, path: str | Path, inp: Mapping, spec: Mapping,
                       frozen: bool = False) -> dict:
    """Set ``model``'s encoder layers (a network of :func:`landcover.models.build_model`) to the
    pretrained weights in ``path``; with ``frozen``, make them untrainable (call before
    compiling). Returns the provenance the bundle records.

    Raises:
        ModelError: see :func:`check_encoder`; or a layer's weights do not fit.
    """
    from landcover.encoder.objective import build_pretrain_model

    meta = check_encoder(path, inp, spec)
    enc_in = meta["input"]
    n_bands = len(enc_in["bands"])
    shape = (None if enc_in.get("variable_dates", True) else enc_in["time_steps"],
             enc_in["window"], enc_in["window"], len(enc_in["features"]))
    net = build_pretrain_model(spec, shape, n_bands, enc_in.get("valid_channel"))
    try:
        net.load_weights(Path(path) / WEIGHTS)
    except (ValueError, OSError) as exc:
        raise ModelError(f"{FLAG}: {Path(path) / WEIGHTS} could not be loaded ({exc}); run "
                         "'landcover pretrain' again") from None
    names = set(meta["encoder_layers"])
    taken = []
    for layer in model.layers:
        if layer.name not in names or not layer.weights:
            continue
        weights = net.get_layer(layer.name).get_weights()
        shapes = [w.shape for w in layer.get_weights()]
        if [w.shape for w in weights] != shapes:
            raise ModelError(f"{FLAG}: the encoder's layer {layer.name} has weights of shapes "
                             f"{[w.shape for w in weights]}, the network's {shapes}; pretrain "
                             "with the same train.model settings and dates")
        layer.set_weights(weights)
        if frozen:
            layer.trainable = False
        taken.append(layer.name)
    if not taken:
        raise ModelError(f"{FLAG}: no layer of the {model.name} network is in the encoder in "
                         f"{path}")
    t = meta.get("training", {})
    return {"path": str(Path(path).absolute()), "mode": "frozen" if frozen else "finetune",
            "layers": taken, "objective": meta.get("objective"),
            "scenes": meta.get("scenes"), "dates": meta.get("dates"),
            "bands": enc_in["bands"], "steps": t.get("steps"), "epochs": t.get("epochs_done"),
            "windows": meta.get("sample", {}).get("windows"), "created": meta.get("created"),
            "weights_sha256": meta.get("weights_sha256")}
