"""The model bundle: a folder with everything classification needs and nothing it must guess.

::

    MODEL_DIR/
        model.keras            the network (logits out), loads with safe_mode=True, no pickle
        bundle.json            bands, features, normalisation, patch size, dates, class table,
                               architecture, metrics, resolved config, versions, content hash;
                               for networks with a ``days`` input, ``input.takes_dates`` and
                               ``input.days`` (``reference``: how days are counted, see
                               landcover.features.DAYS_REFERENCE; ``trained``: their range)
        config.yaml            the resolved configuration (scenes, prepare, train)
        history.csv / .json    metrics per epoch
        learning_curves.png    loss and scores per epoch
        confusion_matrix.png   validation confusion matrix of the kept (best) epoch

A pixel classifier's bundle (``train.model.architecture`` ``random_forest`` or
``gradient_boosting``, :mod:`landcover.pixel`) holds ``model.lgb.txt`` instead: the LightGBM
booster as text (no pickle), named by ``bundle.json``'s ``model_file`` (``model.keras`` when
absent, as in older bundles), with its SHA-256 in ``pixel.model_sha256``.

The content hash is the SHA-256 of the model file followed by the canonical JSON of
``bundle.json`` without its ``content_hash`` field; :func:`load_bundle` checks it.

Readers ask :func:`read_bundle_meta` (or :func:`load_bundle`, :func:`check_bundle`) for a
:class:`~landcover.bundle.meta.BundleMeta`: the typed record, where older bundles are upgraded.
:func:`read_metadata` gives the file's dict as it is, for tools that edit a bundle and write it
again (:func:`write_metadata`). What train writes into it: :mod:`landcover.bundle.writer`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from landcover.bundle.meta import (
    META_FILE,
    MODEL_FILE,
    BundleMeta,
    InputSpec,
    OutputSpec,
    model_file_name,
)
from landcover.contract import BUNDLE_FORMAT
from landcover.errors import ModelError


def content_hash(model_path: Path, meta: dict) -> str:
    digest = hashlib.sha256()
    with open(model_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    body = {k: v for k, v in meta.items() if k != "content_hash"}
    digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return "sha256:" + digest.hexdigest()


def model_file(meta: Mapping) -> str:
    """The name of a bundle's model file (:attr:`BundleMeta.model_file`): ``meta['model_file']``
    (a plain file name), else ``model.keras``.

    Raises:
        ModelError: a name that is not a plain file name of the bundle folder.
    """
    return model_file_name(meta)


def is_pixel(meta: Mapping) -> bool:
    """Whether a bundle holds a pixel classifier (:mod:`landcover.pixel`), by its architecture
    (:attr:`BundleMeta.is_pixel`)."""
    return _as_meta(meta).is_pixel


def _as_meta(meta: Mapping) -> BundleMeta:
    return meta if isinstance(meta, BundleMeta) else BundleMeta.from_json(meta)


def write_metadata(folder: Path, meta: Mapping) -> BundleMeta:
    """Add the content hash and write ``bundle.json`` (the model file, ``model_file(meta)``, must
    be there already); ``meta``: a :class:`BundleMeta` or the dict to write. The per-group
    confusion matrices that paired comparisons used are left out
    (:func:`landcover.estimate.without_confusions`). Returns what was written, as a record."""
    from landcover.estimate import without_confusions

    if isinstance(meta, BundleMeta):
        meta = meta.to_json()
    meta = dict(without_confusions(meta), landcover_model=BUNDLE_FORMAT)
    meta["content_hash"] = content_hash(folder / model_file(meta), meta)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False))
    return BundleMeta.from_json(meta)


def read_bundle_meta(folder: str | Path, *, verify: bool = True) -> BundleMeta:
    """The :class:`BundleMeta` of a bundle (older bundles upgraded), checked as
    :func:`read_metadata` checks it."""
    return BundleMeta.from_json(read_metadata(folder, verify=verify))


def read_metadata(folder: str | Path, *, verify: bool = True) -> dict:
    """``bundle.json`` of a bundle as the file holds it (for a tool that edits the bundle and
    writes it again; readers ask :func:`read_bundle_meta`), checked for format and (by default)
    content hash.

    Raises:
        ModelError: missing folder or files, unreadable JSON, other format, hash mismatch.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such model bundle (a folder written by 'landcover train')")
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ModelError(f"{folder}: not a complete model bundle, {META_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_path}: cannot read the bundle metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: cannot read the bundle metadata (not a JSON object)")
    model_path = folder / model_file(meta)
    if not model_path.is_file():
        raise ModelError(f"{folder}: not a complete model bundle, {model_path.name} is missing")
    if meta.get("landcover_model") != BUNDLE_FORMAT:
        raise ModelError(f"{meta_path}: bundle format {meta.get('landcover_model')!r}, this "
                         f"landcover reads format {BUNDLE_FORMAT}")
    if verify and content_hash(model_path, meta) != meta.get("content_hash"):
        raise ModelError(f"{folder}: content hash mismatch: {model_path.name} or bundle.json was "
                         "changed or is corrupt; train again or restore the bundle")
    return meta


def check_bundle(folder: str | Path) -> BundleMeta:
    """The bundle's metadata, once its architecture is known and its model file is a complete
    archive (the checks that need no Keras)."""
    import zipfile

    from landcover.models import architecture_names

    folder = Path(folder)
    meta = read_bundle_meta(folder)
    name = meta.architecture_name
    if name not in architecture_names():
        raise ModelError(f"{folder}: the model's architecture {name!r} is not one this landcover "
                         f"knows ({', '.join(architecture_names())}); use the landcover version "
                         "that trained it, or train again")
    if meta.is_pixel:
        path = folder / meta.model_file
        if hashlib.sha256(path.read_bytes()).hexdigest() != meta.pixel.get("model_sha256"):
            raise ModelError(f"{path}: the model's SHA-256 is not the one recorded in bundle.json "
                             "(changed or corrupt); train again or restore the bundle")
        return meta
    if meta.model_file != MODEL_FILE or not zipfile.is_zipfile(folder / MODEL_FILE):
        raise ModelError(f"{folder / meta.model_file}: not a complete .keras archive (truncated "
                         "or corrupt); train again or restore the bundle")
    return meta


def load_bundle(folder: str | Path):
    """``(model, BundleMeta)``: a Keras model loaded with ``safe_mode=True`` and not compiled, or
    for a pixel classifier's bundle a :class:`landcover.pixel_model.PixelClassifier` (no Keras)."""
    folder = Path(folder)
    meta = check_bundle(folder)
    if meta.is_pixel:
        from landcover.pixel_model import PixelClassifier

        return PixelClassifier.from_files(folder, meta), meta
    from landcover.models import custom_objects
    from landcover.runtime import import_keras

    keras = import_keras()
    try:
        model = keras.models.load_model(folder / MODEL_FILE, custom_objects=custom_objects(),
                                        compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a broken archive
        raise ModelError(f"{folder / MODEL_FILE}: cannot load the model "
                         f"({type(exc).__name__}: {exc})") from None
    return model, meta


__all__ = [
    "BUNDLE_FORMAT",
    "META_FILE",
    "MODEL_FILE",
    "BundleMeta",
    "InputSpec",
    "OutputSpec",
    "check_bundle",
    "content_hash",
    "is_pixel",
    "load_bundle",
    "model_file",
    "read_bundle_meta",
    "read_metadata",
    "write_metadata",
]
