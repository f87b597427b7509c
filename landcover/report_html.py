"""``report.html``: one page to open and share, beside each bundle and each evaluation.

The page is self-contained: the pictures (map quicklook, training curves, reliability diagram)
are embedded as ``data:`` URIs, the style is inline, there is no script, and a Content Security
Policy (``default-src 'none'; img-src data:; style-src 'unsafe-inline'``) makes the browser refuse
anything else, so it opens offline, from a mail attachment or a shared drive, and never reaches
the network. Every piece of text taken from the data (class names, paths, notes) goes through
:func:`html.escape`.

It is built from what the other outputs already hold, nothing is computed anew:

* a bundle (:func:`write_bundle_report`): ``bundle.json`` (the estimate with its 95 % intervals,
  the per-split scores and confusion matrices, the candidates of ``auto``, the random-forest
  baseline, the calibration), ``learning_curves.png``, ``reliability.png`` and ``report.md``;
* an evaluation (:func:`write_evaluation_report`): ``evaluation.json``'s content (scores, the
  confusion matrix, the area-adjusted estimates of Olofsson et al. 2014) and the map's quicklook
  (``MAP_quicklook.png`` beside the map, as ``landcover classify`` writes it).

The confusion matrix is an HTML table coloured by the share of each reference row (a heat map that
stays searchable and copyable); the per-class F1 and the areas have bars with their interval.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from landcover.bundle.meta import BundleMeta
from landcover.outputs import atomic_file

REPORT = "report.html"
BUNDLE_AREAS = ("<section><h2>Area estimates</h2><p class=note>A bundle has no map: "
                "<code>landcover evaluate MAP --reference LABELS</code> writes the error-adjusted "
                "class areas (with 95 % intervals) and its own report.html.</p></section>")
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;
color:#1b1f24;background:#f6f7f9;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:1.5rem 1.5rem 3rem}
h1{font-size:1.6rem;margin:.2rem 0 .3rem}h2{font-size:1.2rem;margin:0 0 .6rem}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:1rem 1.2rem;
margin:1rem 0;overflow-x:auto}
.sub{color:#57606a;font-size:.9rem;margin:0}.note{color:#57606a;font-size:.85rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #dde1e6;border-radius:6px;padding:.5rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.5rem}.card span{color:#57606a;font-size:.8rem}
table{border-collapse:collapse;font-size:.85rem;margin:.3rem 0}
th,td{padding:.25rem .55rem;border-bottom:1px solid #eaecef;text-align:right;
white-space:nowrap}
th{background:#f0f2f5;font-weight:600}td.l,th.l{text-align:left}
table.heat td{border:1px solid #fff;min-width:3.2rem;text-align:center}
table.heat td.diag{outline:2px solid #1b1f24;outline-offset:-2px}
.sw{display:inline-block;width:.8rem;height:.8rem;border:1px solid #888;margin-right:.35rem;
vertical-align:-1px}
.bar{position:relative;width:200px;height:.8rem;background:#eef0f3;border-radius:2px}
.bar.s{width:110px}.bar .v{position:absolute;left:0;top:0;bottom:0;background:#4a7fb5;border-radius:2px}
.bar .v.m{background:#b0b8c1}
.bar .ci{position:absolute;top:45%;height:2px;background:#1b1f24}
.bar .ci:before,.bar .ci:after{content:"";position:absolute;top:-4px;width:2px;height:10px;
background:#1b1f24}.bar .ci:before{left:0}.bar .ci:after{right:0}
img{max-width:100%;height:auto;border:1px solid #eaecef}
.warn{color:#9a3412}
h3{font-size:1rem;margin:.8rem 0 .3rem}td .bar{display:inline-block;vertical-align:middle}
td .warn{margin-left:.4rem}.wrap{white-space:normal;max-width:30rem}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:.8rem;white-space:pre-wrap}
"""


# ------------------------------------------------------------------------------------ entry points
def write_bundle_report(folder: str | Path, meta: Mapping | None = None) -> Path:
    """Write ``FOLDER/report.html`` of a bundle (its ``bundle.json`` when ``meta`` is not given),
    under a temporary name renamed when complete; returns its path."""
    folder = Path(folder)
    if meta is None:
        meta = json.loads((folder / "bundle.json").read_text())
    return _write(folder / REPORT, bundle_html(folder, BundleMeta.of(meta)))


def write_evaluation_report(folder: str | Path, result: Mapping) -> Path:
    """Write ``FOLDER/report.html`` of an evaluation (``result``: ``evaluation.json``'s content);
    returns its path."""
    folder = Path(folder)
    return _write(folder / REPORT, evaluation_html(result))


def _write(path: Path, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ bundle
def bundle_html(folder: Path, meta: BundleMeta) -> str:
    """The page of a bundle: estimate, per-class F1, confusion, curves, model comparison,
    calibration, classes and the text report."""
    folder = Path(folder)
    names = [c["name"] for c in meta.classes]
    colours = {c["name"]: c.get("color") for c in meta.classes}
    est = meta.estimate or {}
    training = meta.training
    arch = meta.model.get("architecture") or meta.architecture.get("architecture", "?")
    subtitle = [f"model {arch}", f"created {meta.created or '?'}"]
    if training.get("dataset"):
        subtitle.append(f"dataset {training['dataset']}")
    if training.get("seconds_this_run") is not None:
        subtitle.append(f"{training['seconds_this_run']:.0f} s of training")
    version = meta.versions.get("landcover")
    sections = [_estimate_section(est),
                _per_class_section(est, colours),
                _bundle_confusion(meta, names, est),
                _curves_section(folder, training),
                _comparison_section(meta, names),
                _calibration_section(folder, meta.calibration),
                _classes_section(meta),
                BUNDLE_AREAS,
                _text_section(folder / "report.md", "The text report (report.md)")]
    return _page(f"Training report: {arch}", " · ".join(subtitle), sections, version)


def _estimate_section(est: Mapping) -> str:
    if not est or est.get("method") in (None, "none"):
        why = est.get("why", "no held-out pixels") if est else "no estimate recorded"
        return f"<section><h2>Estimate</h2><p class=warn>No estimate: {escape(str(why))}.</p>" \
               "</section>"
    split = est.get("split", "?")
    where = (f"{est.get('folds') or 'k'}-fold spatial cross-validation"
             if split == "cross_validation" else f"the {split} split")
    if est["method"] == "kfold" and split != "cross_validation":
        where += " (the model was chosen by a spatial cross-validation)"
    cards = [_card(_ci_text(est.get("overall_accuracy")), "overall accuracy (95 % CI)"),
             _card(_ci_text(est.get("macro_f1")), "macro F1 (95 % CI)"),
             _card(_int(est.get("pixels")), "held-out pixels"),
             _card(_int(est.get("groups")), "spatial groups")]
    warn = "" if est.get("enough", True) else (
        "<p class=warn>Not enough to tell: the held-out pixels come from too few groups "
        "(fields, polygons or blocks); the intervals are wide.</p>")
    cv = est.get("cross_validation")
    if cv:
        warn += (f"<p class=note>The cross-validation that chose the model: OA "
                 f"{_ci_text(cv.get('overall_accuracy'))}, macro F1 "
                 f"{_ci_text(cv.get('macro_f1'))} ({_int(cv.get('pixels'))} pixels in "
                 f"{_int(cv.get('groups'))} groups).</p>")
    return (f"<section><h2>Estimate</h2><p class=sub>The figures to believe, from "
            f"{escape(str(where))}; intervals over spatial groups.</p>"
            f"<div class=cards>{''.join(cards)}</div>{warn}</section>")


def _per_class_section(est: Mapping, colours: Mapping) -> str:
    per_class = est.get("per_class") or {}
    if not per_class:
        return ""
    rows = []
    for name, c in per_class.items():
        f1, ci = c.get("f1"), c.get("ci95")
        flag = "" if c.get("enough", True) else " <span class=warn>not enough to tell</span>"
        rows.append(f"<tr><td class=l>{_swatch(colours.get(name))}{escape(str(name))}</td>"
                    f"<td>{_num(f1)}</td><td>{_range(ci)}</td><td>{_int(c.get('support'))}</td>"
                    f"<td class=l>{_bar(f1, ci)}{flag}</td></tr>")
    return ("<section><h2>F1 per class</h2><p class=sub>Same held-out pixels as the estimate; "
            "95 % intervals over spatial groups.</p><table><tr><th class=l>class</th><th>F1</th>"
            "<th>95 % CI</th><th>reference pixels</th><th class=l>0 &ndash; 1</th></tr>"
            + "".join(rows) + "</table></section>")


def _bundle_confusion(meta: BundleMeta, names: Sequence[str], est: Mapping) -> str:
    metrics = meta.metrics
    split = est.get("split") if est.get("split") in metrics else None
    split = split or next((s for s in ("test", "validation") if metrics.get(s)), None)
    if split is None or not metrics[split].get("confusion_matrix"):
        return ("<section><h2>Confusion matrix</h2><p class=note>No held-out split was scored."
                "</p></section>")
    r = metrics[split]
    return ("<section><h2>Confusion matrix</h2>"
            f"<p class=sub>{escape(_split_name(split))}, {_int(r.get('pixels'))} pixels: OA "
            f"{_num(r.get('overall_accuracy'))}, macro F1 {_num(r.get('macro_f1'))}. Rows: "
            "reference, columns: predicted; colour: share of the reference row.</p>"
            + heatmap(r["confusion_matrix"], r.get("class_names") or names) + "</section>")


def _split_name(split: str) -> str:
    return ("The cross-validation (each pixel scored by the fold that left it out)"
            if split == "cross_validation" else f"The {split} split")


def _curves_section(folder: Path, training: Mapping) -> str:
    png = folder / "learning_curves.png"
    if not png.is_file():
        return ("<section><h2>Training curves</h2><p class=note>None: a pixel classifier is "
                "fitted in one go, without epochs.</p></section>")
    facts = []
    if training.get("epochs_run") is not None:
        facts.append(f"{training['epochs_run']} epochs run")
    if training.get("best_epoch") is not None:
        facts.append(f"weights of epoch {training['best_epoch']} kept (best "
                     f"{training.get('monitor', '?')} {_num(training.get('best'))})")
    if training.get("stopped_early"):
        facts.append("stopped early")
    if training.get("still_improving"):
        facts.append("<span class=warn>still improving at the end: more epochs may help</span>")
    text = "; ".join(f if f.startswith("<span") else escape(f) for f in facts)
    return (f"<section><h2>Training curves</h2><p class=sub>{text}.</p>"
            f"{image(png, 'Loss, validation scores and learning rate per epoch')}</section>")


def _comparison_section(meta: BundleMeta, names: Sequence[str]) -> str:
    model = meta.model
    parts = []
    candidates = model.get("candidates") or []
    if candidates:
        rows = []
        for c in candidates:
            f1 = c.get("macro_f1") or {}
            kept = " <b>(kept)</b>" if c.get("kept") else ""
            note = f"<div class=\"note wrap\">{escape(str(c['note']))}</div>" if c.get("note") \
                else ""
            flag = "" if c.get("enough", True) else " <span class=warn>not enough to tell</span>"
            rows.append(f"<tr><td class=l>{escape(str(c.get('architecture', '?')))}{kept}{note}"
                        f"</td><td class=l>{escape(str(c.get('kind', '')))}</td>"
                        f"<td>{_ci_text(c.get('overall_accuracy'))}{flag}</td>"
                        f"<td>{_ci_text(c.get('macro_f1'))}</td>"
                        f"<td class=l>{_bar(f1.get('value'), f1.get('ci95'), short=True)}</td>"
                        f"<td>{_int(c.get('pixels'))}</td><td>{_int(c.get('groups'))}</td>"
                        f"<td>{_num(c.get('seconds'), 1)}</td>"
                        f"<td>{_share(c.get('beaten_by_best'))}</td></tr>")
        why = f" Kept: <b>{escape(str(model.get('architecture', '?')))}</b>"
        why += f" ({escape(str(model['why']))})." if model.get("why") else "."
        parts.append(f"<h3>Candidates of auto</h3><p class=sub>Estimate: "
                     f"{escape(str(model.get('estimate_method', '?')))}.{why}</p>"
                     "<table><tr><th class=l>candidate</th><th class=l>kind</th>"
                     "<th>OA (95 % CI)</th><th>macro F1 (95 % CI)</th><th class=l>macro F1</th>"
                     "<th>pixels</th><th>groups</th><th>s</th><th title=\"share of paired "
                     "bootstrap draws of the held-out groups in which the candidate with the "
                     "highest macro F1 beats this one\">best higher in</th></tr>"
                     + "".join(rows) + "</table>")
    baseline = meta.baseline
    if baseline:
        parts.append(_baseline_tables(meta, baseline, names))
    if not parts:
        parts.append("<p class=note>One model, no baseline (train.baseline: none).</p>")
    return "<section><h2>Model comparison</h2>" + "".join(parts) + "</section>"


def _baseline_tables(meta: BundleMeta, baseline: Mapping, names: Sequence[str]) -> str:
    from landcover.baseline import verdict, verdict_line

    metrics = meta.metrics
    ours = escape(str(meta.model.get("architecture", "model")))
    out = [(f"<h3>Against scikit-learn's random forest</h3><p class=sub>"
            f"{_int(baseline.get('n_estimators'))} trees, {_int(baseline.get('train_pixels'))} "
            "training pixels, the same held-out pixels; 95 % intervals over groups.</p>")]
    for split in ("validation", "test"):
        n, b = metrics.get(split), baseline.get(split)
        if not (isinstance(n, Mapping) and isinstance(b, Mapping)):
            continue
        rows = [("OA", "overall_accuracy", None), ("macro F1", "macro_f1", None)]
        rows += [(f"F1 {name}", "f1", name) for name in names]
        body = []
        for label, key, name in rows:
            a, fa = _figure(n, key, name)
            c, fc = _figure(b, key, name)
            diff = None if a is None or c is None else a - c
            body.append(f"<tr><td class=l>{escape(label)}</td><td>{fa}</td><td>{fc}</td>"
                        f"<td>{'-' if diff is None else f'{diff:+.3f}'}</td></tr>")
        line = verdict_line(split, verdict(n, b), f"the {ours}", "the random forest")
        out.append(f"<p><b>{escape(split)}</b> ({_int(n.get('pixels'))} pixels)</p>"
                   f"<table><tr><th class=l></th><th>{ours}</th><th>random forest</th>"
                   "<th>difference</th></tr>" + "".join(body) + "</table>"
                   f"<p>{escape(line)}.</p>")
    return "".join(out)


def _figure(result: Mapping, key: str, name: str | None) -> tuple[float | None, str]:
    iv = result.get("intervals") or {}
    if name is None:
        v, ci = result.get(key), iv.get(key)
    else:
        v = (result.get("per_class") or {}).get(name, {}).get("f1")
        ci = (iv.get("per_class") or {}).get(name, {}).get("f1")
    return v, _ci_text({"value": v, "ci95": ci})


def _calibration_section(folder: Path, cal: Mapping) -> str:
    if not cal.get("fitted"):
        return ("<section><h2>Probabilities</h2><p class=note>Not calibrated (fewer than 100 "
                "validation pixels); temperature 1.</p></section>")
    text = (f"Temperature {_num(cal.get('temperature'))} fitted on "
            f"{_int(cal.get('fitted_on_pixels'))} validation pixels; expected calibration error on "
            f"{cal.get('checked_on', '?')}: {_num((cal.get('before') or {}).get('ece'))} before, "
            f"{_num((cal.get('after') or {}).get('ece'))} after.")
    png = folder / "reliability.png"
    pic = image(png, "Reliability diagram") if png.is_file() else ""
    return f"<section><h2>Probabilities</h2><p class=sub>{escape(text)}</p>{pic}</section>"


def _classes_section(meta: BundleMeta) -> str:
    absent = set(meta.output.absent_classes)
    rows = []
    for c in meta.classes:
        note = " <span class=warn>no training pixels: never predicted</span>" \
            if c.get("index") in absent else ""
        rows.append(f"<tr><td>{_int(c.get('code'))}</td><td class=l>{_swatch(c.get('color'))}"
                    f"{escape(str(c.get('name')))}{note}</td><td>{_num(c.get('weight'))}</td>"
                    "</tr>")
    return ("<section><h2>Classes</h2><table><tr><th>code</th><th class=l>name</th>"
            "<th>loss weight</th></tr>" + "".join(rows) + "</table></section>")


# -------------------------------------------------------------------------------------- evaluation
def evaluation_html(result: Mapping) -> str:
    """The page of an evaluation: quicklook, headline figures, confusion, per-class accuracy,
    area estimates."""
    sc, adj, px = result["scores"], result["area_adjusted"], result["pixels"]
    names = result["confusion_matrix"]["class_names"]
    colours = {c["name"]: c.get("color") for c in result["class_table"]["classes"]}
    map_path = Path(result["map"])
    cards = [_card(_num(sc.get("overall_accuracy")), "overall accuracy (compared pixels)"),
             _card(_pm(adj.get("overall_accuracy"), adj.get("overall_accuracy_ci95")),
                   "area-adjusted OA ± 95 % CI"),
             _card(_num(sc.get("kappa")), "kappa"), _card(_num(sc.get("macro_f1")), "macro F1"),
             _card(_num(sc.get("mean_iou")), "mean IoU"),
             _card(_int(px.get("compared")), "pixels compared")]
    left_out = (f"Left out: {_int(px.get('excluded_map_nodata'))} labelled pixels on map nodata, "
                f"{_int(px.get('excluded_map_unknown_code'))} on map codes outside the class "
                f"table, {_int(px.get('reference_unknown_code'))} with reference codes outside it. "
                f"Class table: {result['class_table'].get('source', '?')}.")
    headline = (f"<section><h2>Accuracy</h2><div class=cards>{''.join(cards)}</div>"
                f"<p class=note>{escape(left_out)}</p></section>")
    quick = map_path.with_name(f"{map_path.stem}_quicklook.png")
    if quick.is_file():
        look = image(quick, f"Quicklook of {map_path.name}")
    else:
        look = (f"<p class=note>No quicklook beside the map ({escape(quick.name)}); "
                "<code>landcover classify</code> writes one unless classify.quicklook is false."
                "</p>")
    quicklook = f"<section><h2>Map</h2>{look}</section>"
    confusion = ("<section><h2>Confusion matrix</h2><p class=sub>Pixels; rows: reference, "
                 "columns: map; colour: share of the reference row.</p>"
                 + heatmap(result["confusion_matrix"]["counts"], names) + "</section>")
    sections = [headline, quicklook, confusion, _accuracy_section(sc, adj, names, colours),
                _area_section(adj, names, colours)]
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    sub = (f"{map_path} against the {result.get('reference_kind', '')} reference "
           f"{result.get('reference', '?')} · {when}")
    return _page(f"Accuracy of {map_path.name}", sub, sections, None)


def _accuracy_section(sc: Mapping, adj: Mapping, names: Sequence[str],
                      colours: Mapping) -> str:
    rows = []
    for name in names:
        c, a = sc["per_class"][name], adj["per_class"][name]
        rows.append(f"<tr><td class=l>{_swatch(colours.get(name))}{escape(str(name))}</td>"
                    f"<td>{_num(c.get('precision'))}</td><td>{_num(c.get('recall'))}</td>"
                    f"<td>{_num(c.get('f1'))}</td><td>{_num(c.get('iou'))}</td>"
                    f"<td>{_pm(a.get('users_accuracy'), a.get('users_accuracy_ci95'))}</td>"
                    f"<td>{_pm(a.get('producers_accuracy'), a.get('producers_accuracy_ci95'))}"
                    f"</td><td>{_int(c.get('support'))}</td></tr>")
    return ("<section><h2>Accuracy per class</h2><p class=sub>User's accuracy = precision, "
            "producer's accuracy = recall. The first columns count the compared pixels; the "
            "area-adjusted ones (± 95 % CI) weight each map class by its mapped area (Olofsson et "
            "al. 2014), which gives intervals for the user's and producer's accuracy, not for F1."
            "</p><table><tr><th class=l>class</th><th>user's</th><th>producer's</th><th>F1</th>"
            "<th>IoU</th><th>user's, adjusted</th>"
            "<th>producer's, adjusted</th><th>reference pixels</th></tr>"
            + "".join(rows) + "</table></section>")


def _area_section(adj: Mapping, names: Sequence[str], colours: Mapping) -> str:
    key, unit = ("ha", "ha") if adj.get("pixel_area_m2") else ("pixels", "px")
    mapped = {n: (adj["per_class"][n]["map_area_ha"] if key == "ha"
                  else adj["per_class"][n]["map_pixels"]) for n in names}
    est = {n: (adj["per_class"][n][f"area_{key}"], adj["per_class"][n][f"area_{key}_ci95"])
           for n in names}
    top = max([v or 0 for v in mapped.values()]
              + [(v or 0) + (ci or 0) for v, ci in est.values()] + [1e-12])
    rows = []
    for n in names:
        v, ci = est[n]
        lo_hi = None if v is None or ci is None else (v - ci, v + ci)
        rows.append(f"<tr><td class=l>{_swatch(colours.get(n))}{escape(str(n))}</td>"
                    f"<td>{_area(mapped[n])}</td><td>{_area(v)}</td><td>{_area(ci, '± ')}</td>"
                    f"<td class=l><div>{_bar(mapped[n], None, top, cls='v m')}</div>"
                    f"<div>{_bar(v, lo_hi, top)}</div></td></tr>")
    unsampled = adj.get("unsampled_classes") or []
    warn = ("" if not unsampled else
            f"<p class=warn>Mapped classes without reference pixels: "
            f"{escape(', '.join(unsampled))}; the estimates that need every class are undefined "
            "(-).</p>")
    return (f"<section><h2>Area estimates</h2><p class=sub>Error-adjusted areas ({unit}) by the "
            "stratified estimators of Olofsson et al. (2014), the map classes as strata; they "
            "assume the reference pixels of each map class are a random sample of it. Bars: grey "
            "the mapped area, blue the estimate with its 95 % interval.</p>"
            f"<table><tr><th class=l>class</th><th>mapped</th><th>estimated</th>"
            f"<th>95 % CI</th><th class=l></th></tr>{''.join(rows)}</table>{warn}</section>")


# ------------------------------------------------------------------------------------ the pieces
def heatmap(counts, names: Sequence[str]) -> str:
    """An HTML table of a confusion matrix (rows: reference) coloured by the row share, with the
    counts and shares in the cells, totals and the diagonal outlined."""
    cm = [[int(v) for v in row] for row in counts]
    rows_total = [sum(r) for r in cm]
    cols_total = [sum(c) for c in zip(*cm)] if cm else []
    head = "".join(f"<th>{escape(str(n))}</th>" for n in names)
    body = []
    for i, (name, row) in enumerate(zip(names, cm)):
        cells = []
        for j, v in enumerate(row):
            share = v / rows_total[i] if rows_total[i] else 0.0
            bg, fg = _blue(share), ("#fff" if share > 0.6 else "#1b1f24")
            cls = " class=diag" if i == j else ""
            text = f"{v:,d}<br><small>{share:.0%}</small>" if v else "&middot;"
            cells.append(f"<td{cls} style=\"background:{bg};color:{fg}\" "
                         f"title=\"reference {escape(str(name))}, predicted "
                         f"{escape(str(names[j]))}: {v:,d}\">{text}</td>")
        body.append(f"<tr><th class=l>{escape(str(name))}</th>{''.join(cells)}"
                    f"<td>{rows_total[i]:,d}</td></tr>")
    body.append("<tr><th class=l>total</th>" + "".join(f"<td>{v:,d}</td>" for v in cols_total)
                + f"<td>{sum(cols_total):,d}</td></tr>")
    return (f"<table class=heat><tr><th class=l>reference \\ predicted</th>{head}"
            f"<th>total</th></tr>{''.join(body)}</table>")


def image(path: Path, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as a data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt=\"{escape(alt)}\" src=\"data:image/png;base64,{data}\">"


def _blue(share: float) -> str:
    """White (0) to dark blue (1), as matplotlib's Blues at its ends."""
    lo, hi = (247, 251, 255), (8, 48, 107)
    s = min(max(share, 0.0), 1.0)
    r, g, b = (round(a + (z - a) * s) for a, z in zip(lo, hi))
    return f"#{r:02x}{g:02x}{b:02x}"


def _bar(value, ci=None, top: float = 1.0, cls: str = "v", short: bool = False) -> str:
    if value is None:
        return ""
    def pct(x):
        return f"{100 * min(max(x / top, 0.0), 1.0):.1f}%"

    whisker = ""
    if ci and ci[0] is not None and ci[1] is not None:
        whisker = (f"<div class=ci style=\"left:{pct(ci[0])};width:calc({pct(ci[1])} - "
                   f"{pct(ci[0])})\"></div>")
    return (f"<div class=\"bar{' s' if short else ''}\"><div class=\"{cls}\" "
            f"style=\"width:{pct(value)}\"></div>{whisker}</div>")


def _swatch(colour) -> str:
    if not isinstance(colour, str) or not _COLOUR.match(colour):
        return ""
    return f"<span class=sw style=\"background:{colour}\"></span>"


def _card(value: str, label: str) -> str:
    return f"<div class=card><b>{value}</b><span>{escape(label)}</span></div>"


def _num(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _int(v) -> str:
    return "-" if v is None else f"{int(v):,d}"


def _pm(v, ci) -> str:
    return _num(v) if ci is None or v is None else f"{v:.3f} ± {ci:.3f}"


def _share(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _range(ci) -> str:
    return "-" if not ci or ci[0] is None else f"{ci[0]:.3f} &ndash; {ci[1]:.3f}"


def _ci_text(f) -> str:
    if not f or f.get("value") is None:
        return "-"
    ci = f.get("ci95")
    return f"{f['value']:.3f}" + (f" <small>({_range(ci)})</small>" if ci else "")


def _area(v, prefix: str = "") -> str:
    if v is None:
        return "-"
    d = 0 if abs(v) >= 100 else 2
    return f"{prefix}{v:,.{d}f}"


def _text_section(path: Path, title: str) -> str:
    if not path.is_file():
        return ""
    return (f"<section><details><summary><b>{escape(title)}</b></summary>"
            f"<pre>{escape(path.read_text(encoding='utf-8'))}</pre></details></section>")


def _page(title: str, subtitle: str, sections: Sequence[str], version: str | None) -> str:
    made = f"landcover {escape(version)}" if version else "landcover"
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=viewport content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
            f"<h1>{escape(title)}</h1><p class=sub>{escape(subtitle)}</p>"
            + "\n".join(s for s in sections if s)
            + f"<p class=note>Written by {made}; self-contained, opens offline.</p>"
            "</main></body></html>\n")
