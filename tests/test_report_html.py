"""report.html beside each bundle and each evaluation: what the page holds (parsed, against the
figures it is built from), that it is self-contained, and that a real headless browser (Chromium)
renders it without console messages into a screenshot that is not blank."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.evaluate import FILES, evaluate
from landcover.report_html import REPORT, heatmap, write_bundle_report

CRS = "EPSG:32632"
TABLE = [{"code": 10, "name": "forest", "color": "#1b7837"},
         {"code": 20, "name": "water <&>", "color": "#2166ac"},
         {"code": 30, "name": "crop", "color": "#f1a340"}]
CODES = [10, 20, 30]
H, W = 40, 50
TRANSFORM = Affine(30.0, 0, 500_000.0, 0, -30.0, 5_000_000.0)


# ------------------------------------------------------------------------------------ the parser
class Page(HTMLParser):
    """The parts of a page the tests look at: text, images, links, scripts, heat-map cells."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.images, self.links, self.scripts, self.cells, self.csp = [], [], 0, [], None
        self.chunks: list[str] = []
        self.feed(text)
        self.text = " ".join(" ".join(self.chunks).split())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        elif tag in ("a", "link"):
            self.links.append(a.get("href", ""))
        elif tag == "script":
            self.scripts += 1
        elif tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a.get("content")
        elif tag == "td" and a.get("title", "").startswith("reference "):
            self.cells.append((a["title"], a.get("style", "")))

    def handle_data(self, data):
        self.chunks.append(data)


def self_contained(page: Page) -> None:
    assert page.scripts == 0
    assert page.links == []
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.csp and "default-src 'none'" in page.csp and "img-src data:" in page.csp


# ------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """A map (with its quicklook, as classify writes it) evaluated against a noisy reference."""
    from landcover.classes import class_table_from_tag
    from landcover.maps import write_quicklook

    folder = tmp_path_factory.mktemp("report_eval")
    rng = np.random.default_rng(3)
    truth = np.repeat(np.array(CODES, np.uint8), [H * W // 2, H * W // 5, H * W - H * W // 2
                                                  - H * W // 5]).reshape(H, W)
    mapped = truth.copy()
    flip = rng.random((H, W)) < 0.15
    mapped[flip] = rng.choice(CODES, size=int(flip.sum()))
    mapped[:2, :5] = 255
    tag = json.dumps(TABLE)
    path = folder / "map.tif"
    for p, a, nodata in ((path, mapped, 255), (folder / "ref.tif", truth, 0)):
        with rasterio.open(p, "w", driver="GTiff", width=W, height=H, count=1, dtype="uint8",
                           crs=CRS, transform=TRANSFORM, nodata=nodata) as dst:
            dst.write(a, 1)
            dst.update_tags(LANDCOVER_CLASSES=tag)
    counts = [int((mapped == c).sum()) for c in CODES]
    write_quicklook(path, class_table_from_tag(tag, path), counts,
                    folder / "map_quicklook.png", title="map.tif")
    result = evaluate(path, folder / "ref.tif", folder / "acc")
    return folder / "acc", result


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle folder's report from figures made as training makes them (group confusions,
    bootstrap intervals, estimate record, curves PNG), without training anything."""
    from landcover.estimate import interval_scores
    from landcover.report import plot_learning_curves
    from landcover.scoring import estimate_record

    folder = tmp_path_factory.mktemp("report_bundle") / "model"
    folder.mkdir()
    names = [c["name"] for c in TABLE]
    def split(right: float, seed: int) -> dict:
        r = np.random.default_rng(seed)
        cms = np.zeros((12, 3, 3), np.int64)
        for g in range(12):
            for i in range(3):
                n = int(r.integers(20, 60))
                hit = r.binomial(n, right)
                cms[g, i, i] = hit
                cms[g, i, (i + 1) % 3] = n - hit
        return interval_scores(cms, names, seed=seed)

    metrics = {"validation": split(0.85, 1), "test": split(0.8, 2)}
    history = [{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "val_miou": 0.5 + 0.05 * e,
                "learning_rate": 0.005} for e in range(1, 7)]
    plot_learning_curves(history, folder / "learning_curves.png", best_epoch=5)
    (folder / "report.md").write_text("# Training report\n\nweights <kept>\n")
    candidates = [{"architecture": "convlstm", "kind": "network", "kept": True, "seconds": 40.0,
                   "overall_accuracy": {"value": 0.84, "ci95": [0.8, 0.88]},
                   "macro_f1": {"value": 0.83, "ci95": [0.79, 0.87]}, "pixels": 9000,
                   "groups": 12, "enough": True},
                  {"architecture": "gradient_boosting", "kind": "pixel", "kept": False,
                   "seconds": 3.0, "overall_accuracy": {"value": 0.71, "ci95": [0.66, 0.75]},
                   "macro_f1": {"value": 0.69, "ci95": [0.64, 0.74]}, "pixels": 9000,
                   "groups": 12, "enough": True, "beaten_by_best": 0.97}]
    meta = {"created": "2024-01-01T00:00:00+00:00",
            "classes": [dict(c, index=i, weight=1.0) for i, c in enumerate(TABLE)],
            "output": {"absent_classes": []}, "metrics": metrics,
            "estimate": estimate_record(metrics),
            "model": {"architecture": "convlstm", "candidates": candidates,
                      "why": "highest macro F1 (0.830)", "estimate_method": "holdout"},
            "baseline": {"n_estimators": 100, "train_pixels": 5000,
                         "validation": split(0.7, 3), "test": split(0.65, 4)},
            "calibration": {"fitted": False, "temperature": 1.0},
            "training": {"dataset": "/data/ds.zarr", "epochs_run": 6, "best_epoch": 5,
                         "monitor": "val_miou", "best": 0.75, "seconds_this_run": 40.0},
            "versions": {"landcover": "0.test"}}
    write_bundle_report(folder, meta)
    return folder, meta


# ----------------------------------------------------------------------------------- the content
def test_evaluation_report_holds_the_figures(evaluation):
    out, result = evaluation
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    page = Page((out / REPORT).read_text())
    self_contained(page)
    quicklook = base64.b64encode((out.parent / "map_quicklook.png").read_bytes()).decode()
    assert page.images == [f"data:image/png;base64,{quicklook}"]
    # the heat map: every cell's count is the confusion matrix's, the darkest cells the diagonal
    names = result["confusion_matrix"]["class_names"]
    cm = result["confusion_matrix"]["counts"]
    seen = {}
    for title, style in page.cells:
        m = re.fullmatch(r"reference (.+), predicted (.+): ([\d,]+)", title)
        seen[(m[1], m[2])] = (int(m[3].replace(",", "")), style)
    assert {k: v[0] for k, v in seen.items()} == {
        (a, b): cm[i][j] for i, a in enumerate(names) for j, b in enumerate(names)}
    for i, a in enumerate(names):  # the noisy map is right most of the time: diagonal darkest
        row = [seen[(a, b)][1] for b in names]
        assert min(row) == row[i], row  # "#08..." < "#f7...": darker is smaller
    sc, adj = result["scores"], result["area_adjusted"]
    assert f"{sc['overall_accuracy']:.3f}" in page.text
    assert f"{adj['overall_accuracy']:.3f} ± {adj['overall_accuracy_ci95']:.3f}" in page.text
    for name in names:
        a = adj["per_class"][name]
        area = a["area_ha"]
        assert f"{area:,.{0 if abs(area) >= 100 else 2}f}" in page.text
        assert f"{sc['per_class'][name]['f1']:.3f}" in page.text
    raw = (out / REPORT).read_text()
    assert "water &lt;&amp;&gt;" in raw and "water <&>" not in raw  # escaped, shown as written
    assert "water <&>" in page.text


def test_bundle_report_holds_the_estimate_comparison_and_curves(bundle):
    folder, meta = bundle
    page = Page((folder / REPORT).read_text())
    self_contained(page)
    curves = base64.b64encode((folder / "learning_curves.png").read_bytes()).decode()
    assert f"data:image/png;base64,{curves}" in page.images
    est = meta["estimate"]
    assert est["split"] == "test"
    lo, hi = est["overall_accuracy"]["ci95"]
    assert f"{est['overall_accuracy']['value']:.3f} ({lo:.3f} – {hi:.3f})" in page.text
    for name, c in est["per_class"].items():
        assert f"{c['f1']:.3f} {c['ci95'][0]:.3f} – {c['ci95'][1]:.3f}" in page.text, name
    test_cm = meta["metrics"]["test"]["confusion_matrix"]
    assert len(page.cells) == 9
    assert sum(int(t.rsplit(": ", 1)[1].replace(",", "")) for t, _ in page.cells) == \
        sum(map(sum, test_cm))
    assert "gradient_boosting" in page.text and "(kept)" in page.text and "97.0%" in page.text
    assert "test: the convlstm is better than the random forest" in page.text
    assert "weights <kept>" in page.text  # report.md, escaped into the page
    assert "landcover evaluate MAP --reference LABELS" in page.text


def test_heatmap_colours_rows_by_share_and_survives_an_empty_row():
    page = Page(heatmap([[9, 1], [0, 0]], ["a", "b"]))
    styles = dict(page.cells)
    assert "background:#08306b" not in styles["reference a, predicted a: 9"]  # 90 %, not 100 %
    assert styles["reference a, predicted a: 9"] < styles["reference a, predicted b: 1"]
    assert styles["reference b, predicted a: 0"] == styles["reference b, predicted b: 0"]


def test_a_trained_bundle_has_its_report(field_bundle):
    from landcover.bundle import read_metadata

    meta = read_metadata(field_bundle)  # the report leaves the content hash valid
    page = Page((field_bundle / REPORT).read_text())
    self_contained(page)
    curves = base64.b64encode((field_bundle / "learning_curves.png").read_bytes()).decode()
    assert f"data:image/png;base64,{curves}" in page.images
    assert f"{meta['estimate']['macro_f1']['value']:.3f}" in page.text
    assert "Training curves" in page.text and "Confusion matrix" in page.text


def test_the_choice_of_auto_reaches_the_report(field_bundle, tmp_path):
    from landcover.outputs import OutputSet
    from landcover.scoring import rewrite_model_meta

    out = tmp_path / "model"
    shutil.copytree(field_bundle, out)
    model = {"architecture": "convlstm", "why": "highest macro F1", "estimate_method": "holdout",
             "candidates": [{"architecture": "convlstm", "kind": "network", "kept": True,
                             "seconds": 1.0},
                            {"architecture": "random_forest", "kind": "pixel", "kept": False,
                             "seconds": 2.0, "note": "a <note>"}]}
    assert "random_forest" not in (out / REPORT).read_text()
    with OutputSet([out], overwrite=True) as outputs:
        rewrite_model_meta(outputs, model)
    page = Page((out / REPORT).read_text())
    assert "Candidates of auto" in page.text and "random_forest" in page.text
    assert "a <note>" in page.text


# ----------------------------------------------------------------------------- a real browser
def chromium() -> str:
    for name in (os.environ.get("LANDCOVER_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium found (apt-get install chromium, or set LANDCOVER_CHROMIUM): the "
                "report is not checked in a browser")


def render(page: Path, tmp_path: Path, size=(1280, 2200)) -> tuple[np.ndarray, list[str]]:
    """Screenshot (H, W, channels) of ``page`` in headless Chromium and the console messages."""
    shot = tmp_path / f"{page.parent.name}_{page.stem}.png"
    proc = subprocess.run(
        [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}",
         "--enable-logging=stderr", "--v=0", page.absolute().as_uri()],
        check=False, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    import matplotlib.image

    console = [line for line in proc.stderr.splitlines() if re.search(r"CONSOLE[:(]", line)]
    return matplotlib.image.imread(shot), console


def blank(image: np.ndarray) -> bool:
    """Blank: (almost) one colour, e.g. a white page that failed to render."""
    rgb = np.round(image[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    background = np.median(rgb, axis=0)
    differs = np.abs(rgb.astype(int) - background).sum(axis=1) > 30
    return differs.mean() < 0.02 or len(np.unique(rgb, axis=0)) < 20


def test_the_browser_checks_can_fail(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><meta charset=utf-8></head><body>"
                   "<script>console.error('report-broken')</script></body></html>")
    image, console = render(bad, tmp_path, (400, 300))
    assert blank(image)
    assert any("report-broken" in line for line in console), console


@pytest.mark.slow  # 4.7-4.8 s each of the default run's 6 min on 2 cores
@pytest.mark.parametrize("which", ["evaluation", "bundle"])
def test_the_report_renders_in_a_browser(which, evaluation, bundle, tmp_path):
    folder = evaluation[0] if which == "evaluation" else bundle[0]
    image, console = render(folder / REPORT, tmp_path)
    assert console == []
    assert image.shape[:2] == (2200, 1280)
    assert not blank(image)
    if os.environ.get("LANDCOVER_KEEP_SCREENSHOTS"):  # to look at them: a folder to copy into
        shutil.copy(next(tmp_path.glob("*.png")),
                    Path(os.environ["LANDCOVER_KEEP_SCREENSHOTS"]) / f"{which}.png")
