"""Seeded generator of the tiny test scenes in ``tests/data/scenes/`` (run: python tests/data/make_scenes.py).

Real Collection 2 Level-2 naming, MTL and a real UTM grid (EPSG:32633, 30 m), 64 x 64 pixels. QA values
are *designed*, not random, so tests can assert exact masks. Layout of the main scene (rows, cols):

====================  ====================================================================
region                content
====================  ====================================================================
cols 0-3              fill border (DN 0 in every band, QA_PIXEL = 1)
rows 0-31, cols 4-31  clear land, except cirrus in rows 10-13 x cols 10-13
rows 0-30, cols 32-63 cloud (high confidence); row 31, cols 32-63: dilated cloud
rows 32-63, cols 4-31 cloud shadow
rows 32-47, cols 32+  snow        rows 48-63, cols 32+: clear water
pixel (20, 20)        QA_RADSAT: red (band 4) saturated -> invalid
pixel (21, 21)        QA_RADSAT: coastal (band 1, not stacked) saturated -> still valid
pixel (25, 25)        red DN 50000, above the valid range 7273..43636 -> invalid
====================  ====================================================================

Scenes written (all path 193):

* ``LC08_L2SP_193026_20230610_..`` the designed scene above (MTL.txt).
* ``LC08_L2SP_193026_20230712_..`` clear except the fill border (MTL.txt and MTL.json).
* ``LE07_L2SP_193026_20230618_..`` Landsat 7 band numbering (SR_B1..B5, B7), clear, fill border, and
  SLC-off stripes (rows 8-9 and 40-41 filled). MTL.json only.
* ``LC08_L2SP_193027_20230712_..`` the next row south, same date as the second scene: on the same
  lattice, 48 rows further south (16 rows overlap); its overlap rows 0-7 are cloudy, so the mosaic
  takes row 026 there and row 027 below.
* ``misaligned/LC09_L2SP_193026_20230704_..`` a Landsat 9 scene whose grid is shifted by 15 m (half a
  pixel): on no common lattice with the others.

Reflectance is a smooth per-band field plus seeded noise; the red band holds 0.05 + 0.001 * col so
that tests can locate pixels after reprojection.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from landcover.qa import encode_qa_pixel  # noqa: E402
from landcover.synthetic import reflectance_to_dn, write_c2l2_scene  # noqa: E402

SEED = 0
SIZE = 64
EPSG = 32633
ORIGIN = (600000.0, 5800020.0)
OUT = Path(__file__).parent / "scenes"
BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
BASE = {"blue": 0.04, "green": 0.07, "red": 0.05, "nir": 0.30, "swir1": 0.18, "swir2": 0.09}


def reflectance(rng: np.random.Generator) -> dict[str, np.ndarray]:
    cols = np.arange(SIZE)[None, :].repeat(SIZE, axis=0)
    out = {}
    for band in BANDS:
        noise = rng.normal(0, 0.005, (SIZE, SIZE))
        value = BASE[band] + (0.001 * cols if band == "red" else noise)
        out[band] = reflectance_to_dn(value)
    return out


def flags(shape=(SIZE, SIZE)) -> dict[str, np.ndarray]:
    return {k: np.zeros(shape, bool) for k in
            ("fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow", "water")}


def designed_scene(rng):
    sr = reflectance(rng)
    f = flags()
    f["fill"][:, :4] = True
    f["cirrus"][10:14, 10:14] = True
    f["cloud"][0:31, 32:] = True
    f["dilated_cloud"][31, 32:] = True
    f["cloud_shadow"][32:, 4:32] = True
    f["snow"][32:48, 32:] = True
    f["water"][48:, 32:] = True
    sr["red"][25, 25] = 50000
    radsat = np.zeros((SIZE, SIZE), np.uint16)
    radsat[20, 20] = 1 << 3  # band 4 (red) saturated
    radsat[21, 21] = 1 << 0  # band 1 (coastal) saturated: not a stacked band
    return sr, f, radsat


def with_fill(sr, f):
    for band in sr:
        sr[band][f["fill"]] = 0
    return sr, encode_qa_pixel(**f)


def main() -> None:
    rng = np.random.default_rng(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    transform = Affine(30.0, 0.0, ORIGIN[0], 0.0, -30.0, ORIGIN[1])
    common = dict(path=193, crs_epsg=EPSG)

    sr, f, radsat = designed_scene(rng)
    sr, qa = with_fill(sr, f)
    write_c2l2_scene(OUT, sensor="LC08", row=26, date=dt.date(2023, 6, 10), transform=transform,
                     sr=sr, qa_pixel=qa, qa_radsat=radsat, **common)

    f = flags()
    f["fill"][:, :4] = True
    sr, qa = with_fill(reflectance(rng), f)
    write_c2l2_scene(OUT, sensor="LC08", row=26, date=dt.date(2023, 7, 12), transform=transform,
                     sr=sr, qa_pixel=qa, mtl_formats=("txt", "json"), **common)

    f = flags()
    f["fill"][:, :4] = True
    f["fill"][8:10] = True
    f["fill"][40:42] = True
    sr, qa = with_fill(reflectance(rng), f)
    write_c2l2_scene(OUT, sensor="LE07", row=26, date=dt.date(2023, 6, 18), transform=transform,
                     sr=sr, qa_pixel=qa, mtl_formats=("json",), **common)

    south = Affine(30.0, 0.0, ORIGIN[0], 0.0, -30.0, ORIGIN[1] - 48 * 30.0)
    f = flags()
    f["cloud"][0:8] = True
    sr = reflectance(rng)
    sr["red"][:] = reflectance_to_dn(np.full((SIZE, SIZE), 0.2))  # tell row 027 apart in the mosaic
    sr, qa = with_fill(sr, f)
    write_c2l2_scene(OUT, sensor="LC08", row=27, date=dt.date(2023, 7, 12), transform=south,
                     sr=sr, qa_pixel=qa, **common)

    shifted = Affine(30.0, 0.0, ORIGIN[0] + 15.0, 0.0, -30.0, ORIGIN[1])
    sr, qa = with_fill(reflectance(rng), flags())
    write_c2l2_scene(OUT / "misaligned", sensor="LC09", row=26, date=dt.date(2023, 7, 4),
                     transform=shifted, sr=sr, qa_pixel=qa, **common)

    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(hashlib.md5(path.read_bytes()).hexdigest(), path.relative_to(OUT))


if __name__ == "__main__":
    main()
