"""``landcover check-samples``: find labelled samples whose class their pixels' series contradict.

A **sample** is what a person labelled in one go: a polygon (one row of vector labels), the
features that share a value of a sample column (``--column``, else ``prepare.split.column``: a
field number), or, for raster labels, the pixels of one class in one block of
``prepare.split.block_size`` px. A feature whose column value is a fixed split word (``train``,
``validation``, ``test``, ``none``) or empty is a sample of its own. The pixels of one sample with
one class code are the sample; a group holding two classes is two samples.

**Method** (after sits' ``sits_som_map`` / ``sits_som_clean_samples``, with a leave-one-out):

1. *Pixels* and 2. *features* (:mod:`landcover.check_pixels`): the labelled pixels read as
   ``prepare`` reads them, at most ``per_sample`` per sample, turned into the pixel classifiers'
   features (:func:`landcover.pixel.pixel_features`) with gaps filled linearly in time.
3. *SOM.* A self-organising map (minisom; ``grid`` x ``grid`` neurons, Gaussian neighbourhood,
   PCA-initialised, seeded) is trained on the pixels; each pixel goes to its best-matching neuron.
4. *Neighbourhood probabilities.* ``C[j, k]`` counts the pixels of class ``k`` on neuron ``j``.
   The evidence of neuron ``j`` is smoothed over the map, ``M = H C`` with ``H[i, j] =
   exp(-d(i, j)^2 / (2 radius^2))`` (``d`` in neurons), and turned into class probabilities
   with a Dirichlet prior of ``prior_weight`` pixels spread as the class shares ``pi``:
   ``p[j, k] = (M[j, k] + prior_weight pi_k) / (sum_k M[j, k] + prior_weight)``. For each sample
   its own pixels are taken out of ``C`` first (leave-one-out: a mislabelled field must not vouch
   for itself), and ``p`` is averaged over its pixels' neurons.
5. *Verdict.* ``probability`` = the sample's own class under that average; ``suggested`` = the most
   probable class. ``suspect`` when the probability is below ``suspect`` and another class is
   suggested; ``doubtful`` when below ``doubtful``; else ``clean``.

Outputs (:mod:`landcover.check_outputs`): a GeoPackage (layer ``samples``: one row per sample)
styled by verdict for QGIS, and ``<OUT>_som.png``: the SOM grid coloured by class.
``prepare`` drops the suspect samples through :func:`suspect_samples` and
:meth:`Suspects.drop_from`.

minisom is imported inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.check_pixels import (
    COLUMNS,
    KEY,
    Pixels,
    SampleCheck,
    Samples,
    read_pixels,
    sample_groups,
)
from landcover.classes import ClassTable, load_class_table
from landcover.config.schema import CheckSamplesConfig
from landcover.errors import LabelError, UsageError

log = logging.getLogger(__name__)

VERDICTS = ("clean", "doubtful", "suspect")
_DEFAULTS = CheckSamplesConfig()


@dataclass(frozen=True)
class CheckSettings:
    """How samples are checked (see the module docstring).

    ``grid`` neurons a side (``None``: ``sqrt(5 sqrt(pixels))`` rounded, from 4 to 30);
    ``iterations`` of SOM training (``None``: 10 per pixel, 20,000 to 200,000); ``sigma`` the
    SOM's initial neighbourhood width in neurons (``None``: ``grid / 4``); ``radius`` and
    ``prior_weight`` of the neighbourhood probabilities; ``suspect`` and ``doubtful`` the
    probability thresholds; ``per_sample`` pixels read per sample at most; ``seed`` of every draw.
    """

    # the defaults are prepare.check_samples' (landcover.config.schema, their one home)
    grid: int | None = _DEFAULTS.grid
    iterations: int | None = _DEFAULTS.iterations
    sigma: float | None = _DEFAULTS.sigma
    radius: float = _DEFAULTS.radius
    prior_weight: float = _DEFAULTS.prior_weight
    suspect: float = _DEFAULTS.suspect
    doubtful: float = _DEFAULTS.doubtful
    per_sample: int = _DEFAULTS.per_sample
    seed: int = _DEFAULTS.seed

    def check(self, keys: str = "--") -> None:
        """Raise a UsageError naming the first bad setting: as a flag (``keys="--"``, e.g.
        ``--per-sample``) or a config key (``keys="prepare.check_samples."``)."""
        def name(field: str) -> str:
            return f"--{field.replace('_', '-')}" if keys == "--" else f"{keys}{field}"

        checks = [
            (self.grid is None or 2 <= self.grid <= 100, "grid", "must be 2 to 100 neurons"),
            (self.iterations is None or self.iterations >= 1, "iterations", "must be 1 or more"),
            (self.sigma is None or self.sigma > 0, "sigma", "must be above 0"),
            (self.radius >= 0, "radius", "must be 0 or more neurons"),
            (self.prior_weight >= 0, "prior_weight", "must be 0 or more"),
            (0 <= self.suspect <= 1, "suspect", "must be in [0, 1]"),
            (0 <= self.doubtful <= 1, "doubtful", "must be in [0, 1]"),
            (self.suspect <= self.doubtful, "suspect",
             f"({self.suspect}) must not be above {name('doubtful')} ({self.doubtful})"),
            (self.per_sample >= 1, "per_sample", "must be 1 or more"),
            (0 <= self.seed < 2 ** 32, "seed", "must be 0 or more (and below 2^32)"),
        ]
        for ok, field, message in checks:
            if not ok:
                raise UsageError(message, flag=name(field))


# --------------------------------------------------------------------------------------- SOM
def som_side(n: int) -> int:
    """Neurons a side for ``n`` pixels: ``sqrt(5 sqrt(n))`` rounded (the usual 5 sqrt(n) neurons
    of a square map), from 4 to 30."""
    return int(np.clip(round(np.sqrt(5.0 * np.sqrt(max(n, 1)))), 4, 30))


def fit_som(x: np.ndarray, settings: CheckSettings, progress=None):
    """A SOM trained on ``x (n, P)`` and the best-matching neuron of every row ``(n,)`` (a flat
    index into the ``side x side`` grid)."""
    from minisom import MiniSom

    from landcover.progress import stage

    side = settings.grid or som_side(len(x))
    iterations = settings.iterations or int(np.clip(10 * len(x), 20_000, 200_000))
    sigma = settings.sigma or max(1.0, side / 4.0)
    som = MiniSom(side, side, x.shape[1], sigma=sigma, learning_rate=0.5,
                  neighborhood_function="gaussian", random_seed=settings.seed)
    som.pca_weights_init(x)
    order = np.random.default_rng(settings.seed).integers(0, len(x), iterations)
    step = max(1, iterations // 100)
    with stage(progress, "Training the SOM", iterations, unit="iterations") as s:
        for t, i in enumerate(order):
            som.update(x[i], som.winner(x[i]), t, iterations)
            if (t + 1) % step == 0:
                s.advance(step)
    return som, best_matching(som.get_weights(), x)


def best_matching(weights: np.ndarray, x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Flat index of the nearest neuron (Euclidean) of each row of ``x``; ``weights (r, c, P)``."""
    w = weights.reshape(-1, weights.shape[-1]).astype(np.float64)
    w2 = (w * w).sum(axis=1)
    out = np.empty(len(x), np.int64)
    for a in range(0, len(x), chunk):
        part = x[a:a + chunk].astype(np.float64)
        out[a:a + chunk] = np.argmin(w2[None, :] - 2.0 * part @ w.T, axis=1)
    return out


def neighbourhood_probabilities(bmu: np.ndarray, sample: np.ndarray, cls: np.ndarray,
                                shape: tuple[int, int], num_classes: int, *, radius: float = 1.0,
                                prior_weight: float = 1.0):
    """Per sample, the class probabilities of its neighbourhood on the SOM without its own pixels
    (step 4 of the module docstring).

    Args:
        bmu: ``(n,)`` flat neuron index of each pixel; ``sample`` ``(n,)`` its sample index
            (0..S-1); ``cls`` ``(n,)`` its class index (one class per sample).
        shape: the SOM grid ``(rows, cols)``.

    Returns:
        ``(S, K)`` float64: the mean over each sample's pixels of the class probabilities of their
        neurons, counted from the other samples' pixels.
    """
    rows, cols = shape
    yy, xx = np.divmod(np.arange(rows * cols), cols)
    d2 = (yy[:, None] - yy[None, :]) ** 2 + (xx[:, None] - xx[None, :]) ** 2
    h = np.exp(-d2 / (2.0 * radius ** 2)) if radius > 0 else np.eye(rows * cols)
    counts = np.zeros((rows * cols, num_classes))
    np.add.at(counts, (bmu, cls), 1.0)
    smoothed = h @ counts
    prior = prior_weight * counts.sum(axis=0) / max(counts.sum(), 1.0)
    n_samples = int(sample.max()) + 1 if len(sample) else 0
    out = np.zeros((n_samples, num_classes))
    order = np.lexsort((bmu, sample))
    starts = np.searchsorted(sample[order], np.arange(n_samples + 1))
    for s in range(n_samples):
        idx = order[starts[s]:starts[s + 1]]
        if not len(idx):
            continue
        neurons, n = np.unique(bmu[idx], return_counts=True)
        k = cls[idx[0]]
        m = smoothed[neurons].copy()
        m[:, k] -= h[np.ix_(neurons, neurons)] @ n
        m = np.maximum(m, 0.0) + prior
        prob = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-12)
        out[s] = (n[:, None] * prob).sum(axis=0) / n.sum()
    return out


def verdicts(probability: np.ndarray, own: np.ndarray, suggested: np.ndarray,
             settings: CheckSettings) -> np.ndarray:
    """``clean`` / ``doubtful`` / ``suspect`` per sample (step 5 of the module docstring)."""
    out = np.full(len(probability), "clean", dtype=object)
    out[probability < settings.doubtful] = "doubtful"
    out[(probability < settings.suspect) & (suggested != own)] = "suspect"
    return out


# -------------------------------------------------------------------------------------- check
def settings_from(cfg, keys: str = "--", **overrides) -> CheckSettings:
    """The settings of ``prepare.check_samples`` when the configuration has that section (the
    defaults otherwise), with ``overrides`` that are not None on top; checked, errors naming
    ``keys`` (see :meth:`CheckSettings.check`)."""
    section = getattr(cfg.prepare, "check_samples", None)
    base = {f.name: getattr(section, f.name) for f in dataclasses.fields(CheckSettings)
            if section is not None and hasattr(section, f.name)}
    base.update({k: v for k, v in overrides.items() if v is not None})
    settings = CheckSettings(**base)
    settings.check(keys)
    return settings


def check(scenes, labels, cfg, *, settings: CheckSettings | None = None,
          column: str | None = None, progress=None) -> SampleCheck:
    """Check the samples of ``labels`` (a path, or labels opened on the scenes' grid) against
    ``scenes`` (a scene source or :class:`~landcover.scenes.Scene` objects); nothing is written.

    Raises:
        SceneError, LabelError, ClassTableError, DatasetError; UsageError for bad settings.
    """
    from landcover.labels import open_labels
    from landcover.scenes import as_scenes
    from landcover.stack import grid_of, stack_scenes

    settings = settings or settings_from(cfg)
    settings.check()
    scenes = as_scenes(scenes)
    stack = stack_scenes(scenes, cfg.scenes)
    grid = grid_of(stack)
    table = load_class_table(cfg.prepare.classes) if cfg.prepare.classes else None
    if isinstance(labels, (str, Path)):
        labels = open_labels(labels, grid, cfg.prepare.labels, table)
    samples = sample_groups(labels, cfg, column)
    polygonal = labels.kind == "vector" and bool(
        labels.frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all())
    if table is None:
        table = _derived_table(labels, grid, samples, cfg)
    pixels = read_pixels(scenes, stack, labels, samples, table, cfg,
                         per_sample=settings.per_sample, seed=settings.seed,
                         shapes=not polygonal, progress=progress)
    lut = table.lut()
    sample = np.searchsorted(pixels.keys, pixels.key)
    cls = lut[pixels.key % KEY].astype(np.int64)
    som, bmu = fit_som(pixels.features, settings, progress)
    side = som.get_weights().shape[0]
    probs = neighbourhood_probabilities(bmu, sample, cls, (side, side), len(table),
                                        radius=settings.radius,
                                        prior_weight=settings.prior_weight)
    hits = np.zeros((side * side, len(table)), np.int64)
    np.add.at(hits, (bmu, cls), 1)
    checked = np.bincount(sample, minlength=len(pixels.keys))
    rows = _table(labels, samples, table, pixels, probs, checked, settings, polygonal, grid)
    verdict = rows["verdict"]
    summary = {"samples": len(rows), "by": samples.kind,
               "verdicts": {v: int((verdict == v).sum()) for v in (*VERDICTS, "unchecked")},
               "pixels_checked": len(pixels.key),
               "dates": [d.isoformat() for d in pixels.dates],
               "som": {"grid": [side, side], "sigma": settings.sigma or max(1.0, side / 4.0),
                       "iterations": settings.iterations or int(
                           np.clip(10 * len(pixels.key), 20_000, 200_000))},
               "settings": dataclasses.asdict(settings)}
    return SampleCheck(rows, som.get_weights(), hits.reshape(side, side, -1), table, summary,
                       samples, pixels.keys)


def _derived_table(labels, grid, samples, cfg) -> ClassTable:
    """The class table of the codes in the labels (when ``prepare.classes`` names none)."""
    if labels.kind == "vector":
        codes = sorted({int(c) for c in labels.frame["code"] if 0 <= c < 255})
    else:
        found = set()
        for tile in grid.tiles(int(cfg.prepare.patches.tile_size)):
            codes = labels.codes(grid, *tile)
            found |= set(np.unique(codes[(codes >= 0) & (codes < 255)]).tolist())
        codes = sorted(found)
    if not codes:
        raise LabelError(f"{labels.path}: no usable class code (0..254) in the labels")
    return labels.table(codes)


def _table(labels, samples: Samples, table: ClassTable, pixels: Pixels, probs: np.ndarray,
           checked: np.ndarray, settings: CheckSettings, polygonal: bool, grid):
    """The GeoDataFrame of samples (see :func:`check_samples`)."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    keys = pixels.keys
    gid, code = keys // KEY, keys % KEY
    idx = table.lut()[code].astype(np.int64)
    own = probs[np.arange(len(keys)), idx]
    suggested = np.argmax(probs, axis=1)
    has = checked > 0
    verdict = verdicts(own, idx, suggested, settings)
    verdict[~has] = "unchecked"
    names, codes = np.array(table.names, dtype=object), np.array(table.codes)
    data = {"sample_id": np.arange(1, len(keys) + 1)}
    if samples.feature_group is not None and samples.column is None:
        first = {int(g): i for i, g in enumerate(samples.feature_group)}
        rows = [first[int(g)] for g in gid]
        for name, values in labels.extra.items():
            if name not in COLUMNS:
                data[name] = np.asarray(values)[rows]
    elif samples.column is not None:
        first = {}
        for i, g in enumerate(samples.feature_group):
            first.setdefault(int(g), i)
        values = np.asarray(labels.extra[samples.column])
        name = samples.column if samples.column not in COLUMNS else f"{samples.column}_labels"
        data[name] = values[[first[int(g)] for g in gid]]
    else:
        data["block"] = gid
    data.update({
        "class_code": code, "class_name": names[idx], "pixels": pixels.counts,
        "pixels_checked": checked,
        "probability": np.where(has, np.round(own, 4), np.nan),
        "suggested_code": np.where(has, codes[suggested], -1),
        "suggested_class": np.where(has, names[suggested], ""),
        "suggested_probability": np.where(has, np.round(probs.max(axis=1), 4), np.nan),
        "verdict": verdict.astype(str)})
    if polygonal:
        frame = labels.frame
        key_of = samples.feature_group * KEY + frame["code"].to_numpy()
        geoms = frame.geometry.groupby(key_of).agg(
            lambda g: shapely.union_all(g.to_numpy()))
        geometry = [geoms.get(int(k)) for k in keys]
    else:
        geometry = [shapely.union_all(pixels.outlines.get(int(k), [])) for k in keys]
    geometry = [shapely.geometry.MultiPolygon([g]) if g is not None and g.geom_type == "Polygon"
                else g for g in geometry]
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry=geometry, crs=grid.crs)


# ------------------------------------------------------------------------------------ outputs
def som_png(path: Path) -> Path:
    """The SOM picture written beside ``OUT.gpkg``: ``OUT_som.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_som.png")


def check_samples(scenes, labels, out: str | Path, cfg, *, settings: CheckSettings | None = None,
                  column: str | None = None, overwrite: bool = False,
                  progress=None) -> SampleCheck:
    """Check the samples (:func:`check`) and write ``out`` (a GeoPackage, layer ``samples``, styled
    by verdict for QGIS) and ``OUT_som.png``, both under temporary names renamed when complete.

    The table has one row per sample: ``sample_id``; the sample column's value (``--column``), the
    labels' own columns (one feature per sample) or ``block`` (raster labels); ``class_code``,
    ``class_name``; ``pixels`` (labelled) and ``pixels_checked`` (read and observed);
    ``probability`` of its class in its SOM neighbourhood; ``suggested_code``,
    ``suggested_class``, ``suggested_probability``; ``verdict`` (``clean``, ``doubtful``,
    ``suspect``, or ``unchecked`` without a valid observation).

    Raises:
        UsageError: ``out`` is not a ``.gpkg``; OutputExistsError; the errors of :func:`check`.
    """
    from landcover.check_outputs import write_som_png, write_table
    from landcover.maps import writing
    from landcover.outputs import OutputSet

    out = Path(out).absolute()
    if out.suffix.lower() != ".gpkg":
        raise UsageError(f"{out.name}: the check is written as a GeoPackage; give a name ending "
                         "in .gpkg", flag="--out")
    png = som_png(out)
    with OutputSet([out, png], overwrite, folders=[False, False]) as outputs:
        result = check(scenes, labels, cfg, settings=settings, column=column, progress=progress)
        with writing(out):
            folder = outputs.temporary(out)
            folder.mkdir()
            write_table(result, folder / out.name)
            write_som_png(result, folder / png.name)
            outputs.commit({out: folder / out.name, png: folder / png.name})
    result.summary.update(output=str(out), som_png=str(png))
    return result


# ------------------------------------------------------------------------ prepare's entry point
@dataclass(frozen=True)
class Suspects:
    """The suspect samples of labels: their keys (``group * 256 + code``) and the check."""

    keys: np.ndarray
    result: SampleCheck

    def __len__(self) -> int:
        return len(self.keys)

    def drop_from(self, labels, *, spare: str | None = None):
        """``labels`` without the suspect samples' pixels: vector labels lose the features of
        those samples (except those whose value in the column ``spare`` is ``test``: a fixed
        test split stays as labelled, so that scores stay comparable); raster labels read ``-1``
        (no label) on them."""
        samples = self.result.samples
        if labels.kind == "vector":
            keys = samples.feature_group * KEY + labels.frame["code"].to_numpy()
            keep = ~np.isin(keys, self.keys)
            if spare is not None and spare in labels.extra:
                words = np.array([str(v).strip().lower() for v in labels.extra[spare]])
                keep |= words == "test"
            return dataclasses.replace(
                labels, frame=labels.frame[keep].reset_index(drop=True),
                extra={k: np.asarray(v)[keep] for k, v in labels.extra.items()})
        return _WithoutSamples(labels, samples.source, self.keys)


class _WithoutSamples:
    """Raster labels with ``-1`` on the pixels of the given sample keys (other attributes are
    the labels' own)."""

    def __init__(self, labels, groups, keys):
        self._labels, self._groups, self._keys = labels, groups, np.asarray(keys)

    def __getattr__(self, name):
        if name.startswith("_"):  # unset during unpickling (dask workers): no recursion
            raise AttributeError(name)
        return getattr(self._labels, name)

    def codes(self, target, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        from landcover.splits import BlockGroups

        codes = self._labels.codes(target, row0, col0, h, w)
        groups = BlockGroups(self._groups.block, target.width)
        key = groups.groups(target, row0, col0, h, w) * KEY + codes
        return np.where((codes >= 0) & np.isin(key, self._keys), -1, codes)


def suspect_samples(scenes, labels, cfg, *, progress=None) -> Suspects:
    """The samples that ``prepare`` drops with ``prepare.labels.drop_suspect``: those that
    :func:`check` marks suspect, with the settings of ``prepare.check_samples`` (the defaults when
    the configuration has no such section). ``labels``: a path or labels opened on the scenes'
    grid. Use :meth:`Suspects.drop_from` on the opened labels."""
    settings = settings_from(cfg, "prepare.check_samples.")
    result = check(scenes, labels, cfg, settings=settings, progress=progress)
    suspect = result.table["verdict"].to_numpy() == "suspect"
    log.info("check-samples: %d of %d samples suspect (%s)", int(suspect.sum()), len(suspect),
             result.samples.kind)
    return Suspects(result.keys[suspect], result)
