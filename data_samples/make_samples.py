#!/usr/bin/env python3
"""Generate the synthetic demo region in ``data_samples/``; seeded, a re-run gives identical bytes.

Design
------
* **Grid**: one 256 x 256 tile at 30 m in UTM 32N (EPSG:32632), upper-left corner on a multiple of
  30 m, in the west of WRS-2 path 193 row 026 (Bavaria). Every date uses this grid.
* **Landscape**: a power-weighted Voronoi tessellation of jittered seeds (parcels of about 10-40
  px), a meandering river, a lake, a wetland ring round the lake and a wetland patch on the river
  bank. Parcels near the town centre are urban, parcels on a smooth "hill" noise field are forest,
  the rest are summer crop, spring crop or grassland. The 1-px lines between parcels are field
  margins (mixed pixels, never labelled).
* **Phenology and spectra**: each class mixes endmember surface reflectances (blue, green, red, nir,
  swir1, swir2) by a seasonal greenness, with per-parcel parameters, a fixed per-pixel texture and
  per-date noise. Forest is a deciduous/evergreen mix, grassland is mown three times, water is
  stable. The two crops share one curve (``crop_greenness``): bare soil, about 45 green days, bare
  again. Only the sowing day differs: spring crop days 40-145, summer crop days 160-265, stratified
  over the window. So on every date each crop has bare fields that look like bare fields of the
  other: no single date separates the crops, the series does (``verify_crops`` prints figures).
* **Atmosphere**: clouds are thresholded smooth noise at the cover of the date: bright, flat, soft
  edged, with a 3 px dilated-cloud ring and shadows shifted away from the sun. The shift follows the
  sun at 10:30 solar time and the cloud height of the date (long shadows in winter). One date has a
  band of thin cirrus, one a few saturated roofs (QA_RADSAT bits 1-3, DN 65535 in SR_B2..SR_B4).
* **Fill**: a staircase no-data wedge on the west edge (20 px wide at the top, 3 px at the bottom,
  shifted 0-3 px per date) stands for the rotated scene footprint (slanted less than a real one):
  SR = 0 and QA_PIXEL = 1 there.
* **Labels**: 80 % of the parcels and every water/wetland parcel, as ``labels.gpkg`` (layer
  ``labels``) and ``labels.tif`` (uint8, 255 = unlabelled, colour table). Margins and pixels that
  are fill on any date are unlabelled. The polygons are traced from the raster: both agree pixel
  by pixel.

Run ``python data_samples/make_samples.py`` (from anywhere; it writes next to itself).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from landcover.qa import encode_qa_pixel  # noqa: E402
from landcover.synthetic import reflectance_to_dn, write_c2l2_scene  # noqa: E402

SEED = 193026
SIZE = 256
RES = 30
SENSOR, PATH, ROW, EPSG = "LC08", 193, 26, 32632
ULX, ULY = 584280, 5420820        # multiples of 30 m; tile centre near 48.90 N, 10.15 E
LATITUDE = 48.9
TRANSFORM = Affine(RES, 0, ULX, 0, -RES, ULY)
OUT = Path(__file__).resolve().parent
BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")

# Real Landsat 8 acquisition days of path 193 (16-day cycle): date, cloud cover fraction, cloud
# height (m), event ("cirrus": a band of thin cirrus, "saturation": saturated roofs in the town).
DATES = [
    ("2024-01-29", 0.30, 250, None), ("2024-03-17", 0.00, 0, None),
    ("2024-04-18", 0.15, 500, None), ("2024-05-04", 0.00, 0, None),
    ("2024-05-20", 0.25, 700, None), ("2024-06-21", 0.00, 0, "cirrus"),
    ("2024-07-07", 0.70, 800, None), ("2024-07-23", 0.10, 900, None),
    ("2024-08-24", 0.00, 0, "saturation"), ("2024-09-25", 0.20, 500, None),
    ("2024-10-27", 0.00, 0, None), ("2024-12-14", 0.40, 250, None),
]

CLASSES = [  # code, name, colour
    (1, "water", "#2166ac"), (2, "forest", "#1b7837"), (3, "urban", "#d6604d"),
    (4, "summer_crop", "#f1c232"), (5, "spring_crop", "#a6611a"), (6, "grassland", "#9bd770"),
    (7, "wetland", "#8e7cc3"),
]
WATER, FOREST, URBAN, SUMMER, SPRING, GRASS, WETLAND = range(1, 8)

# Endmember surface reflectances: blue, green, red, nir, swir1, swir2.
S = {k: np.array(v) for k, v in {
    "lake": [.040, .050, .030, .015, .008, .005], "river": [.050, .065, .045, .025, .012, .008],
    "crop": [.030, .070, .035, .420, .220, .100], "soil": [.080, .110, .140, .200, .280, .220],
    "grass": [.035, .075, .040, .360, .200, .095], "hay": [.060, .090, .110, .220, .300, .200],
    "leaf_on": [.025, .050, .030, .320, .160, .070],
    "leaf_off": [.040, .050, .060, .180, .200, .120],
    "conifer": [.020, .035, .020, .220, .100, .045], "roof": [.080, .100, .160, .220, .280, .250],
    "concrete": [.120, .130, .140, .170, .200, .190],
    "asphalt": [.060, .070, .080, .100, .120, .110],
    "reed": [.030, .060, .040, .300, .150, .070], "dead_reed": [.060, .080, .100, .200, .240, .160],
    "cloud": [.450, .440, .440, .460, .360, .280],
}.items()}
SHADOW_FACTOR = np.array([.50, .45, .42, .35, .32, .30])   # direct light lost, diffuse (blue) kept
CIRRUS_SLOPE = np.array([1.2, 1.1, 1.0, .9, .7, .5])
CROP_SEASON, CROP_RAMP = 45.0, 6.0                          # green days, logistic ramp (days)
SOWING = {SPRING: (40.0, 145.0), SUMMER: (160.0, 265.0)}    # sowing-day windows


def smooth_noise(rng, sigma, shape=(SIZE, SIZE)):
    """Gaussian-filtered white noise (via FFT), zero mean and unit standard deviation."""
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]
    gauss = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * gauss, s=shape)
    return (out - out.mean()) / out.std()


def shift(a, dy, dx, fill=0):
    """Shift an array by (dy, dx) pixels without wrapping."""
    out = np.full_like(a, fill)
    h, w = a.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        a[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def dilate(mask, radius):
    out = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                out |= shift(mask, dy, dx, False)
    return out


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def mix(g, a, b):
    """Per-pixel linear mixture ``g * a + (1 - g) * b`` (``g``: (rows, cols), result (..., 6))."""
    return g[..., None] * a + (1 - g[..., None]) * b


# ---------------------------------------------------------------------------------- landscape
def make_landscape(rng):
    """Parcel ids, per-parcel class and parameters, field margins and fixed per-pixel fields."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    g = np.arange(12, SIZE, 24.0)
    seeds = np.array([(r, c) for r in g for c in g]) + rng.uniform(-9, 9, (len(g) ** 2, 2))
    weights = rng.uniform(0, 150, len(seeds))               # power diagram: uneven parcel sizes
    d2 = (rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2 - weights
    pid = d2.argmin(-1)
    n = len(seeds)
    cls = np.zeros(n + 4, int)
    town = np.hypot(seeds[:, 0] - 180, seeds[:, 1] - 190) < 42
    at = seeds.astype(int).clip(0, SIZE - 1)
    hills = smooth_noise(rng, 30)[at[:, 0], at[:, 1]]
    forest = (hills > np.quantile(hills, 0.78)) & ~town
    cls[:n] = rng.choice([SUMMER, SPRING, GRASS], n, p=[0.36, 0.36, 0.28])
    cls[:n][forest], cls[:n][town] = FOREST, URBAN
    # Drawn over the tessellation, in this order: lake, wetland ring, river-bank wetland, river.
    lake_r = np.hypot((rows - 70) / 11, (cols - 122) / 16)
    river_c = 64 + 18 * np.sin(2 * np.pi * rows / 170 + 0.7) + 5 * np.sin(2 * np.pi * rows / 57)
    bank = np.hypot((rows - 205) / 16, (cols - river_c - 8) / 7) < 1
    river = np.abs(cols - river_c) < 2.6
    for k, (mask, c) in enumerate([(lake_r < 1, WATER), ((lake_r >= 1) & (lake_r < 1.5), WETLAND),
                                   (bank, WETLAND), (river, WATER)]):
        pid[mask], cls[n + k] = n + k, c
    edge = np.zeros((SIZE, SIZE), bool)
    edge[:, :-1] |= pid[:, :-1] != pid[:, 1:]
    edge[:-1, :] |= pid[:-1, :] != pid[1:, :]
    m = len(cls)
    sowing = np.zeros(m)
    for c, (lo, hi) in SOWING.items():      # stratified: sowing days spread evenly over the window
        idx = np.flatnonzero(cls == c)
        strata = rng.permutation(len(idx)) + rng.uniform(0, 1, len(idx))
        sowing[idx] = lo + (hi - lo) * strata / len(idx)
    par = {
        "sowing": sowing, "gmax": rng.uniform(0.72, 0.95, m), "gmin": rng.uniform(0.02, 0.12, m),
        "soil": rng.uniform(0.8, 1.2, m), "vegf": rng.uniform(0.9, 1.1, (m, 6)),
        "decid": rng.beta(2, 2, m), "leaf_on": rng.uniform(110, 128, m),
        "leaf_off": rng.uniform(285, 305, m),
        "mow": np.sort(rng.uniform(0, 1, (m, 3)) * 25 + [145, 200, 255], axis=1),
    }
    impervious = np.stack([S["roof"], S["concrete"], S["asphalt"]])
    pix = {
        "texture": 1 + 0.04 * smooth_noise(rng, 2),
        "imperv": rng.dirichlet([2, 2, 1.5], (SIZE, SIZE)) @ impervious,
        "urban_veg": rng.beta(1.5, 3.5, (SIZE, SIZE)),
        "wet_water": rng.uniform(0.15, 0.5, (SIZE, SIZE)),
    }
    return {"pid": pid, "cls": cls, "classmap": cls[pid], "edge": edge, "river": river,
            "par": par, "pix": pix}


# -------------------------------------------------------------------------- phenology, spectra
def crop_greenness(doy, par):
    """The crops' common curve: gmin, green-up at sowing, CROP_SEASON green days, harvest."""
    s, lo, hi = par["sowing"], par["gmin"], par["gmax"]
    return lo + (hi - lo) * sig((doy - s) / CROP_RAMP) * sig((s + CROP_SEASON - doy) / CROP_RAMP)


def grass_greenness(doy, par):
    g = 0.35 + 0.45 * sig((doy - 100) / 12) * sig((300 - doy) / 15)
    cut = sum(np.where(doy >= par["mow"][:, k], 0.35 * np.exp(-(doy - par["mow"][:, k]) / 20), 0)
              for k in range(3))
    return np.clip(g - cut, 0.15, 1)


def surface_reflectance(land, doy, rng):
    """(6, rows, cols) surface reflectance of the landscape on day of year ``doy``."""
    pid, cm, par, pix = land["pid"], land["classmap"], land["par"], land["pix"]
    soil = par["soil"][pid][..., None]
    crop = mix(crop_greenness(doy, par)[pid], S["crop"] * par["vegf"][pid], S["soil"] * soil)
    grass = mix(grass_greenness(doy, par)[pid], S["grass"] * par["vegf"][pid], S["hay"] * soil)
    leaf = (sig((doy - par["leaf_on"]) / 7) * sig((par["leaf_off"] - doy) / 8))[pid]
    trees = mix(leaf, S["leaf_on"], S["leaf_off"])
    decid = par["decid"][pid][..., None]
    reed_g = sig((doy - 140) / 10) * sig((275 - doy) / 12)
    reeds = reed_g * S["reed"] + (1 - reed_g) * S["dead_reed"]
    flood = np.clip(pix["wet_water"] + 0.2 * np.exp(-(((doy - 90) / 30) ** 2)), 0, 1)
    algae = np.array([0, .01, .003, .003, 0, 0]) * np.exp(-(((doy - 220) / 30) ** 2))
    out = np.zeros((SIZE, SIZE, 6))
    for c, value in [(SUMMER, crop), (SPRING, crop), (GRASS, grass),
                     (FOREST, decid * trees + (1 - decid) * S["conifer"]),
                     (URBAN, mix(pix["urban_veg"], trees, pix["imperv"])),
                     (WATER, np.where(land["river"][..., None], S["river"], S["lake"]) + algae),
                     (WETLAND, mix(flood, S["lake"], reeds))]:
        out[cm == c] = value[cm == c]
    margin = land["edge"] & np.isin(cm, [SUMMER, SPRING, GRASS, WATER, WETLAND])
    gm = 0.3 + 0.4 * sig((doy - 110) / 10) * sig((290 - doy) / 10)
    out[margin] = 0.5 * out[margin] + 0.5 * (gm * S["grass"] + (1 - gm) * S["hay"])
    out = out * np.where((cm == WATER)[..., None], 1, pix["texture"][..., None])
    noise = out * rng.normal(0, 0.025, out.shape) + rng.normal(0, 0.003, out.shape)
    return np.clip(out + noise, 0.001, None).transpose(2, 0, 1)


# --------------------------------------------------------------------------------- atmosphere
def shadow_offset(date, height):
    """Cloud-shadow displacement (rows, cols) for the sun at 10:30 local solar time."""
    doy = date.timetuple().tm_yday
    lat, hour = np.radians(LATITUDE), np.radians(-22.5)
    decl = np.radians(-23.44 * np.cos(2 * np.pi * (doy + 10) / 365))
    elev = np.arcsin(np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour))
    azim = np.pi + np.arctan2(np.sin(hour), np.cos(hour) * np.sin(lat) - np.tan(decl) * np.cos(lat))
    length = height / np.tan(elev) / RES
    return int(round(length * np.cos(azim))), int(round(-length * np.sin(azim)))


def atmosphere(rng, date, cover, height, event, valid):
    """Cloud opacity, shadow darkening, cirrus and the QA flags of one date."""
    zeros = np.zeros((SIZE, SIZE))
    cloud, alpha, dark, offset, cirrus = zeros > 0, zeros, zeros, (0, 0), zeros
    if cover > 0:
        field = smooth_noise(rng, 9) + 0.35 * smooth_noise(rng, 2.5)
        thr = np.quantile(field[valid], 1 - cover)
        alpha = np.clip(0.5 + 2.5 * (field - thr), 0, 1)       # opacity, 0.5 at the cloud edge
        cloud = field > thr
        offset = shadow_offset(date, height)
        dark = shift(alpha, *offset)
    if event == "cirrus":
        rows, cols = np.mgrid[0:SIZE, 0:SIZE]
        band = np.exp(-(((rows * 0.8 + cols * 0.6 - 150) / 35) ** 2))
        cirrus = band * (0.7 + 0.15 * smooth_noise(rng, 6))
    return {"alpha": alpha, "dark": dark, "cloud": cloud, "dilated": dilate(cloud, 3) & ~cloud,
            "shadow": (dark > 0.5) & ~cloud, "cirrus": cirrus > 0.5, "cirrus_r": cirrus,
            "offset": offset}


def fill_mask(jitter):
    """West-edge no-data wedge: 20 px wide at the top, 3 px at the bottom, plus ``jitter`` px."""
    width = np.round(3 + 17 * (1 - np.arange(SIZE) / (SIZE - 1))).astype(int) + jitter
    return np.arange(SIZE)[None, :] < width[:, None]


# ------------------------------------------------------------------------------------ writing
def write_scenes(land, rng):
    """Write every date; return surface and written reflectance, clear masks, fill, stats."""
    jitters = rng.integers(0, 4, len(DATES))
    stats, surf_all, refl_all, clear_all = [], [], [], []
    water = land["classmap"] == WATER
    for (day, cover, height, event), jitter in zip(DATES, jitters):
        date = dt.date.fromisoformat(day)
        fill = fill_mask(jitter)
        surface = surface_reflectance(land, date.timetuple().tm_yday, rng)
        atm = atmosphere(rng, date, cover, height, event, ~fill)
        sr = surface * (1 - atm["dark"][None] * (1 - SHADOW_FACTOR[:, None, None]))
        cloud_r = S["cloud"][:, None, None] * (0.85 + 0.1 * smooth_noise(rng, 3))[None]
        sr = (1 - atm["alpha"][None]) * sr + atm["alpha"][None] * cloud_r
        sr = sr + 0.05 * atm["cirrus_r"][None] * CIRRUS_SLOPE[:, None, None]
        dn = {b: np.where(fill, 0, reflectance_to_dn(sr[i])).astype(np.uint16)
              for i, b in enumerate(BANDS)}
        radsat = np.zeros((SIZE, SIZE), np.uint16)
        if event == "saturation":   # bright roofs saturate SR_B2..SR_B4: QA_RADSAT bits 1-3
            urban = np.argwhere((land["classmap"] == URBAN) & ~fill)
            for r, c in urban[rng.choice(len(urban), 6, replace=False)]:
                radsat[r:r + 2, c:c + 3] = 0b1110
            for b in ("blue", "green", "red"):
                dn[b][radsat > 0] = 65535
        qa = encode_qa_pixel(fill=fill, dilated_cloud=atm["dilated"], cirrus=atm["cirrus"],
                             cloud=atm["cloud"], cloud_shadow=atm["shadow"],
                             water=water & ~atm["cloud"])
        write_c2l2_scene(OUT, sensor=SENSOR, path=PATH, row=ROW, date=date, crs_epsg=EPSG,
                         transform=TRANSFORM, sr=dn, qa_pixel=qa, qa_radsat=radsat)
        v = ~fill
        stats.append((day, 100 * atm["cloud"][v].mean(), 100 * atm["shadow"][v].mean(),
                      100 * atm["cirrus"][v].mean(), 100 * fill.mean(), atm["offset"],
                      int((radsat > 0).sum())))
        surf_all.append(surface)
        refl_all.append(sr)
        clear_all.append(v & ~(atm["cloud"] | atm["dilated"] | atm["shadow"] | atm["cirrus"]))
    fill_any = np.any([fill_mask(j) for j in jitters], axis=0)
    return np.stack(surf_all), np.stack(refl_all), np.stack(clear_all), fill_any, stats


def write_labels(land, rng, fill_any):
    """labels.tif, labels.gpkg and classes.yaml; returns the label raster and the parcel count."""
    import geopandas as gpd
    import pyogrio
    import rasterio
    from rasterio import features
    from shapely.geometry import shape

    cls, pid, crs = land["cls"], land["pid"], f"EPSG:{EPSG}"
    keep = (rng.uniform(size=len(cls)) < 0.8) | np.isin(cls, [WATER, WETLAND])
    labelled = keep[pid] & ~land["edge"] & ~fill_any
    labels = np.where(labelled, land["classmap"], 255).astype(np.uint8)
    colours = {c: tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) + (255,) for c, _, h in CLASSES}
    with rasterio.open(OUT / "labels.tif", "w", driver="GTiff", width=SIZE, height=SIZE, count=1,
                       dtype="uint8", crs=crs, transform=TRANSFORM, nodata=255,
                       compress="deflate") as dst:
        dst.write(labels, 1)
        dst.write_colormap(1, {**colours, 255: (0, 0, 0, 0)})
    shapes = features.shapes(pid.astype(np.int32), mask=labelled, transform=TRANSFORM)
    parts = gpd.GeoDataFrame([{"pid": int(v), "geometry": shape(g)} for g, v in shapes], crs=crs)
    polys = parts.dissolve(by="pid").sort_index().reset_index()
    names = {c: n for c, n, _ in CLASSES}
    codes = cls[polys["pid"].to_numpy()]
    gdf = gpd.GeoDataFrame({"class_code": codes.astype("int32"),
                            "class_name": [names[c] for c in codes]},
                           geometry=polys.geometry.values, crs=crs)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2024-01-01T00:00:00Z"})  # fixed stamp
    gdf.to_file(OUT / "labels.gpkg", layer="labels", driver="GPKG", engine="pyogrio")
    burnt = features.rasterize(zip(gdf.geometry, gdf.class_code), out_shape=(SIZE, SIZE),
                               transform=TRANSFORM, fill=255)
    assert (burnt == labels).all(), "polygons and label raster disagree"
    lines = ["# Class table of the demo region (written by make_samples.py).\n"]
    lines += [f'- {{code: {c}, name: {n}, color: "{h}"}}\n' for c, n, h in CLASSES]
    (OUT / "classes.yaml").write_text("".join(lines))
    return labels, len(gdf)


# ------------------------------------------------------------------------------------- checks
def balanced(pred, y):
    return 0.5 * ((pred[y == 0] == 0).mean() + (pred[y == 1] == 1).mean())


def best_threshold(v, y):
    """Best balanced accuracy of a single threshold on ``v`` (either direction)."""
    ys = y[np.argsort(v)]
    below0, below1 = np.cumsum(ys == 0) / (y == 0).sum(), np.cumsum(ys == 1) / (y == 1).sum()
    acc = 0.5 * (below0 + 1 - below1)                   # class 0 below the threshold
    return max(acc.max(), (1 - acc).max())


def nearest_centroid(x, y):
    """Balanced accuracy of a nearest-centroid classifier; NaN features (cloudy dates) skipped."""
    cent = [np.nanmean(x[y == c], axis=0) for c in (0, 1)]
    dist = np.stack([np.nanmean((x - m) ** 2, axis=-1) for m in cent], -1)
    return balanced(dist.argmin(-1), y)


def verify_crops(surface, refl, clear, labels):
    """Summer vs spring crop: each single date < 85 %, the whole series > 95 % (balanced)."""
    px = np.isin(labels, [SUMMER, SPRING])
    y = (labels[px] == SPRING).astype(int)
    ok = clear[:, px].T                                          # (pixels, dates)

    def features(r):
        x = r[:, :, px].transpose(2, 0, 1)                       # (pixels, dates, bands)
        return x, (x[..., 3] - x[..., 2]) / (x[..., 3] + x[..., 2])

    (xs, ns), (xw, nw) = features(surface), features(refl)
    print("\nSummer vs spring crop, balanced accuracy: NDVI threshold | nearest centroid (6 bands)")
    print("  date        all crop pixels, no atmosphere   clear pixels of the written scene")
    worst = 0.0
    for i, (day, *_) in enumerate(DATES):
        m = ok[:, i]
        a, b = best_threshold(ns[:, i], y), nearest_centroid(xs[:, i], y)
        c, d = best_threshold(nw[m, i], y[m]), nearest_centroid(xw[m, i], y[m])
        worst = max(worst, a, b)
        print(f"  {day}    {a:6.1%} | {b:6.1%}              {c:6.1%} | {d:6.1%}"
              f"  ({m.mean():4.0%} clear)")
    clean, masked = nearest_centroid(ns, y), nearest_centroid(np.where(ok, nw, np.nan), y)
    print(f"  best single date (no atmosphere): {worst:.1%}")
    print(f"  all dates, nearest centroid on the NDVI series: {clean:.1%} (no atmosphere), "
          f"{masked:.1%} (written scenes, cloudy dates skipped)")
    assert worst < 0.85 and min(clean, masked) > 0.95, "crop separability outside the design"


# --------------------------------------------------------------------------------------- main
def clean():
    """Remove the outputs of a previous run (scene folders, labels, class table)."""
    for p in OUT.glob(f"{SENSOR}_L2SP_{PATH:03d}{ROW:03d}_*"):
        shutil.rmtree(p)
    for name in ("labels.gpkg", "labels.tif", "labels.tif.aux.xml", "classes.yaml"):
        (OUT / name).unlink(missing_ok=True)


def main():
    rng = np.random.default_rng(SEED)
    clean()
    land = make_landscape(rng)
    surface, refl, clear, fill_any, stats = write_scenes(land, rng)
    labels, n_polys = write_labels(land, rng, fill_any)

    total = int((labels != 255).sum())
    print(f"Labels: {n_polys} parcels, {total} labelled pixels ({total / labels.size:.0%} of tile)")
    for code, name, _ in CLASSES:
        n = int((labels == code).sum())
        print(f"  {code} {name:<12} {n:6d} px  {n / total:6.1%}")
    print("\nDate        cloud  shadow  cirrus  fill  shadow offset (rows, cols)  saturated px")
    for day, cc, sh, ci, fi, off, sat in stats:
        print(f"{day}  {cc:5.1f}%  {sh:5.1f}%  {ci:5.1f}%  {fi:4.1f}%  {str(off):>12}  {sat:10d}")
    verify_crops(surface, refl, clear, labels)

    print("\nmd5 sums:")
    for p in sorted(OUT.rglob("*")):
        if p.is_file() and p.name not in ("make_samples.py", "README.md") \
                and "__pycache__" not in p.parts:
            print(f"  {hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(OUT).as_posix()}")


if __name__ == "__main__":
    main()
