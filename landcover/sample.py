"""``landcover sample``: reference samples to check a map, or to label next.

Two designs, both written as a GeoPackage of points (pixel centres, the map's CRS; layer
``sample``) with ``sample_id``, ``row``, ``col``, ``map_code``, ``map_class``, the class
probabilities ``p_<class>`` and ``uncertainty`` when a probability file is given, and an empty
``reference`` column (integer class codes) to fill in, e.g. in QGIS. ``landcover evaluate MAP.tif
--reference SAMPLE.gpkg`` then reads the filled sample (the ``reference`` column; points left empty
are skipped), with the strata taken from the map.

* **stratified** (accuracy assessment; Olofsson et al. 2014, Remote Sensing of Environment 148:
  42-57, section 5.1; Cochran 1977, eq. 5.25): with the map classes as strata, ``W_i`` the
  mapped share of class ``i`` and ``U_i`` its expected user's accuracy, ``S_i = sqrt(U_i (1 -
  U_i))``, the total sample size for a target standard error ``S(O)`` of the overall accuracy is
  ``n = (sum_i W_i S_i / S(O))^2`` (rounded up). It is allocated ``proportional`` to ``W_i``, or
  (``rare-min``, the paper's recommendation) ``min_per_class`` to each class with ``W_i <
  rare_share`` and the rest in proportion to the others' weights (largest remainders; never more
  than a class's pixels). Within each class the pixels are drawn by simple random sampling without
  replacement (seeded), in two streaming passes over the map (bounded memory).
* **uncertainty** (active learning, after sits' ``sits_uncertainty_sampling``): the ``count`` most
  uncertain pixels of a probability file (normalised ``entropy``, ``margin`` = 1 - (p1 - p2), or
  ``least_confidence`` = 1 - p1), at least ``spacing`` pixels apart (Euclidean): local maxima of
  the uncertainty in each block become candidates, and the most uncertain candidate is taken, then
  the next one far enough from every point taken, ...
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from landcover.classes import ClassTable
from landcover.errors import UsageError
from landcover.products import map_with_classes

DESIGNS = ("stratified", "uncertainty")
ALLOCATIONS = ("rare-min", "proportional")
MEASURES = ("entropy", "margin", "least_confidence")
WINDOW = 1024
LAYER = "sample"


# ---------------------------------------------------------------------------------- the design
def cochran_n(weights: Sequence[float], users_accuracy: Sequence[float], target_se: float) -> int:
    """Total sample size ``ceil((sum W_i sqrt(U_i (1 - U_i)) / S(O))^2)`` (Olofsson eq. 13)."""
    w, u = np.asarray(weights, float), np.asarray(users_accuracy, float)
    return int(math.ceil(round((np.sum(w * np.sqrt(u * (1 - u))) / target_se) ** 2, 9)))


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    if total <= 0 or shares.sum() <= 0:
        return np.zeros(len(shares), np.int64)
    exact = total * shares / shares.sum()
    n = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - n), kind="stable")
    n[order[:total - n.sum()]] += 1
    return n


def allocate(n: int, weights: Sequence[float], allocation: str = "rare-min",
             min_per_class: int = 50, rare_share: float = 0.1,
             available: Sequence[int] | None = None) -> np.ndarray:
    """Sample size per stratum (see the module docstring); never more than ``available``."""
    w = np.asarray(weights, float)
    if allocation == "proportional":
        out = _largest_remainder(n, w)
    else:
        rare = (w > 0) & (w < rare_share)
        out = np.zeros(len(w), np.int64)
        out[rare] = min_per_class
        rest = np.where(rare, 0.0, w)
        out += _largest_remainder(max(n - int(out.sum()), 0), rest)
    if available is not None:
        out = np.minimum(out, np.asarray(available, np.int64))
    return out


def design_table(table: ClassTable, pixels: Sequence[int], expected_ua: Mapping[int, float],
                 default_ua: float, target_se: float, allocation: str, min_per_class: int,
                 rare_share: float, pixel_area_m2: float | None) -> tuple[int, list[dict]]:
    """``(n, rows)``: Cochran's total and per class: code, name, pixels, area (ha), weight,
    expected user's accuracy, n."""
    pixels = np.asarray(pixels, np.int64)
    w = pixels / max(int(pixels.sum()), 1)
    ua = np.array([expected_ua.get(c, default_ua) for c in table.codes], float)
    n = cochran_n(w, ua, target_se)
    alloc = allocate(n, w, allocation, min_per_class, rare_share, pixels)
    rows = [{"code": cl.code, "name": cl.name, "pixels": int(p),
             "area_ha": round(p * pixel_area_m2 / 1e4, 2) if pixel_area_m2 else None,
             "weight": round(float(wi), 6), "expected_ua": float(u), "n": int(k)}
            for cl, p, wi, u, k in zip(table.classes, pixels, w, ua, alloc)]
    return n, rows


# ------------------------------------------------------------------------------------- drawing
def count_classes(cmap, table: ClassTable, window: int = WINDOW) -> np.ndarray:
    """Pixels per class of the map (first streaming pass)."""
    from rasterio.windows import Window

    from landcover.contract import IGNORE
    from landcover.gdalio import open_raster

    lut, counts = table.lut(), np.zeros(len(table), np.int64)
    with open_raster(cmap.path) as src:
        for r0, c0, h, w in cmap.grid.tiles(window):
            idx = lut[src.read(1, window=Window(c0, r0, w, h))]
            counts += np.bincount(idx[idx != IGNORE], minlength=len(table))
    return counts


def draw_stratified(cmap, table: ClassTable, pixels: Sequence[int], n: Sequence[int],
                    seed: int = 0, window: int = WINDOW) -> list[tuple[int, int, int]]:
    """``n[i]`` pixels of class ``i`` at random without replacement: ``[(row, col, index)]``.

    Ranks are drawn per class among its ``pixels[i]`` pixels in raster order of the windows,
    then found in a second streaming pass."""
    from rasterio.windows import Window

    from landcover.gdalio import open_raster

    rng = np.random.default_rng(seed)
    targets = [np.sort(rng.choice(int(N), int(k), replace=False)) if k else np.zeros(0, np.int64)
               for N, k in zip(pixels, n)]
    seen = np.zeros(len(table), np.int64)
    lut, out = table.lut(), []
    with open_raster(cmap.path) as src:
        for r0, c0, h, w in cmap.grid.tiles(window):
            idx = lut[src.read(1, window=Window(c0, r0, w, h))]
            for i in range(len(table)):
                rr, cc = np.nonzero(idx == i)
                t = targets[i]
                lo, hi = np.searchsorted(t, [seen[i], seen[i] + len(rr)])
                for rank in t[lo:hi] - seen[i]:
                    out.append((r0 + int(rr[rank]), c0 + int(cc[rank]), i))
                seen[i] += len(rr)
    return out


def uncertainty_of(prob: np.ndarray, measure: str) -> np.ndarray:
    """``(h, w)`` uncertainty of ``prob (h, w, K)``: entropy (normalised), margin, least
    confidence."""
    from landcover.maps import uncertainty

    if measure == "least_confidence":
        return (1.0 - prob.max(axis=-1)).astype(np.float32)
    return uncertainty(prob, measure)


def draw_uncertain(probs, count: int, spacing: int, measure: str,
                   window: int = WINDOW) -> list[tuple[int, int, float]]:
    """The ``count`` most uncertain observed pixels, ``spacing`` px apart: ``[(row, col, u)]``."""
    from rasterio.windows import Window
    from scipy.ndimage import maximum_filter

    from landcover.gdalio import open_raster

    K, g, halo = len(probs.table), probs.grid, max(1, spacing)
    candidates: list[tuple[float, int, int]] = []
    with open_raster(probs.path) as src:
        for r0, c0, h, w in g.tiles(window):
            R0, C0 = max(0, r0 - halo), max(0, c0 - halo)
            R1, C1 = min(g.height, r0 + h + halo), min(g.width, c0 + w + halo)
            raw = src.read(list(range(1, K + 1)), window=Window(C0, R0, C1 - C0, R1 - R0))
            observed = raw[0] != probs.nodata
            u = uncertainty_of(np.moveaxis(raw, 0, -1).astype(np.float32) / probs.scale, measure)
            u = np.where(observed, u, -1.0)
            peak = (u >= maximum_filter(u, size=2 * halo + 1, mode="constant", cval=-1.0)) & \
                observed
            core = np.zeros_like(peak)
            core[r0 - R0:r0 - R0 + h, c0 - C0:c0 - C0 + w] = True
            rr, cc = np.nonzero(peak & core)
            best = heapq.nsmallest(count, zip(-u[rr, cc], rr + R0, cc + C0))
            candidates.extend((float(a), int(b), int(c)) for a, b, c in best)
    candidates.sort()
    taken: list[tuple[int, int, float]] = []
    cells: dict[tuple[int, int], list[tuple[int, int]]] = {}
    size = max(1, spacing)
    for neg, r, c in candidates:
        if len(taken) >= count:
            break
        cy, cx = r // size, c // size
        near = (p for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                for p in cells.get((cy + dy, cx + dx), ()))
        if any((r - a) ** 2 + (c - b) ** 2 < spacing ** 2 for a, b in near):
            continue
        cells.setdefault((cy, cx), []).append((r, c))
        taken.append((r, c, -neg))
    return taken


# ------------------------------------------------------------------------------------ writing
def _values_at(path: str, points: Sequence[tuple[int, int]], bands: Sequence[int]) -> np.ndarray:
    """``(len(points), len(bands))`` raw values of a raster at pixel ``(row, col)``s."""
    from rasterio.windows import Window

    from landcover.gdalio import open_raster

    out = np.zeros((len(points), len(bands)), np.float64)
    with open_raster(path) as src:
        for k, (r, c) in enumerate(points):
            out[k] = src.read(list(bands), window=Window(c, r, 1, 1))[:, 0, 0]
    return out


def write_sample(path: Path, cmap, table: ClassTable, points: Sequence[tuple[int, int]],
                 probs=None, measure: str = "entropy", extra: dict | None = None) -> None:
    """The GeoPackage of sample points (see the module docstring)."""
    import geopandas as gpd
    import pandas as pd
    from shapely import points as make_points

    rows = np.array([p[0] for p in points], np.int64)
    cols = np.array([p[1] for p in points], np.int64)
    t = cmap.grid.affine
    xs = t.c + t.a * (cols + 0.5) + t.b * (rows + 0.5)
    ys = t.f + t.d * (cols + 0.5) + t.e * (rows + 0.5)
    codes = _values_at(cmap.path, list(zip(rows, cols)), [1])[:, 0].astype(np.int64)
    names = {cl.code: cl.name for cl in table.classes}
    data = {"sample_id": np.arange(1, len(points) + 1), "row": rows, "col": cols,
            "map_code": codes, "map_class": [names.get(int(c), "") for c in codes]}
    data.update(extra or {})
    if probs is not None:
        K = len(probs.table)
        raw = _values_at(probs.path, list(zip(rows, cols)), range(1, K + 2))
        for k, cl in enumerate(probs.table.classes):
            data[f"p_{cl.name}"] = np.round(raw[:, k] / probs.scale, 4)
        p = raw[:, :K][None] / probs.scale
        data["uncertainty"] = np.round(uncertainty_of(p, measure)[0], 4)
    data["reference"] = pd.array([None] * len(points), dtype="Int64")
    frame = gpd.GeoDataFrame(data, geometry=make_points(np.asarray(xs), np.asarray(ys)),
                             crs=cmap.grid.crs)
    frame.to_file(path, layer=LAYER, driver="GPKG")


# ------------------------------------------------------------------------------------ the run
def _probabilities_of(map_path, cmap, probabilities, design: str):
    """The probability file to use: ``probabilities`` (must match the map), else
    ``MAP_probabilities.tif`` beside the map when it exists and matches it (one that does not is
    left out with a warning; the uncertainty design then has none)."""
    import logging

    from landcover.errors import LandcoverError
    from landcover.products import open_probabilities

    if probabilities is not None:
        probs = open_probabilities(probabilities)
        if probs.grid != cmap.grid:
            raise UsageError(f"{probs.path}: not on the grid of {map_path} "
                             f"({probs.grid.difference(cmap.grid)})", flag="--probabilities")
        return probs
    beside = Path(map_path).with_name(f"{Path(map_path).stem}_probabilities.tif")
    if not beside.is_file():
        return None
    try:
        probs = open_probabilities(beside)
        problem = None if probs.grid == cmap.grid else \
            f"not on the grid of the map ({probs.grid.difference(cmap.grid)})"
    except LandcoverError as exc:
        probs, problem = None, exc.cli_message()
    if problem is None:
        return probs
    if design == "uncertainty":
        raise UsageError(f"{beside}, found beside {map_path}, does not fit it ({problem})",
                         flag="--probabilities", hint="pass the probability file of this map")
    logging.getLogger(__name__).warning(
        "%s, found beside the map, is left out: %s; the sample has no class probabilities",
        beside, problem)
    return None


def sample(map_path: str | Path, out: str | Path, *, design: str = "stratified",
           probabilities: str | Path | None = None, target_se: float = 0.01,
           expected_ua: Mapping[int, float] | None = None, default_ua: float = 0.8,
           allocation: str = "rare-min", min_per_class: int = 50, rare_share: float = 0.1,
           count: int = 100, spacing: int = 10, measure: str = "entropy", seed: int = 0,
           overwrite: bool = False) -> dict:
    """Draw a sample from a class map and write it as a GeoPackage (see the module docstring).

    Raises:
        UsageError: bad parameters; RasterReadError/ClassTableError: bad map or probabilities;
        OutputExistsError.
    """
    from landcover.maps import writing
    from landcover.outputs import OutputSet

    t0 = time.monotonic()
    _check(design, allocation, measure, target_se, default_ua, expected_ua or {}, count, spacing,
           min_per_class, rare_share, seed)
    out = Path(out).absolute()
    if out.suffix.lower() != ".gpkg":
        raise UsageError(f"{out.name}: the sample is a GeoPackage; give a name ending in .gpkg",
                         flag="--out")
    cmap, table = map_with_classes(map_path)
    unknown = sorted(set(expected_ua or {}) - set(table.codes))
    if unknown:
        raise UsageError(f"expected user's accuracy for code {unknown[0]}, which is not a class "
                         f"of the map ({table.describe()})", flag="--expected-ua-class")
    probs = _probabilities_of(map_path, cmap, probabilities, design)
    if design == "uncertainty" and probs is None:
        raise UsageError(f"{map_path}: the uncertainty design needs the class probabilities; pass "
                         "the OUT_probabilities.tif of 'landcover classify --probabilities'",
                         flag="--probabilities")
    result = {"output": str(out), "map": str(map_path), "design": design,
              "probabilities": probs.path if probs is not None else None}
    with OutputSet([out], overwrite, folders=[False]) as outputs:
        if design == "stratified":
            pixels = count_classes(cmap, table)
            n, rows = design_table(table, pixels, expected_ua or {}, default_ua, target_se,
                                   allocation, min_per_class, rare_share, cmap.pixel_area_m2)
            drawn = draw_stratified(cmap, table, pixels, [r["n"] for r in rows], seed)
            extra = {"stratum": [table.classes[i].code for _, _, i in drawn]}
            points = [(r, c) for r, c, _ in drawn]
            result.update(n_cochran=n, strata=rows, target_se=target_se, allocation=allocation,
                          seed=seed)
        else:
            drawn = draw_uncertain(probs, count, spacing, measure)
            points = [(r, c) for r, c, _ in drawn]
            extra = {}
            result.update(measure=measure, spacing=spacing, requested=count)
        if not points:
            raise UsageError(f"{map_path}: no pixel to sample (no mapped class)")
        with writing(out):  # a full disk: one line, the temporaries removed
            folder = outputs.temporary(out)  # a hidden folder beside out, removed when done
            folder.mkdir()
            write_sample(folder / out.name, cmap, table, points, probs, measure, extra)
            outputs.commit({out: folder / out.name})
    result.update(points=len(points), seconds=round(time.monotonic() - t0, 2))
    return result


def _check(design, allocation, measure, target_se, default_ua, expected_ua, count, spacing,
           min_per_class, rare_share, seed=0) -> None:
    checks = [
        (design in DESIGNS, "--design", f"{design!r} is not one of {', '.join(DESIGNS)}"),
        (allocation in ALLOCATIONS, "--allocation",
         f"{allocation!r} is not one of {', '.join(ALLOCATIONS)}"),
        (measure in MEASURES, "--measure", f"{measure!r} is not one of {', '.join(MEASURES)}"),
        (0 < target_se < 0.5, "--target-se", f"{target_se} must be in (0, 0.5), e.g. 0.01"),
        (all(0 < u < 1 for u in [default_ua, *expected_ua.values()]), "--expected-ua",
         "user's accuracies must be in (0, 1)"),
        (count >= 1, "--count", "must be 1 or more"),
        (0 <= seed < 2 ** 63, "--seed", f"{seed} must be 0 or more (and below 2^63)"),
        (spacing >= 0, "--spacing", "must be 0 or more pixels"),
        (min_per_class >= 0, "--min-per-class", "must be 0 or more"),
        (0 <= rare_share <= 1, "--rare-share", "must be in [0, 1]"),
    ]
    for ok, flag, message in checks:
        if not ok:
            raise UsageError(message, flag=flag)


def format_design(result: dict) -> str:
    """The stratum table the command prints: area, weight, expected UA and n per map class."""
    lines = [f"Wrote {result['output']}: {result['points']} points ({result['design']})"]
    if result["design"] == "stratified":
        lines.append(f"Cochran/Olofsson n = {result['n_cochran']} for SE(OA) = "
                     f"{result['target_se']}; allocation {result['allocation']}")
        lines.append(f"  {'code':>4} {'class':<16} {'pixels':>12} {'area ha':>12} {'weight':>8} "
                     f"{'exp. UA':>8} {'n':>6}")
        for r in result["strata"]:
            ha = f"{r['area_ha']:,.1f}" if r["area_ha"] is not None else "-"
            lines.append(f"  {r['code']:>4} {r['name']:<16} {r['pixels']:>12,d} {ha:>12} "
                         f"{r['weight']:>8.4f} {r['expected_ua']:>8.2f} {r['n']:>6d}")
    else:
        lines.append(f"the {result['points']} most uncertain pixels ({result['measure']}), at "
                     f"least {result['spacing']} px apart")
    lines.append("Fill the 'reference' column (class codes), then: landcover evaluate MAP.tif "
                 f"--reference {result['output']} --out accuracy")
    return "\n".join(lines)
