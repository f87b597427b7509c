"""Accuracy of a classification map against reference labels, and error-adjusted class areas.

:func:`evaluate` compares a class map written by ``landcover classify`` (band 1 uint8 class codes,
nodata 255, the class table in the ``LANDCOVER_CLASSES`` tag) with reference labels: a raster of
class codes on any grid (reprojected onto the map grid with nearest resampling) or a vector file of
points or polygons (rasterised on the map grid), both read through
:func:`landcover.labels.open_labels`. The map is read window by window (``window`` x ``window``
pixels), so memory is bounded by the window whatever the size of the map. Two things are
accumulated:

* the confusion matrix over the pixels where the map has a class of the table and the reference a
  known class code; convention of :mod:`landcover.scores`: ``cm[i, j]`` = reference ``i``, map
  ``j``;
* the number of map pixels of each class over the *whole* map, the strata sizes of the area
  estimates.

Map pixels that are nodata (255, or the file's own nodata value) or hold a code that is not in the
class table are left out of the comparison; so are reference pixels with codes that are not in the
table. Each exclusion is counted and reported.

Two sets of figures are derived. :func:`landcover.scores.scores` gives the pixel-count figures
(overall accuracy, kappa, per-class precision = *user's accuracy*, recall = *producer's accuracy*,
F1, IoU). :func:`area_adjusted` gives the stratified estimators of Olofsson et al. (2014), "Good
practices for estimating area and assessing accuracy of land change", Remote Sensing of Environment
148: 42-57, with the map classes as strata: overall, user's and producer's accuracy and the area of
each class with 95% confidence intervals. They assume that the reference pixels of each map class
are a random sample of that class (stratified random sampling, or a reference drawn independently
of the map). When the reference covers every mapped pixel the two sets of figures coincide.

The report folder (``evaluation.json``, ``accuracy.csv``, ``accuracy.md``, ``confusion_matrix.png``
and ``report.html``, :mod:`landcover.report_html`) is written under a temporary name and renamed
when complete; nothing is written when an error is raised.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.contract import IGNORE, NODATA, TAG_CLASSES
from landcover.classes import ClassTable
from landcover.config import LabelsConfig
from landcover.errors import LabelError, RasterReadError
from landcover.gdalio import open_raster
from landcover.outputs import OutputSet, check_output
from landcover.products import ClassMap, open_map, resolve_classes
from landcover.scores import confusion, scores

log = logging.getLogger(__name__)

CLASSES_TAG = TAG_CLASSES  # dataset tag: JSON list of {code, name, color}
MAP_NODATA = NODATA
WINDOW = 1024
Z95 = 1.96  # two-sided 95% normal quantile, as in Olofsson et al. (2014)
FILES = ("evaluation.json", "accuracy.csv", "accuracy.md", "confusion_matrix.png", "report.html")


# ----------------------------------------------------------------------- area-adjusted estimators
def area_adjusted(counts, map_pixels, pixel_area: float | None = None,
                  names: Sequence[str] | None = None) -> dict:
    """Stratified estimates of accuracy and class area, map classes as strata (Olofsson 2014).

    Orientation: ``counts[i, j]`` is the number of sample (reference) pixels with **map class i
    (row) and reference class j (column)**, the layout of the paper's error matrices. This is the
    *transpose* of :func:`landcover.scores.confusion` (reference rows): pass ``cm.T``.

    With ``N_i`` = ``map_pixels[i]``, ``W_i = N_i / sum(N)``, ``n_i. = sum_j n_ij``:

    * ``p_ij = W_i n_ij / n_i.``, the estimated area proportions (the paper's Table 9);
    * overall accuracy ``O = sum_j p_jj``; user's accuracy ``U_i = p_ii / p_i.``; producer's
      accuracy ``P_j = p_jj / p_.j``; area share ``p_.j`` (eq. 9) and area ``A_j = A p_.j``;
    * ``V(p_.j) = sum_i W_i^2 (n_ij/n_i.)(1 - n_ij/n_i.)/(n_i. - 1)`` (eq. 10);
      ``V(O) = sum_i W_i^2 U_i (1 - U_i)/(n_i. - 1)`` (eq. 5);
      ``V(U_i) = U_i (1 - U_i)/(n_i. - 1)`` (eq. 6); ``V(P_j)`` by eq. 7 with
      ``N_.j = sum_i N_i n_ij / n_i.``;
    * 95% confidence intervals are ``± 1.96 SE``; the ``*_ci95`` values are these half-widths.

    A class that is not mapped (``N_i = 0``) weighs nothing. A mapped class without any sample
    leaves every estimate that involves all strata (overall accuracy, areas, producer's accuracies)
    undefined, and a class with a single sample leaves the standard errors it enters undefined:
    undefined values are ``None`` (no warning is raised).

    Args:
        counts: ``(k, k)`` sample counts, map rows, reference columns.
        map_pixels: ``(k,)`` pixels mapped as each class over the whole map.
        pixel_area: area of one pixel in square metres; areas in hectares are added when given.
        names: class names (default ``"0"``, ``"1"``, ...).

    Returns:
        A JSON-ready dict: ``overall_accuracy`` (``_se``, ``_ci95``), ``per_class`` (by name: map
        pixels/share/area, sample counts, estimated area share, pixels and hectares, user's and
        producer's accuracy, each with ``_se`` and ``_ci95``), ``error_matrix`` (the ``p_ij``, map
        rows) and ``unsampled_classes`` (mapped classes without a sample).
    """
    n = np.asarray(counts, dtype=np.float64)
    big_n = np.asarray(map_pixels, dtype=np.float64).ravel()
    k = big_n.size
    if n.shape != (k, k):
        raise ValueError(f"counts has shape {n.shape}; expected ({k}, {k}) for {k} map classes")
    if (n < 0).any() or (big_n < 0).any():
        raise ValueError("counts and map_pixels must not be negative")
    names = list(names) if names is not None else [str(i) for i in range(k)]
    total = float(big_n.sum())
    mapped = big_n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        w = big_n / total if total > 0 else np.full(k, np.nan)
        n_i = n.sum(axis=1)
        frac = n / n_i[:, None]  # n_ij / n_i.; NaN for a class without samples
        frac = np.where(mapped[:, None], frac, 0.0)  # an unmapped class weighs nothing
        p = w[:, None] * frac
        p_j = p.sum(axis=0)
        diag = np.diag(p)
        oa = diag.sum()
        ua = np.diag(n) / n_i
        pa = diag / p_j
        # variances; a stratum with one sample (n_i. - 1 = 0) gives 0/0 = NaN, as it should
        v_frac = np.where(mapped[:, None], frac * (1 - frac) / (n_i - 1)[:, None], 0.0)
        v_ua = ua * (1 - ua) / (n_i - 1)
        var_pj = (w[:, None] ** 2 * v_frac).sum(axis=0)
        var_oa = np.where(mapped, w**2 * v_ua, 0.0).sum()
        n_hat_j = (big_n[:, None] * frac).sum(axis=0)  # N^_.j of eq. 7
        term1 = np.where(mapped, big_n**2 * (1 - pa) ** 2 * v_ua, 0.0)
        off = big_n[:, None] ** 2 * v_frac
        np.fill_diagonal(off, 0.0)
        var_pa = (term1 + pa**2 * off.sum(axis=0)) / n_hat_j**2
        se_pj, se_oa, se_ua, se_pa = (np.sqrt(v) for v in (var_pj, var_oa, v_ua, var_pa))
    ha = pixel_area / 10_000 if pixel_area else None
    per_class = {}
    for i, name in enumerate(names):
        c = {"map_pixels": int(big_n[i]), "map_share": _f(w[i]),
             "map_area_ha": _f(big_n[i] * ha) if ha else None,
             "samples_mapped": int(n_i[i]), "samples_reference": int(n[:, i].sum()),
             "area_share": _f(p_j[i]), "area_share_se": _f(se_pj[i]),
             "area_share_ci95": _f(Z95 * se_pj[i]),
             "area_pixels": _f(total * p_j[i]), "area_pixels_se": _f(total * se_pj[i]),
             "area_pixels_ci95": _f(Z95 * total * se_pj[i])}
        c.update({"area_ha": _f(total * p_j[i] * ha) if ha else None,
                  "area_ha_se": _f(total * se_pj[i] * ha) if ha else None,
                  "area_ha_ci95": _f(Z95 * total * se_pj[i] * ha) if ha else None})
        for key, value, se in (("users_accuracy", ua[i], se_ua[i]),
                               ("producers_accuracy", pa[i], se_pa[i])):
            c.update({key: _f(value), f"{key}_se": _f(se), f"{key}_ci95": _f(Z95 * se)})
        per_class[name] = c
    return {
        "estimator": "stratified estimators of Olofsson et al. (2014), map classes as strata",
        "confidence": 0.95, "z": Z95,
        "map_pixels": int(total), "pixel_area_m2": _f(pixel_area) if pixel_area else None,
        "map_area_ha": _f(total * ha) if ha else None,
        "overall_accuracy": _f(oa), "overall_accuracy_se": _f(se_oa),
        "overall_accuracy_ci95": _f(Z95 * se_oa),
        "per_class": per_class,
        "error_matrix": {"rows": "map", "columns": "reference",
                         "area_proportions": [[_f(v) for v in row] for row in p]},
        "unsampled_classes": [names[i] for i in range(k) if mapped[i] and n_i[i] == 0],
    }


def _f(v) -> float | None:
    """A float for JSON: ``None`` for NaN or infinity."""
    v = float(v)
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------------------------------- counting
@dataclass
class Tally:
    """What the windows add up to: the confusion matrix, map class sizes and exclusion counts."""

    cm: np.ndarray  # (k, k) int64, reference rows, map columns
    map_pixels: np.ndarray  # (k,) int64, whole map
    counts: dict
    map_unknown_codes: set
    reference_unknown_codes: set


def tally(cmap: ClassMap, labels, table: ClassTable, window: int = WINDOW) -> Tally:
    """Stream the map in ``window`` x ``window`` blocks and count (see the module docstring)."""
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    from landcover.labels import NOT_A_CODE

    k, grid, lut = len(table), cmap.grid, table.lut()
    cm = np.zeros((k, k), np.int64)
    map_pixels = np.zeros(k, np.int64)
    counts = dict.fromkeys(("map", "map_nodata", "map_unknown_code", "reference_labelled",
                            "reference_unknown_code", "compared", "excluded_map_nodata",
                            "excluded_map_unknown_code", "excluded_reference_unknown_code"), 0)
    map_unknown, ref_unknown = set(), set()
    try:
        with open_raster(cmap.path) as src:
            for row0, col0, h, w in grid.tiles(window):
                codes = src.read(1, window=Window(col0, row0, w, h))
                nodata = np.isin(codes, cmap.nodata)
                idx = lut[codes]
                valid = idx != IGNORE
                unknown = ~nodata & ~valid
                map_pixels += np.bincount(idx[valid], minlength=k)
                ref = labels.codes(grid, row0, col0, h, w)
                ref_idx, ref_bad = table.to_indices(ref)
                ref_ok = ref_idx != IGNORE
                cm += confusion(ref_idx, idx, k, mask=valid & ref_ok)
                counts["map"] += h * w
                counts["map_nodata"] += int(nodata.sum())
                counts["map_unknown_code"] += int(unknown.sum())
                counts["reference_labelled"] += int((ref >= 0).sum())
                counts["reference_unknown_code"] += int(ref_bad.sum())
                counts["excluded_map_nodata"] += int((ref_ok & nodata).sum())
                counts["excluded_map_unknown_code"] += int((ref_ok & unknown).sum())
                counts["excluded_reference_unknown_code"] += int((ref_bad & valid).sum())
                if unknown.any():
                    map_unknown.update(int(v) for v in np.unique(codes[unknown]))
                if ref_bad.any() and len(ref_unknown) < 50:
                    ref_unknown.update("not a code" if v == NOT_A_CODE else int(v)
                                       for v in np.unique(ref[ref_bad]))
    except RasterioError as exc:
        raise RasterReadError(f"{cmap.path}: cannot read the map ({exc}); the file may be "
                              "truncated or corrupt") from None
    counts["compared"] = int(cm.sum())
    return Tally(cm, map_pixels, counts, map_unknown, ref_unknown)


# -------------------------------------------------------------------------------------- evaluation
def evaluate(map_path: str | Path, reference: str | Path, out: str | Path, *,
             classes: str | Path | None = None, column: str | None = None,
             layer: str | None = None, overwrite: bool = False, window: int = WINDOW) -> dict:
    """Compare a class map with reference labels and write the report folder ``out``.

    Args:
        map_path: class map GeoTIFF (band 1 uint8 codes, nodata 255).
        reference: reference labels: a raster of class codes, or a vector file of points or
            polygons with a class column (found by name, or ``column``; ``layer`` in a multi-layer
            file); a sample of ``landcover sample`` is read from its ``reference`` column (points
            left empty are skipped), the strata being the map's classes.
        out: report folder to write (its parent must exist).
        classes: class table YAML; required when the map has no ``LANDCOVER_CLASSES`` tag, and
            used instead of the tag when given.
        overwrite: replace an existing ``out``.
        window: side of the square blocks the map is read in.

    Returns:
        The content of ``evaluation.json`` plus ``output``.

    Raises:
        RasterReadError: the map is missing, unreadable or not a uint8 class map.
        ClassTableError: no class table (no tag and no ``classes``), or an invalid one.
        LabelError: the reference is missing, unreadable, does not overlap the map, or shares no
            labelled pixel with the map's classes.
        OutputExistsError: ``out`` exists without ``overwrite``, or its parent folder is missing.
    """
    from landcover.labels import open_labels, sample_column

    t0 = time.monotonic()
    out = Path(out).absolute()
    cmap = open_map(map_path)
    table, table_source = resolve_classes(cmap, classes)
    reference = Path(reference)
    if not reference.exists():
        raise LabelError(f"{reference}: no such file", flag="--reference")
    check_output(out, overwrite)
    if column is None:  # a sample of 'landcover sample': its filled-in reference column
        column = sample_column(reference, layer)
    labels = open_labels(reference, cmap.grid, LabelsConfig(column=column, layer=layer), table,
                         keys="--")
    log.info("comparing %s (%s) with the %s reference %s; classes: %s", cmap.path,
             cmap.grid.describe(), labels.kind, reference, table.describe())
    t = tally(cmap, labels, table, window)
    c = t.counts
    if t.map_unknown_codes:
        log.warning("%s: %d map pixels hold codes that are not in the class table (%s); they are "
                    "left out", cmap.path, c["map_unknown_code"],
                    ", ".join(map(str, sorted(t.map_unknown_codes))))
    if t.reference_unknown_codes:
        log.warning("%s: %d labelled pixels hold codes that are not in the class table (%s); "
                    "they are left out", reference, c["reference_unknown_code"],
                    ", ".join(map(str, sorted(t.reference_unknown_codes, key=str))))
    if c["compared"] == 0:
        raise LabelError(
            f"{reference}: no pixel has both a map class and a reference class ({c['map']:,d} map "
            f"pixels, {c['map_nodata']:,d} map nodata, {c['reference_labelled']:,d} labelled, "
            f"{c['reference_unknown_code']:,d} with unknown codes); check that the reference "
            "covers mapped pixels and uses the codes of the class table")
    names = table.names
    result = _result(cmap, reference, labels.kind, table, table_source, t, out)
    if result["area_adjusted"]["unsampled_classes"]:
        log.warning("classes mapped but absent from the reference sample: %s; the area-adjusted "
                    "estimates that need every stratum are undefined",
                    ", ".join(result["area_adjusted"]["unsampled_classes"]))
    result["seconds"] = round(time.monotonic() - t0, 2)
    _write_report(result, t.cm, names, out, overwrite)
    return result


def _result(cmap: ClassMap, reference: Path, kind: str, table: ClassTable, table_source: str,
            t: Tally, out: Path) -> dict:
    names = table.names
    sc = scores(t.cm, names)
    for c in sc["per_class"].values():  # the remote-sensing names of the same figures
        c["users_accuracy"], c["producers_accuracy"] = c["precision"], c["recall"]
    counts = dict(t.counts, map_classified=int(t.map_pixels.sum()),
                  map_unknown_codes=sorted(t.map_unknown_codes),
                  reference_unknown_codes=sorted(t.reference_unknown_codes, key=str))
    return {
        "output": str(out),
        "map": cmap.path,
        "reference": str(reference),
        "reference_kind": kind,
        "grid": cmap.grid.to_dict(),
        "class_table": {"source": table_source, "classes": table.to_list()},
        "pixels": counts,
        "confusion_matrix": {"rows": "reference", "columns": "map", "class_names": names,
                             "counts": t.cm.tolist()},
        "scores": {key: v for key, v in sc.items()
                   if key not in ("confusion_matrix", "class_names")},
        "area_adjusted": area_adjusted(t.cm.T, t.map_pixels, cmap.pixel_area_m2, names),
    }


def _write_report(result: dict, cm: np.ndarray, names: Sequence[str], out: Path,
                  overwrite: bool) -> None:
    from landcover.report import plot_confusion
    from landcover.report_html import write_evaluation_report

    with OutputSet([out], overwrite, folders=[True]) as outputs:
        tmp = outputs.temporary()
        tmp.mkdir()
        (tmp / "evaluation.json").write_text(json.dumps(result, indent=2, allow_nan=False))
        write_csv(tmp / "accuracy.csv", result)
        (tmp / "accuracy.md").write_text(format_markdown(result))
        oa = result["scores"]["overall_accuracy"]
        plot_confusion(cm, names, tmp / "confusion_matrix.png",
                       title=f"{Path(result['map']).name} (predicted) vs "
                             f"{Path(result['reference']).name}: OA {oa:.3f}, "
                             f"{result['pixels']['compared']:,d} pixels")
        write_evaluation_report(tmp, result)
        outputs.commit({out: tmp})


# ------------------------------------------------------------------------------------- the reports
CSV_COLUMNS = (
    "class", "code", "reference_pixels", "map_pixels_compared", "users_accuracy",
    "producers_accuracy", "f1", "iou", "overall_accuracy", "kappa", "map_pixels", "map_area_ha",
    "adjusted_users_accuracy", "adjusted_users_accuracy_ci95", "adjusted_producers_accuracy",
    "adjusted_producers_accuracy_ci95", "adjusted_overall_accuracy",
    "adjusted_overall_accuracy_ci95", "estimated_area_pixels", "estimated_area_pixels_ci95",
    "estimated_area_ha", "estimated_area_ha_ci95")


def write_csv(path: Path, result: dict) -> None:
    """``accuracy.csv``: one row per class and an ``overall`` row (``*_ci95`` = ± half-widths).

    ``users_accuracy``/``producers_accuracy``/``f1``/``iou`` count the compared pixels;
    ``adjusted_*`` and ``estimated_area_*`` are the area-adjusted estimates (Olofsson et al. 2014).
    On the overall row ``f1`` is the macro F1 and ``iou`` the mean IoU.
    """
    sc, adj = result["scores"], result["area_adjusted"]
    rows = []
    for item in result["class_table"]["classes"]:
        s, a = sc["per_class"][item["name"]], adj["per_class"][item["name"]]
        rows.append({
            "class": item["name"], "code": item["code"], "reference_pixels": s["support"],
            "map_pixels_compared": s["predicted"], "users_accuracy": s["precision"],
            "producers_accuracy": s["recall"], "f1": s["f1"], "iou": s["iou"],
            "map_pixels": a["map_pixels"], "map_area_ha": a["map_area_ha"],
            "adjusted_users_accuracy": a["users_accuracy"],
            "adjusted_users_accuracy_ci95": a["users_accuracy_ci95"],
            "adjusted_producers_accuracy": a["producers_accuracy"],
            "adjusted_producers_accuracy_ci95": a["producers_accuracy_ci95"],
            "estimated_area_pixels": a["area_pixels"],
            "estimated_area_pixels_ci95": a["area_pixels_ci95"],
            "estimated_area_ha": a["area_ha"], "estimated_area_ha_ci95": a["area_ha_ci95"]})
    rows.append({
        "class": "overall", "reference_pixels": sc["pixels"], "map_pixels_compared": sc["pixels"],
        "f1": sc["macro_f1"], "iou": sc["mean_iou"], "overall_accuracy": sc["overall_accuracy"],
        "kappa": sc["kappa"], "map_pixels": adj["map_pixels"], "map_area_ha": adj["map_area_ha"],
        "adjusted_overall_accuracy": adj["overall_accuracy"],
        "adjusted_overall_accuracy_ci95": adj["overall_accuracy_ci95"]})
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv(row.get(key)) for key in CSV_COLUMNS})


def _csv(v):
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def _acc(v, ci=None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if ci is None else f"{v:.3f} ± {ci:.3f}"


def _area(v, ci=None) -> str:
    if v is None:
        return "-"
    d = 0 if abs(v) >= 100 else 2  # whole hectares (pixels), unless the areas are small
    return f"{v:,.{d}f}" if ci is None else f"{v:,.{d}f} ± {ci:,.{d}f}"


def _area_unit(adj: dict) -> tuple[str, str]:
    """``(suffix, unit)``: hectares when the pixel area is known, else pixels."""
    return ("ha", "ha") if adj["pixel_area_m2"] else ("pixels", "px")


def format_markdown(result: dict) -> str:
    """``accuracy.md``: the figures as Markdown tables, ready to paste in a report."""
    sc, adj, px = result["scores"], result["area_adjusted"], result["pixels"]
    names = result["confusion_matrix"]["class_names"]
    key, unit = _area_unit(adj)
    lines = [
        f"# Accuracy of {Path(result['map']).name}", "",
        f"Map `{result['map']}` compared with the {result['reference_kind']} reference "
        f"`{result['reference']}` on the map grid ({px['compared']:,d} pixels compared; left out: "
        f"{px['excluded_map_nodata']:,d} labelled pixels where the map has no data, "
        f"{px['excluded_map_unknown_code']:,d} where the map code is not in the class table, "
        f"{px['reference_unknown_code']:,d} labelled pixels with codes not in the class table). "
        f"Class table: {result['class_table']['source']}.", "",
        "## Accuracy of the compared pixels", "",
        "User's accuracy = precision (1 - commission error); producer's accuracy = recall "
        "(1 - omission error).", "",
        "| Class | User's accuracy | Producer's accuracy | F1 | IoU | Reference pixels | "
        "Map pixels |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        c = sc["per_class"][name]
        lines.append(f"| {name} | {_acc(c['precision'])} | {_acc(c['recall'])} | "
                     f"{_acc(c['f1'])} | {_acc(c['iou'])} | {c['support']:,d} | "
                     f"{c['predicted']:,d} |")
    lines += ["", f"Overall accuracy {_acc(sc['overall_accuracy'])}, kappa {_acc(sc['kappa'])}, "
                  f"macro F1 {_acc(sc['macro_f1'])}, mean IoU {_acc(sc['mean_iou'])}.", "",
              "## Area-adjusted accuracy and area", "",
              "Stratified estimators of Olofsson et al. (2014, Remote Sensing of Environment 148: "
              "42-57), the map classes as strata, weighted by the mapped area of each class; "
              "± = 95% confidence interval (1.96 standard errors). They assume the reference "
              "pixels of each map class are a random sample of it.", "",
              f"| Class | Mapped area ({unit}) | Estimated area ({unit}) | User's accuracy | "
              "Producer's accuracy |",
              "|---|---:|---:|---:|---:|"]
    for name in names:
        a = adj["per_class"][name]
        mapped = a["map_area_ha"] if key == "ha" else a["map_pixels"]
        area = _area(a[f"area_{key}"], a[f"area_{key}_ci95"])
        lines.append(f"| {name} | {_area(mapped)} | {area} | "
                     f"{_acc(a['users_accuracy'], a['users_accuracy_ci95'])} | "
                     f"{_acc(a['producers_accuracy'], a['producers_accuracy_ci95'])} |")
    overall = _acc(adj["overall_accuracy"], adj["overall_accuracy_ci95"])
    lines += ["", f"Overall accuracy {overall}."]
    if adj["unsampled_classes"]:
        lines += ["", f"Mapped classes without reference pixels: "
                      f"{', '.join(adj['unsampled_classes'])}; the estimates that need every "
                      "class are undefined (-)."]
    cm = result["confusion_matrix"]["counts"]
    lines += ["", "## Confusion matrix", "",
              "Pixels; rows = reference, columns = map.", "",
              "| Reference \\ Map | " + " | ".join(names) + " | Total |",
              "|---|" + "---:|" * (len(names) + 1)]
    for name, row in zip(names, cm):
        lines.append(f"| {name} | " + " | ".join(f"{v:,d}" for v in row) + f" | {sum(row):,d} |")
    totals = [sum(col) for col in zip(*cm)]
    lines.append("| Total | " + " | ".join(f"{v:,d}" for v in totals) + f" | {sum(totals):,d} |")
    return "\n".join(lines) + "\n"


def format_report(result: dict) -> str:
    """The text printed by ``landcover evaluate``: both tables and the overall figures."""
    sc, adj, px = result["scores"], result["area_adjusted"], result["pixels"]
    names = result["confusion_matrix"]["class_names"]
    width = max(8, *(len(n) for n in names))
    key, unit = _area_unit(adj)
    users, producers = "user's acc", "producer's acc"
    lines = [f"Wrote {result['output']}: {result['map']} vs {result['reference']} "
             f"({result['reference_kind']}), {px['compared']:,d} pixels compared",
             f"(labelled pixels left out: {px['excluded_map_nodata']:,d} on map nodata, "
             f"{px['excluded_map_unknown_code']:,d} on map codes outside the class table, "
             f"{px['reference_unknown_code']:,d} with reference codes outside it)", "",
             f"{'class':<{width}}  user's acc  producer's acc     F1    IoU    reference px",
             f"{'':<{width}}  (precision)    (recall)",
             "-" * (width + 64)]
    for name in names:
        c = sc["per_class"][name]
        lines.append(f"{name:<{width}}  {_acc(c['precision']):>10}  {_acc(c['recall']):>14}  "
                     f"{_acc(c['f1']):>5}  {_acc(c['iou']):>5}  {c['support']:>14,d}")
    lines += ["-" * (width + 64),
              f"overall accuracy {_acc(sc['overall_accuracy'])}   kappa {_acc(sc['kappa'])}   "
              f"macro F1 {_acc(sc['macro_f1'])}   mean IoU {_acc(sc['mean_iou'])}", "",
              "Area-adjusted (Olofsson et al. 2014, map classes as strata, ± 95% CI):",
              f"{'class':<{width}}  {'mapped ' + unit:>14}  {'estimated ' + unit:>22}  "
              f"{users:>13}  {producers:>14}",
              "-" * (width + 75)]
    for name in names:
        a = adj["per_class"][name]
        mapped = a["map_area_ha"] if key == "ha" else a["map_pixels"]
        lines.append(f"{name:<{width}}  {_area(mapped):>14}  "
                     f"{_area(a[f'area_{key}'], a[f'area_{key}_ci95']):>22}  "
                     f"{_acc(a['users_accuracy'], a['users_accuracy_ci95']):>13}  "
                     f"{_acc(a['producers_accuracy'], a['producers_accuracy_ci95']):>14}")
    lines += ["-" * (width + 75),
              f"overall accuracy {_acc(adj['overall_accuracy'], adj['overall_accuracy_ci95'])}"]
    return "\n".join(lines)
