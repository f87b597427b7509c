r"""Derived labels for ../shared/data/real/eo-box-lsts, for a functional run of the models on a real
dense series (the sample ships no labels). Writes labels.tif and classes.yaml into the current
folder.

Labels (no labels ship with it): median growing-season NDVI of 2008
(Jun-Sep, Fmask-clear observations) in terciles: low, mid, high NDVI. They
describe the imagery itself, so the scores they give say that the pipeline runs on this series and
how models compare on one easy-ish task, not how well a land-cover map would be made.

Run (from an empty folder; 2008-2009 = 45 dates, 10 of them dropped by prepare as too cloudy):

    python benchmarks/eo_box_labels.py
    mkdir scenes && ln -s ../shared/data/real/eo-box-lsts/L*200[89]* scenes/
    landcover prepare scenes --labels labels.tif --out ds.zarr --set scenes.profile=fmask_per_date \
        --set "scenes.bands=[red,nir,swir1]" --set prepare.classes=classes.yaml \
        --set prepare.patches.size=16 --set prepare.patches.stride=8 \
        --set prepare.split.block_size=16
    landcover train ds.zarr --out m_utae --set train.model.architecture=utae
"""
from pathlib import Path

import numpy as np
import rasterio

root = Path("/work/shared/data/real/eo-box-lsts")
nd = []
for d in sorted(root.glob("L*2008*")):
    doy = int(d.name[13:16])
    if not 152 <= doy <= 273:
        continue
    r = rasterio.open(d / f"{d.name}_b3.tif").read(1).astype(float)
    n = rasterio.open(d / f"{d.name}_b4.tif").read(1).astype(float)
    with rasterio.open(d / f"{d.name}_fmask.tif") as src:
        m, prof = src.read(1), src.profile
    ok = (m == 0) & (r > -9999) & (n > -9999)
    nd.append(np.where(ok, (n - r) / np.maximum(n + r, 1), np.nan))
med = np.nanmedian(np.stack(nd), axis=0)
q1, q2 = np.nanquantile(med, [1 / 3, 2 / 3])
lab = np.where(np.isnan(med), 0, np.where(med < q1, 1, np.where(med < q2, 2, 3))).astype(np.uint8)
print("terciles", round(q1, 3), round(q2, 3))
prof.update(dtype="uint8", nodata=0, count=1)
with rasterio.open("labels.tif", "w", **prof) as dst:
    dst.write(lab, 1)
print({int(k): int(v) for k, v in zip(*np.unique(lab, return_counts=True))}, len(nd), "dates")
Path("classes.yaml").write_text("- {code: 1, name: low_ndvi}\n- {code: 2, name: mid_ndvi}\n"
                                "- {code: 3, name: high_ndvi}\n")
