"""The per-pixel classifier of ``random_forest`` and ``gradient_boosting``: its features, the
LightGBM model, its prediction and its file in the bundle (fitting a bundle is
:mod:`landcover.pixel`).

**Features** (:func:`pixel_features`, names from :func:`feature_names`). The dataset's inputs of
one pixel are ``(T, F)``: the standardised bands (invalid observations filled), the ``valid``
channel and the day-of-year sin/cos. :func:`pixel_features` makes these groups, in this order:

* ``bands`` -> ``BAND_tT``: every band on every date, as stored (standardised, filled);
* ``indices`` -> ``INDEX_tT``: spectral indices on every date where their bands exist (``ndvi``
  red/nir, ``ndwi`` green/nir, ``nbr`` nir/swir2), computed on the de-standardised values
  (``value * std + mean``: reflectance, or whatever unit the bands were prepared in), clipped to
  [-1, 1] (0 where the sum of the two bands is 0);
* ``valid`` -> ``valid_tT``: the validity of every date;
* ``percentiles`` -> ``NAME_pQ`` (with at least :data:`PERCENTILE_MIN_DATES` dates): the ``Q``-th
  percentile over the pixel's valid dates of every band and index (linear interpolation, as
  ``numpy.percentile``); all dates where a pixel has no valid one.

The models get :data:`FEATURE_GROUPS`, the bands alone, chosen by measurement
(``benchmarks/pixel_models.py``, all usable training pixels, OA / macro F1): on maipo (8 dates,
test split) bands 0.888 / 0.863 (random forest) and 0.906 / 0.882 (gradient boosting); + indices
0.887 / 0.860 and 0.888 / 0.861; + percentiles 0.871 / 0.845 and 0.911 / 0.888; + both 0.874 /
0.845 and 0.893 / 0.866; the validation split ranks them alike (indices cost 1-1.5 points). On nc
(1 date) indices change less than 0.2 points. The groups are recorded in the bundle
(``pixel.feature_groups``), so a bundle made with others classifies with its own. The day-of-year
features are the same for every pixel (one set of dates), so no group holds them.

**The bundle** holds the booster as LightGBM's text format (``model.lgb.txt``, written by
``Booster.model_to_string`` and read by ``Booster(model_str=...)``: no pickle), named in
``bundle.json`` (``model_file``), with its SHA-256 (``pixel.model_sha256``) besides the bundle's
content hash. A model file whose hash differs or that does not parse is refused (ModelError).

**Prediction.** :meth:`PixelClassifier.predict_on_batch` takes classify's windows
``(B, T, H, W, F)`` and returns log-probabilities ``(B, H, W, K)`` as the "logits": the softmax
that classify applies gives the probabilities back; a class without training pixels gets
:data:`ABSENT_LOGIT` (probability 0).

LightGBM is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from landcover.bundle.meta import BundleMeta
from landcover.errors import DatasetError, ModelError

MODEL_FILE = "model.lgb.txt"
INDICES = (("ndvi", "nir", "red"), ("ndwi", "green", "nir"), ("nbr", "nir", "swir2"))
"""``(name, a, b)``: the index ``(a - b) / (a + b)``, made where both bands exist."""
PERCENTILES = (10, 50, 90)
PERCENTILE_MIN_DATES = 3
GROUPS = ("bands", "indices", "valid", "percentiles")
"""Every feature group :func:`pixel_features` can make, in the order it makes them."""
FEATURE_GROUPS = ("bands",)
"""The feature groups a new classifier gets (measured: see the module's docstring)."""
ABSENT_LOGIT = -1.0e4  # the "logit" of a class without training pixels: softmax gives it 0
LOG_FLOOR = 1e-30  # probabilities are floored here before the log
PREDICT_ROWS = 1 << 16  # pixels predicted per LightGBM call (bounded memory for big windows)

# rounds (one tree per class each); the LightGBM parameters are declared with the architectures
# (landcover.models.pixel), measured against scikit-learn's forest in benchmarks/pixel_models.py
RF_ROUNDS = 100  # as the scikit-learn baseline's 100 trees
GB_ROUNDS = 1000  # at most; early stopping on the validation split
GB_PATIENCE = 50
GB_ROUNDS_NO_VALIDATION = 300


# ------------------------------------------------------------------------------------ features
def _layout(attrs: Mapping) -> tuple[list[str], int, int | None, np.ndarray, np.ndarray]:
    """``(bands, T, index of valid, mean, std)`` of a dataset's attributes or a bundle's
    ``input`` + ``normalisation`` + ``dates``."""
    bands = list(attrs["bands"])
    features = list(attrs.get("features") or bands)
    if "time_steps" in attrs:
        t = int(attrs["time_steps"])
    else:
        t = len(attrs["dates"])
    norm = attrs["normalisation"]
    mean = np.asarray(norm["mean"], np.float64)
    std = np.asarray(norm["std"], np.float64)
    if features[:len(bands)] != bands or len(mean) != len(bands) or len(std) != len(bands):
        raise ModelError("the input description (bands, features, normalisation) is "
                         "inconsistent; prepare the dataset or train the model again")
    valid = features.index("valid") if "valid" in features else None
    return bands, t, valid, mean, std


def _indices(bands: Sequence[str]) -> list[tuple[str, int, int]]:
    return [(name, bands.index(a), bands.index(b)) for name, a, b in INDICES
            if a in bands and b in bands]


def feature_names(attrs: Mapping, groups: Sequence[str] = FEATURE_GROUPS) -> list[str]:
    """The names of :func:`pixel_features`' columns, in order (see the module's docstring)."""
    _check_groups(groups)
    bands, t, _, _, _ = _layout(attrs)
    indices = [name for name, _, _ in _indices(bands)]
    names = []
    if "bands" in groups:
        names += [f"{b}_t{d}" for d in range(t) for b in bands]
    if "indices" in groups:
        names += [f"{i}_t{d}" for d in range(t) for i in indices]
    if "valid" in groups:
        names += [f"valid_t{d}" for d in range(t)]
    if "percentiles" in groups and t >= PERCENTILE_MIN_DATES:
        names += [f"{n}_p{q}" for n in bands + indices for q in PERCENTILES]
    return names


def _check_groups(groups: Sequence[str]) -> None:
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown feature group(s) {', '.join(map(str, unknown))}; the groups "
                         f"are {', '.join(GROUPS)}")


def _percentiles(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(n, C, len(PERCENTILES))``: percentiles over the valid dates of ``values (n, T, C)``
    (every date for a pixel without a valid one), linear interpolation."""
    n, t, c = values.shape
    valid = valid.copy()
    valid[~valid.any(axis=1)] = True
    s = np.sort(np.where(valid[:, :, None], values, np.inf), axis=1)  # valid ones first
    count = valid.sum(axis=1).astype(np.float64)  # (n,)
    out = np.empty((n, c, len(PERCENTILES)), np.float32)
    for k, q in enumerate(PERCENTILES):
        pos = q / 100.0 * (count - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, count.astype(np.int64) - 1)
        frac = (pos - lo)[:, None].astype(np.float32)
        a = np.take_along_axis(s, lo[:, None, None], axis=1)[:, 0]
        b = np.take_along_axis(s, hi[:, None, None], axis=1)[:, 0]
        out[:, :, k] = a + (b - a) * frac
    return out


def pixel_features(x: np.ndarray, attrs: Mapping,
                   groups: Sequence[str] = FEATURE_GROUPS) -> np.ndarray:
    """The tree models' features of pixels ``x (n, T, F)`` (the dataset's inputs, features as in
    ``attrs['features']``): float32 ``(n, P)``, finite, columns named by :func:`feature_names`.

    ``attrs``: the dataset's attributes, or a bundle's ``input`` with ``normalisation``."""
    _check_groups(groups)
    bands, t, vi, mean, std = _layout(attrs)
    x = np.asarray(x, np.float32)
    if x.ndim != 3 or x.shape[1] != t:
        raise ValueError(f"pixel_features: expected (n, {t}, F) inputs, got {x.shape}")
    n, nb = len(x), len(bands)
    z = x[:, :, :nb]
    parts = []
    if "bands" in groups:
        parts.append(z.reshape(n, t * nb))
    idx = _indices(bands)
    ind = np.zeros((n, t, len(idx)), np.float32)
    if idx and ("indices" in groups or "percentiles" in groups):
        refl = z * std.astype(np.float32) + mean.astype(np.float32)
        for k, (_, a, b) in enumerate(idx):
            num, den = refl[:, :, a] - refl[:, :, b], refl[:, :, a] + refl[:, :, b]
            ok = den != 0
            ind[:, :, k] = np.clip(np.divide(num, den, out=np.zeros_like(num), where=ok), -1, 1)
    if "indices" in groups:
        parts.append(ind.reshape(n, -1))
    valid = x[:, :, vi] > 0.5 if vi is not None else np.ones((n, t), bool)
    if "valid" in groups:
        parts.append(valid.astype(np.float32))
    if "percentiles" in groups and t >= PERCENTILE_MIN_DATES:
        parts.append(_percentiles(np.concatenate([z, ind], axis=2), valid).reshape(n, -1))
    out = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------ the model
def lightgbm_params(kind: str, num_features: int, num_classes: int, seed: int) -> dict:
    """The LightGBM parameters of the pixel architecture ``kind``: its declaration's
    (:mod:`landcover.models.pixel`) over the common ones (multiclass, seeded, deterministic).

    Raises:
        ValueError: ``kind`` is not a pixel architecture.
    """
    from landcover.models import architecture

    arch = architecture(kind)
    if not arch.pixel:
        raise ValueError(f"{kind} is a network, not a pixel classifier")
    common = {"objective": "multiclass", "num_class": int(num_classes), "seed": int(seed),
              "deterministic": True, "force_row_wise": True, "verbosity": -1,
              "num_threads": _threads(), "max_bin": 255}
    return {**common, **arch.build_body()(num_features, num_classes, seed)}


SMALL_CELLS = 2_000_000  # rows x features below which LightGBM runs on one thread


def _threads(cells: int | None = None) -> int:
    """LightGBM's threads for ``cells`` = rows x features: one for a small problem (measured on a
    busy 2-core machine: maipo's 4,822 training pixels fitted 9x slower on 2 threads than on 1,
    OpenMP threads waiting for each other), else the cores this process may use (OpenMP's
    default can exceed them in a container). ``LANDCOVER_LIGHTGBM_THREADS`` sets it."""
    import os

    env = os.environ.get("LANDCOVER_LIGHTGBM_THREADS")
    if env:
        return max(1, int(env))
    if cells is not None and cells < SMALL_CELLS:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class PixelClassifier:
    """A fitted tree ensemble over :func:`pixel_features`, with the classes it was trained on.

    Attributes:
        kind: ``random_forest`` or ``gradient_boosting``.
        booster: the ``lightgbm.Booster``.
        num_classes: K, the classes of the dataset.
        present: the class indices with training pixels (the booster's classes, in order).
        attrs: what :func:`pixel_features` needs (bands, features, normalisation, time steps).
        groups: the feature groups.
    """

    inputs = ("series",)  # one input, for landcover.models.model_inputs

    def __init__(self, kind: str, booster, num_classes: int, present: Sequence[int],
                 attrs: Mapping | None = None, groups: Sequence[str] = FEATURE_GROUPS,
                 prior: Sequence[float] | None = None):
        self.kind, self.booster = kind, booster
        self.num_classes = int(num_classes)
        self.present = [int(c) for c in present]
        self.attrs = dict(attrs) if attrs is not None else None
        self.groups = tuple(groups)
        self.prior = None if prior is None else np.asarray(prior, np.float64)
        self.name = kind
        if booster.params.get("boosting") == "rf" and self.prior is None:
            raise ValueError("a LightGBM random forest needs the prior of its training labels")

    def _proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities over the present classes. A random forest's are the averages over its
        trees of the leaves' (weighted) class shares, as scikit-learn's: see :func:`rf_shares`."""
        if self.prior is None:
            p = np.asarray(self.booster.predict(X, num_threads=_threads(X.size)), np.float64)
            return p[:, None] if p.ndim == 1 else p
        return rf_shares(self.booster, X, self.prior)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, K)`` (float64) of feature rows ``X (n, P)``; 0 for classes
        without training pixels."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        out = np.zeros((len(X), self.num_classes), np.float64)
        if not len(X):
            return out
        for a in range(0, len(X), PREDICT_ROWS):
            out[a:a + PREDICT_ROWS, self.present] = self._proba(X[a:a + PREDICT_ROWS])
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)

    def log_proba(self, X: np.ndarray) -> np.ndarray:
        """``log(predict_proba)`` as float32, :data:`ABSENT_LOGIT` for absent classes."""
        p = self.predict_proba(X)
        out = np.full(p.shape, ABSENT_LOGIT, np.float32)
        out[:, self.present] = np.log(np.maximum(p[:, self.present], LOG_FLOOR))
        return out

    def predict_on_batch(self, x) -> np.ndarray:
        """Log-probabilities ``(B, H, W, K)`` float32 of classify's windows ``x (B, T, H, W, F)``
        (the "logits": softmax gives the probabilities back)."""
        if isinstance(x, (list, tuple)):
            x = x[0]
        x = np.asarray(x, np.float32)
        b, t, h, w, f = x.shape
        pixels = np.moveaxis(x, 1, 3).reshape(b * h * w, t, f)
        out = np.empty((b * h * w, self.num_classes), np.float32)
        for a in range(0, len(pixels), PREDICT_ROWS):
            feats = pixel_features(pixels[a:a + PREDICT_ROWS], self.attrs, self.groups)
            out[a:a + PREDICT_ROWS] = self.log_proba(feats)
        return out.reshape(b, h, w, self.num_classes)

    __call__ = predict_on_batch

    def model_string(self) -> str:
        return self.booster.model_to_string()

    def to_files(self, folder: str | Path) -> dict:
        """Write the booster as text to ``folder/model.lgb.txt``; returns the bundle's records
        (``model_file``, ``pixel`` with the SHA-256)."""
        text = self.model_string().encode("utf-8")
        (Path(folder) / MODEL_FILE).write_bytes(text)
        return {"model_file": MODEL_FILE,
                "pixel": {"kind": self.kind, "library": "lightgbm", "format": "text",
                          "model_sha256": hashlib.sha256(text).hexdigest(),
                          "present_classes": self.present, "feature_groups": list(self.groups),
                          "prior": None if self.prior is None else
                          [float(v) for v in self.prior],
                          "features": feature_names(self.attrs, self.groups)
                          if self.attrs is not None else None,
                          "trees": int(self.booster.num_trees())}}

    @classmethod
    def from_files(cls, folder: str | Path, meta: BundleMeta) -> PixelClassifier:
        """The classifier of a bundle (``bundle.json`` read as ``meta``).

        Raises:
            ModelError: the model file is missing, its SHA-256 is not the recorded one, it does
                not parse, or it does not fit the bundle's features and classes.
        """
        import lightgbm

        folder = Path(folder)
        rec = meta.pixel
        path = folder / meta.model_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != rec.get("model_sha256"):
            raise ModelError(f"{path}: the model's SHA-256 is not the one recorded in "
                             "bundle.json (changed or corrupt); train again or restore the bundle")
        try:
            booster = lightgbm.Booster(model_str=data.decode("utf-8"))
        except Exception as exc:  # LightGBMError, UnicodeDecodeError ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: not a LightGBM model ({first}); train again or restore "
                             "the bundle") from None
        attrs = bundle_attrs(meta)
        groups = tuple(rec.get("feature_groups") or FEATURE_GROUPS)
        try:
            names = feature_names(attrs, groups)
        except ValueError as exc:
            raise ModelError(f"{path}: {exc}; train again") from None
        present = [int(c) for c in rec.get("present_classes") or ()]
        k = len(meta.classes)
        prior = rec.get("prior")
        rf = booster.params.get("boosting") == "rf"
        if names != rec.get("features") or booster.num_feature() != len(names) or \
                len(present) < 2 or max(present) >= k or \
                booster.num_model_per_iteration() != len(present) or \
                rf != (prior is not None) or (rf and len(prior) != len(present)):
            raise ModelError(f"{path}: the model does not fit the bundle's features and classes "
                             "(made by another landcover?); train again")
        return cls(rec.get("kind") or meta.architecture_name, booster, k, present,
                   attrs, groups, prior)


def bundle_attrs(meta: Mapping) -> dict:
    """What :func:`pixel_features` needs, from a bundle's metadata (a :class:`BundleMeta`, or a
    ``bundle.json`` dict being made)."""
    meta = BundleMeta.of(meta)
    inp = meta.input
    return {"bands": list(inp.bands), "features": list(inp.features),
            "time_steps": inp.time_steps, "normalisation": meta.normalisation}


def fit_pixel_classifier(kind: str, X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
                         *, seed: int = 0, num_classes: int, validation=None,
                         attrs: Mapping | None = None, groups: Sequence[str] = FEATURE_GROUPS,
                         params: Mapping | None = None, rounds: int | None = None
                         ) -> PixelClassifier:
    """Fit ``kind`` on feature rows ``X (n, P)``, class indices ``y (n,)``, sample weights ``w``.

    Args:
        validation: ``(X, y, w)`` for gradient boosting's early stopping (stops after
            :data:`GB_PATIENCE` rounds without a lower weighted multi-class log loss; without
            it, :data:`GB_ROUNDS_NO_VALIDATION` rounds). Ignored by the random forest.
        attrs, groups: recorded for :meth:`PixelClassifier.predict_on_batch`.
        params: LightGBM parameters over :func:`lightgbm_params`' (for measurements).
        rounds: trees per class (default :data:`RF_ROUNDS` or as above).

    Raises:
        DatasetError: fewer than 2 classes in ``y``.
    """
    import lightgbm

    y = np.asarray(y, np.int64)
    present = sorted(int(c) for c in np.unique(y))
    if len(present) < 2:
        raise DatasetError(f"the training pixels hold {len(present)} class(es); a pixel "
                           "classifier needs at least 2")
    lut = np.full(num_classes, -1, np.int64)
    lut[present] = np.arange(len(present))
    X = np.ascontiguousarray(X, dtype=np.float32)
    p = {**lightgbm_params(kind, X.shape[1], len(present), seed),
         "num_threads": _threads(X.size), **(params or {})}
    train = lightgbm.Dataset(X, lut[y], weight=w, free_raw_data=True,
                             params={"max_bin": p.get("max_bin", 255), "verbosity": -1})
    callbacks, valid_sets = [], []
    if p["boosting"] == "rf":
        n_rounds = rounds or RF_ROUNDS
    else:
        n_rounds = rounds or GB_ROUNDS_NO_VALIDATION
        if validation is not None and len(validation[1]):
            vx, vy, vw = validation
            keep = np.isin(vy, present)  # classes unseen in training cannot be scored
            if keep.any():
                valid_sets = [lightgbm.Dataset(np.ascontiguousarray(vx[keep], np.float32),
                                               lut[np.asarray(vy)[keep]],
                                               weight=None if vw is None else vw[keep],
                                               reference=train)]
                n_rounds = rounds or GB_ROUNDS
                callbacks = [lightgbm.early_stopping(GB_PATIENCE, verbose=False)]
    booster = lightgbm.train(p, train, num_boost_round=n_rounds, valid_sets=valid_sets,
                             valid_names=["validation"] * len(valid_sets), callbacks=callbacks)
    if valid_sets and booster.best_iteration > 0:
        booster = lightgbm.Booster(model_str=booster.model_to_string(
            num_iteration=booster.best_iteration))
    prior = None
    if p["boosting"] == "rf":
        wc = np.bincount(lut[y], weights=None if w is None else np.asarray(w, np.float64),
                         minlength=len(present))
        prior = wc / wc.sum()
        shares = rf_shares(booster, X[:2000], prior, normalise=False)
        if shares.min() < -1e-3 or shares.max() > 1 + 1e-3:  # LightGBM changed its rf
            raise ModelError(f"LightGBM {lightgbm.__version__}'s random forest does not give "
                             "class shares (outside [0, 1]); use gradient_boosting or the "
                             "LightGBM version of pyproject.toml")
    return PixelClassifier(kind, booster, num_classes, present, attrs, groups, prior)


def is_rf(kind: str) -> bool:
    """Whether the pixel architecture ``kind`` is a random forest (LightGBM ``boosting=rf``)."""
    return lightgbm_params(kind, 1, 2, 0)["boosting"] == "rf"


def rf_shares(booster, X: np.ndarray, prior: np.ndarray, *, normalise: bool = True) -> np.ndarray:
    """The class probabilities of a LightGBM random forest (``boosting=rf``, multiclass): per
    class, the mean over its trees of the training pixels' (weighted) class share in the leaf
    the pixel falls in, as scikit-learn's RandomForestClassifier.

    LightGBM fits each tree on the gradients at the initial score ``log p0`` (``p0``: the
    weighted class shares, ``prior``), so a leaf's value is ``log p0 + (s - p0) / (f p0 (1 -
    p0))`` with ``s`` its class share and ``f = K / (K - 1)`` the multiclass hessian's factor;
    the mean leaf value gives back the mean share. LightGBM's own probabilities (the softmax of
    the mean leaf value) favour the rare classes (``p0 (1 - p0)`` is small for them): on nc's test
    split the same forest has OA 0.589 with them, 0.644 with the shares. ``raw_score``
    gives the sum over the trees (not the mean). Rows are normalised to sum 1 (each class has
    its own trees, so the shares of a pixel sum to about 1) with ``normalise``."""
    prior = np.asarray(prior, np.float64)
    k = len(prior)
    raw = np.asarray(booster.predict(X, raw_score=True, num_threads=_threads(X.size)),
                     np.float64).reshape(len(X), k)
    mean = raw / max(1, booster.current_iteration())
    init = np.log(np.maximum(prior, 1e-15))
    f = k / (k - 1.0)
    s = prior + f * prior * (1.0 - prior) * (mean - init)
    if not normalise:
        return s
    s = np.clip(s, 0.0, 1.0)
    total = s.sum(axis=1, keepdims=True)
    return np.divide(s, total, out=np.full_like(s, 1.0 / k), where=total > 0)
