"""The labelled pixels of ``landcover check-samples`` (:mod:`landcover.check_samples`), read
as ``prepare`` reads them, and their pixel features.

**Samples.** A sample is a polygon (one row of vector labels), the features that share a value of
a sample column, or, for raster labels, the pixels of one class in one block of
``prepare.split.block_size`` px; a feature whose column value is a fixed split word (``train``,
``validation``, ``test``, ``none``) or empty is a sample of its own. Each labelled pixel gets the
key ``group * 256 + code`` of its sample (a group holding two classes is two samples).

**Reading** runs in two passes of dask tasks, one per ``prepare.patches.tile_size`` tile (each
opens its files by path, as ``prepare``'s do): the first counts the pixels of every sample (and
outlines them, when the sample's geometry must come from its pixels); the second reads, at most
``per_sample`` pixels per sample (each pixel kept with probability ``per_sample / pixels``, a
draw seeded by the seed and the tile), the reflectance and validity of every date
(:func:`landcover.stack.read_date_block`: the same QA masks and date mosaics). Memory is bounded
by a tile plus ``per_sample`` x samples x dates x bands values.

**Features.** Dates with a valid share below ``prepare.features.min_date_valid`` are dropped,
then pixels with fewer than ``prepare.features.min_valid_dates`` valid observations (at least one);
bands are standardised with the mean and deviation of the valid observations read, gaps filled
linearly in time (:class:`landcover.features.FeatureSpec`), and the pixel classifiers' features
made from them (:func:`landcover.pixel_model.pixel_features`: every band of every date).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landcover.classes import ClassTable
from landcover.errors import DatasetError, LabelError

FIXED_WORDS = ("train", "validation", "test", "none")
KEY = 256  # sample key = group id * KEY + class code


@dataclass(frozen=True)
class Samples:
    """The sample groups over the grid: a group source (``groups(grid, r0, c0, h, w)`` -> int64
    ids, -1 none), how samples were formed, and for vector labels the group id of every feature."""

    source: object
    kind: str  # "features", "column <name>", "blocks of N px"
    feature_group: np.ndarray | None = None  # (features,) group id per row of labels.frame
    column: str | None = None


def sample_groups(labels, cfg, column: str | None = None) -> Samples:
    """The groups that make samples (see the module docstring) for ``labels`` (opened by
    :func:`landcover.labels.open_labels`); ``column`` overrides ``prepare.split.column``.

    Raises:
        LabelError: ``column`` names no column of the labels, or is given for raster labels.
    """
    import pandas as pd

    from landcover.labels import VectorLabels
    from landcover.splits import BlockGroups, LabelGroups

    given = column is not None
    column = column if given else cfg.prepare.split.column
    flag, key = ("--column", "") if given else (None, " (prepare.split.column)")
    if labels.kind != "vector":
        if given:
            raise LabelError(f"{labels.path}: the labels are a raster; samples are blocks of "
                             "prepare.split.block_size px, not a column", flag=flag)
        block = int(cfg.prepare.split.block_size)
        return Samples(BlockGroups(block, 0), f"blocks of {block} px")
    n = len(labels.frame)
    ids = np.arange(n, dtype=np.int64)
    if column is not None:
        if column not in labels.extra:
            raise LabelError(f"{labels.path}: no column {column!r}{key} to group samples by; "
                             f"columns are {', '.join(labels.extra) or 'none'}", flag=flag)
        values = pd.Series(labels.extra[column]).astype("string").str.strip()
        own = values.isna() | values.str.lower().isin(FIXED_WORDS).fillna(False)
        distinct = sorted(set(values[~own]))
        lookup = {v: i for i, v in enumerate(distinct)}
        ids = np.where(own.to_numpy(), len(distinct) + ids,
                       [lookup.get(v, -1) if isinstance(v, str) else -1 for v in values])
        ids = ids.astype(np.int64)
    source = LabelGroups(VectorLabels(labels.path, labels.frame.assign(code=ids), {}, "first",
                                      labels.all_touched), ())
    return Samples(source, f"column {column}" if column else "features", ids, column)


def _grid_source(samples: Samples, grid) -> object:
    from landcover.splits import BlockGroups

    if isinstance(samples.source, BlockGroups):
        return BlockGroups(samples.source.block, grid.width)
    return samples.source


# ---------------------------------------------------------------------------------- reading
def _keys_tile(labels, groups, grid, tile, erode: int, known: np.ndarray):
    """Sample key per pixel of a tile ``(h, w)`` int64 (-1: no usable label or no group)."""
    from landcover.labels import window_codes

    r0, c0, h, w = tile
    codes = window_codes(labels, grid, r0, c0, h, w, erode)
    g = groups.groups(grid, r0, c0, h, w)
    ok = (codes >= 0) & (codes < KEY) & (g >= 0)
    ok[ok] = known[codes[ok]]
    return np.where(ok, g * KEY + codes, -1)


def survey_tile(labels, groups, grid, tile, erode: int, known: np.ndarray, shapes: bool):
    """Pass 1 of a tile: its sample keys, their pixel counts and (with ``shapes``) the outline
    of each key's pixels as shapely polygons ``{key: [polygon, ...]}``."""
    keys = _keys_tile(labels, groups, grid, tile, erode, known)
    found, counts = np.unique(keys[keys >= 0], return_counts=True)
    outlines = {}
    if shapes and len(found):
        import rasterio.features
        import shapely.geometry
        from rasterio.transform import Affine

        a, _, c, _, e, f = grid.transform
        r0, c0 = tile[0], tile[1]
        local = np.searchsorted(found, keys).astype(np.int32) + 1
        local[keys < 0] = 0
        transform = Affine(a, 0.0, c + c0 * a, 0.0, e, f + r0 * e)
        for geom, value in rasterio.features.shapes(local, mask=local > 0, transform=transform):
            outlines.setdefault(int(found[int(value) - 1]), []).append(
                shapely.geometry.shape(geom))
    return found, counts, outlines


def read_tile(date_scenes, bands, grid, mask, labels, groups, tile, erode: int,
              known: np.ndarray, keep: tuple[np.ndarray, np.ndarray], seed: int):
    """Pass 2 of a tile: the kept labelled pixels' keys ``(n,)``, reflectance ``(n, T, B)``
    float32 (NaN = no data) and validity ``(n, T)``. ``keep`` = (sorted keys, keep probability):
    each pixel is kept with its sample's probability (a draw seeded by ``seed`` and the tile)."""
    from landcover.stack import read_date_block

    r0, c0 = tile[0], tile[1]
    keys = _keys_tile(labels, groups, grid, tile, erode, known)
    rows, cols = np.nonzero(keys >= 0)
    k = keys[rows, cols]
    if len(k):
        where = np.clip(np.searchsorted(keep[0], k), 0, len(keep[0]) - 1)
        p = np.where(keep[0][where] == k, keep[1][where], 0.0)
        draw = np.random.default_rng([seed, r0, c0]).random(len(k))
        chosen = draw < p
        rows, cols, k = rows[chosen], cols[chosen], k[chosen]
    T, B = len(date_scenes), len(bands)
    refl = np.empty((len(k), T, B), np.float32)
    valid = np.zeros((len(k), T), bool)
    if len(k):
        y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        for t, scenes in enumerate(date_scenes):
            block = read_date_block(scenes, bands, grid, mask, r0 + y0, c0 + x0, y1 - y0,
                                    x1 - x0)[0]
            refl[:, t] = block[:-1, rows - y0, cols - x0].T
            valid[:, t] = block[-1, rows - y0, cols - x0] > 0.5
    return k, refl, valid


@dataclass(frozen=True)
class Pixels:
    """The labelled pixels read: sample key ``(n,)``, features ``(n, P)`` float32, and per sample
    (sorted ``keys``) its labelled pixels and outline (or None)."""

    key: np.ndarray
    features: np.ndarray
    dates: list
    keys: np.ndarray
    counts: np.ndarray
    outlines: dict


def read_pixels(scenes, stack, labels, samples: Samples, table: ClassTable, cfg, *,
                per_sample: int, seed: int, shapes: bool, progress=None) -> Pixels:
    """The labelled pixels of the samples and their pixel features (steps 1-2 of the module
    docstring); ``stack`` is the scenes' (:func:`landcover.stack.stack_scenes`)."""
    import dask

    from landcover.scheduler import compute
    from landcover.stack import date_groups, grid_of

    p = cfg.prepare
    grid, bands = grid_of(stack), [str(b) for b in stack.band.values]
    dates = date_groups(scenes)
    groups = _grid_source(samples, grid)
    known = np.zeros(KEY, bool)
    known[table.codes] = True
    tiles = list(grid.tiles(int(p.patches.tile_size)))
    labels_d = dask.delayed(labels, traverse=False)
    groups_d = dask.delayed(groups, traverse=False)
    (surveyed,) = compute([dask.delayed(survey_tile, pure=True)(
        labels_d, groups_d, grid, t, p.labels.erode, known, shapes) for t in tiles],
        label="Reading labels", show=progress)
    keys, inverse = np.unique(np.concatenate([s[0] for s in surveyed] + [np.zeros(0, np.int64)]),
                              return_inverse=True)
    counts = np.bincount(inverse, np.concatenate([s[1] for s in surveyed] + [np.zeros(0)]),
                         minlength=len(keys)).astype(np.int64)
    if not len(keys):
        raise LabelError(f"{labels.path}: no labelled pixel of a known class on the scenes' grid "
                         f"({table.describe()})")
    outlines: dict = {}
    for s in surveyed:
        for key, parts in s[2].items():
            outlines.setdefault(key, []).extend(parts)
    keep = (keys, np.minimum(1.0, per_sample / counts))
    scenes_d = dask.delayed(tuple(g for _, g in dates), traverse=False)
    wanted = [t for t, s in zip(tiles, surveyed) if len(s[0])]
    (read,) = compute([dask.delayed(read_tile, pure=True)(
        scenes_d, tuple(bands), grid, cfg.scenes.mask, labels_d, groups_d, t, p.labels.erode,
        known, keep, seed) for t in wanted], label="Reading pixels", show=progress)
    key = np.concatenate([r[0] for r in read])
    refl = np.concatenate([r[1] for r in read])
    valid = np.concatenate([r[2] for r in read])
    x, kept_dates, ok = _features(refl, valid, [d for d, _ in dates], bands, p.features)
    return Pixels(key[ok], x, kept_dates, keys, counts, outlines)


def _features(refl: np.ndarray, valid: np.ndarray, dates: list, bands: list, fc):
    """Pixel features ``(n', P)`` of the pixels with enough valid observations on the dates that
    have enough (``prepare.features``), the dates kept, and which pixels were kept ``(n,)``."""
    from landcover.features import FeatureSpec
    from landcover.pixel_model import pixel_features

    share = valid.mean(axis=0) if len(valid) else np.zeros(len(dates))
    t_keep = share >= fc.min_date_valid
    if not t_keep.any():
        raise DatasetError(f"every date has less than {fc.min_date_valid:.0%} valid observations "
                           f"on the labelled pixels (best {share.max():.1%}); add clearer scenes "
                           "or lower prepare.features.min_date_valid")
    refl, valid = refl[:, t_keep], valid[:, t_keep]
    kept_dates = [d for d, k in zip(dates, t_keep) if k]
    ok = valid.sum(axis=1) >= max(1, fc.min_valid_dates)
    if not ok.any():
        raise DatasetError("no labelled pixel has a valid observation on the kept dates; add "
                           "clearer scenes")
    refl, valid = refl[ok], valid[ok]
    obs = np.where(valid[..., None], refl, np.nan)
    mean = np.nanmean(obs, axis=(0, 1)).astype(np.float64)
    std = np.nanstd(obs, axis=(0, 1)).astype(np.float64)
    std = np.where(std > 1e-6, std, 1.0)
    spec = FeatureSpec(tuple(bands), tuple(mean.tolist()), tuple(std.tolist()), "linear", False)
    x = spec.make(refl[:, :, None, None, :], valid[:, :, None, None], kept_dates)[:, :, 0, 0, :]
    attrs = {"bands": bands, "features": spec.names, "dates": [d.isoformat() for d in kept_dates],
             "normalisation": {"mean": mean.tolist(), "std": std.tolist()}}
    return pixel_features(x, attrs), kept_dates, ok


LAYER = "samples"  # the GeoPackage layer of check-samples' table
COLUMNS = ("sample_id", "class_code", "class_name", "pixels", "pixels_checked", "probability",
            "suggested_code", "suggested_class", "suggested_probability", "verdict", "block")


@dataclass(frozen=True)
class SampleCheck:
    """The result: ``table`` (a GeoDataFrame, one row per sample, see :func:`check_samples`),
    the SOM's ``weights (side, side, P)``, class counts per neuron ``hits (side, side, K)``, the
    class table and a ``summary`` (JSON-ready)."""

    table: object
    weights: np.ndarray
    hits: np.ndarray
    classes: ClassTable
    summary: dict
    samples: Samples
    keys: np.ndarray  # sample key per row of the table
