"""Writers for synthetic Landsat Collection 2 Level-2 scene folders with real naming and metadata.

Used by the seeded generators (``data_samples/make_samples.py``, ``tests/data/make_scenes.py``) and by
the benchmarks. A folder written here is laid out exactly like a USGS download::

    LC08_L2SP_PPPRRR_YYYYMMDD_yyyymmdd_02_T1/
        <ID>_SR_B1.TIF .. <ID>_SR_B7.TIF   uint16 DN, nodata 0, scale 2.75e-05, offset -0.2
        <ID>_QA_PIXEL.TIF                  uint16 bit flags, nodata 1 (fill)
        <ID>_QA_RADSAT.TIF                 uint16 saturation bits
        <ID>_MTL.txt (and optionally .json / .xml)

so that the readers cannot tell it from a real product by its structure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

SR_SCALE = 2.75e-05
SR_OFFSET = -0.2

_SPACECRAFT = {"LC09": ("LANDSAT_9", "OLI_TIRS"), "LC08": ("LANDSAT_8", "OLI_TIRS"),
               "LE07": ("LANDSAT_7", "ETM"), "LT05": ("LANDSAT_5", "TM"), "LT04": ("LANDSAT_4", "TM")}

#: Sensor band numbers of the six reflective common bands, per sensor.
SR_BANDS = {
    "LC08": {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7},
    "LC09": {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7},
    "LE07": {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 7},
    "LT05": {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 7},
    "LT04": {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 7},
}


def reflectance_to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Surface reflectance to C2 L2 DN (uint16), clipped to the valid range 1..65535."""
    dn = np.round((np.asarray(reflectance, dtype=np.float64) - SR_OFFSET) / SR_SCALE)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def product_id(sensor: str, path: int, row: int, date: dt.date, *, level: str = "L2SP",
               processed: dt.date | None = None, tier: str = "T1") -> str:
    """C2 product ID ``LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_02_TX``."""
    processed = processed or (date + dt.timedelta(days=9))
    return (f"{sensor}_{level}_{path:03d}{row:03d}_{date:%Y%m%d}_{processed:%Y%m%d}_02_{tier}")


def _mtl_groups(pid: str, sensor: str, path: int, row: int, date: dt.date, crs_epsg: int,
                transform, shape, band_numbers: Sequence[int], cloud_cover: float) -> dict:
    spacecraft, sensor_id = _SPACECRAFT[sensor]
    level = pid.split("_")[1]
    tier = pid.split("_")[-1]
    rows, cols = shape
    res = float(transform.a)
    # MTL corners are pixel centres.
    ulx, uly = transform.c + res / 2, transform.f - res / 2
    lrx, lry = ulx + (cols - 1) * res, uly - (rows - 1) * res
    files = {f"FILE_NAME_BAND_{b}": f"{pid}_SR_B{b}.TIF" for b in band_numbers}
    files["FILE_NAME_QUALITY_L1_PIXEL"] = f"{pid}_QA_PIXEL.TIF"
    files["FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION"] = f"{pid}_QA_RADSAT.TIF"
    files["FILE_NAME_METADATA_ODL"] = f"{pid}_MTL.txt"
    sr = {}
    for b in band_numbers:
        sr[f"REFLECTANCE_MULT_BAND_{b}"] = SR_SCALE
        sr[f"REFLECTANCE_ADD_BAND_{b}"] = SR_OFFSET
    zone = crs_epsg % 100
    return {
        "PRODUCT_CONTENTS": {
            "ORIGIN": "Image courtesy of the U.S. Geological Survey (synthetic copy made by landcover)",
            "LANDSAT_PRODUCT_ID": pid, "PROCESSING_LEVEL": level, "COLLECTION_NUMBER": "02",
            "COLLECTION_CATEGORY": tier, "OUTPUT_FORMAT": "GEOTIFF", **files,
        },
        "IMAGE_ATTRIBUTES": {
            "SPACECRAFT_ID": spacecraft, "SENSOR_ID": sensor_id, "WRS_TYPE": 2, "WRS_PATH": path,
            "WRS_ROW": row, "DATE_ACQUIRED": date.isoformat(), "SCENE_CENTER_TIME": "15:30:00.0000000Z",
            "CLOUD_COVER": round(float(cloud_cover), 2),
        },
        "PROJECTION_ATTRIBUTES": {
            "MAP_PROJECTION": "UTM", "DATUM": "WGS84", "ELLIPSOID": "WGS84", "UTM_ZONE": zone,
            "GRID_CELL_SIZE_REFLECTIVE": res, "REFLECTIVE_LINES": rows, "REFLECTIVE_SAMPLES": cols,
            "ORIENTATION": "NORTH_UP",
            "CORNER_UL_PROJECTION_X_PRODUCT": ulx, "CORNER_UL_PROJECTION_Y_PRODUCT": uly,
            "CORNER_UR_PROJECTION_X_PRODUCT": lrx, "CORNER_UR_PROJECTION_Y_PRODUCT": uly,
            "CORNER_LL_PROJECTION_X_PRODUCT": ulx, "CORNER_LL_PROJECTION_Y_PRODUCT": lry,
            "CORNER_LR_PROJECTION_X_PRODUCT": lrx, "CORNER_LR_PROJECTION_Y_PRODUCT": lry,
        },
        "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": sr,
    }


_UNQUOTED = ("DATE_ACQUIRED", "COLLECTION_NUMBER")


def mtl_txt(groups: Mapping) -> str:
    """Render MTL groups as USGS ODL text (``GROUP = ... END_GROUP``): strings quoted, numbers bare."""
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for group, items in groups.items():
        lines.append(f"  GROUP = {group}")
        for key, value in items.items():
            quoted = isinstance(value, str) and key not in _UNQUOTED
            lines.append(f'    {key} = "{value}"' if quoted else f"    {key} = {value}")
        lines.append(f"  END_GROUP = {group}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END"]
    return "\n".join(lines) + "\n"


def _write_tif(path: Path, array: np.ndarray, *, crs, transform, nodata, tiled: bool) -> None:
    import rasterio

    profile = {"driver": "GTiff", "width": array.shape[1], "height": array.shape[0], "count": 1,
               "dtype": array.dtype.name, "crs": crs, "transform": transform, "nodata": nodata,
               "compress": "deflate", "predictor": 2}
    if tiled and array.shape[0] >= 256 and array.shape[1] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


def write_c2l2_scene(out_dir: str | Path, *, sensor: str, path: int, row: int, date: dt.date,
                     crs_epsg: int, transform, sr: Mapping[str, np.ndarray], qa_pixel: np.ndarray,
                     qa_radsat: np.ndarray | None = None, level: str = "L2SP", tier: str = "T1",
                     processed: dt.date | None = None, mtl_formats: Sequence[str] = ("txt",),
                     georeferenced: bool = True, tiled: bool = True) -> Path:
    """Write one C2 L2 scene folder and return its path.

    Args:
        out_dir: parent folder; the scene folder is named by the product ID.
        sensor: ``LC08``, ``LC09``, ``LE07``, ``LT05`` or ``LT04``.
        path, row: WRS-2 path and row.
        date: acquisition date.
        crs_epsg: EPSG code of the UTM grid (e.g. 32633).
        transform: ``affine.Affine`` of the grid (30 m pixels).
        sr: ``{common band name: uint16 DN array (rows, cols)}``; 0 is fill.
        qa_pixel: uint16 QA_PIXEL (see :func:`landcover.qa.encode_qa_pixel`).
        qa_radsat: uint16 QA_RADSAT, zeros if omitted.
        mtl_formats: any of ``txt``, ``json``.
        georeferenced: write CRS and transform into the TIFFs (False mimics the xlandsat crops).
    """
    pid = product_id(sensor, path, row, date, level=level, processed=processed, tier=tier)
    folder = Path(out_dir) / pid
    folder.mkdir(parents=True, exist_ok=True)
    numbers = SR_BANDS[sensor]
    shape = qa_pixel.shape
    crs = f"EPSG:{crs_epsg}" if georeferenced else None
    tf = transform if georeferenced else None
    for name, dn in sr.items():
        _write_tif(folder / f"{pid}_SR_B{numbers[name]}.TIF", dn.astype(np.uint16), crs=crs,
                   transform=tf, nodata=0, tiled=tiled)
    _write_tif(folder / f"{pid}_QA_PIXEL.TIF", qa_pixel.astype(np.uint16), crs=crs, transform=tf,
               nodata=1, tiled=tiled)
    radsat = np.zeros(shape, np.uint16) if qa_radsat is None else qa_radsat.astype(np.uint16)
    _write_tif(folder / f"{pid}_QA_RADSAT.TIF", radsat, crs=crs, transform=tf, nodata=None,
               tiled=tiled)
    valid = qa_pixel != 1
    cloudy = (qa_pixel & 0b1000) != 0
    cloud_cover = 100.0 * cloudy[valid].mean() if valid.any() else 100.0
    groups = _mtl_groups(pid, sensor, path, row, date, crs_epsg, transform, shape,
                         sorted(numbers[n] for n in sr), cloud_cover)
    if "txt" in mtl_formats:
        (folder / f"{pid}_MTL.txt").write_text(mtl_txt(groups))
    if "json" in mtl_formats:
        (folder / f"{pid}_MTL.json").write_text(json.dumps({"LANDSAT_METADATA_FILE": groups}))
    return folder


#: Classes of :func:`write_field_series`: (code, name, colour).
FIELD_CLASSES = ((1, "background", "#bdbdbd"), (2, "crop_a", "#f1c232"), (3, "crop_b", "#6aa84f"),
                 (4, "rare", "#cc0000"))


def write_field_series(out_dir: str | Path, *, size: int = 192, field: int = 8, dates: int = 4,
                       seed: int = 0, rare_share: float = 0.02, noise: float = 0.02,
                       rare_shift: float = 1.0, cloud_date: int | None = 1
                       ) -> tuple[list[Path], Path]:
    """A seeded learning problem as real-looking L8 C2 L2 scene folders and a label raster.

    * ``background`` (about half the area) is spectrally constant over time;
    * ``crop_a`` and ``crop_b`` fields have the same spectra at every single date: on each date a
      field is "green" (high NIR, low red) or "bare" with probability 1/2 for both crops. Crop A
      follows the pattern green-green-bare-bare (or its complement), crop B green-bare-green-bare
      (or its complement): only the sequence tells them apart (no single date does);
    * ``rare`` (``rare_share`` of the pixels, 4x4 px squares inside background) differs from
      background only by a shift of SWIR1 of ``rare_shift`` noise deviations (hidden in the noise
      pixel by pixel; only spatial context reveals it).

    Pixel noise is Gaussian with deviation ``noise`` (reflectance). Date ``cloud_date`` gets a
    cloud blob with its shadow (QA_PIXEL flags as USGS writes them). Returns the scene folders
    and the path of ``labels.tif`` (codes of :data:`FIELD_CLASSES`, 0 = no label).
    """
    import affine
    import rasterio

    from landcover.qa import encode_qa_pixel

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nf = size // field
    kind = rng.choice([1, 2, 3], size=(nf, nf), p=[0.5, 0.25, 0.25])
    phase = rng.integers(0, 2, size=(nf, nf))  # pattern or its reverse
    codes = np.repeat(np.repeat(kind, field, 0), field, 1).astype(np.uint8)
    phases = np.repeat(np.repeat(phase, field, 0), field, 1)
    n_rare = int(round(rare_share * size * size / 16))
    bg = np.argwhere(codes[::4, ::4] == 1)
    for r, c in bg[rng.choice(len(bg), size=min(n_rare, len(bg)), replace=False)]:
        codes[r * 4:r * 4 + 4, c * 4:c * 4 + 4] = 4
    patterns = {2: (1, 1, 0, 0), 3: (1, 0, 1, 0)}
    transform = affine.Affine(30.0, 0.0, 500010.0, 0.0, -30.0, 5000010.0)
    base = {"blue": 0.05, "green": 0.08, "red": 0.07, "nir": 0.25, "swir1": 0.20, "swir2": 0.12}
    scenes = []
    for d in range(dates):
        date = dt.date(2024, 4, 1) + dt.timedelta(days=16 * 4 * d)
        refl = {name: np.full((size, size), value) for name, value in base.items()}
        for crop, pattern in patterns.items():
            on = pattern[d % len(pattern)]  # the reverse pattern is the complement
            green = np.where(phases == 1, 1 - on, on) == 1
            sel = codes == crop
            refl["nir"] = np.where(sel, np.where(green, 0.40, 0.18), refl["nir"])
            refl["red"] = np.where(sel, np.where(green, 0.03, 0.10), refl["red"])
            refl["swir1"] = np.where(sel, 0.16, refl["swir1"])
        refl["swir1"] = np.where(codes == 4, refl["swir1"] - rare_shift * noise, refl["swir1"])
        sr = {name: reflectance_to_dn(v + rng.normal(0, noise, v.shape))
              for name, v in refl.items()}
        cloud = np.zeros((size, size), bool)
        shadow = np.zeros((size, size), bool)
        if cloud_date is not None and d == cloud_date:
            yy, xx = np.mgrid[:size, :size]
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            cloud = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 8) ** 2
            shadow = np.roll(cloud, (size // 10, size // 10), (0, 1)) & ~cloud
            for name in sr:
                sr[name] = np.where(cloud, reflectance_to_dn(np.full(cloud.shape, 0.6)), sr[name])
        qa = encode_qa_pixel(cloud=cloud, dilated_cloud=cloud, cloud_shadow=shadow)
        scenes.append(write_c2l2_scene(out_dir, sensor="LC08", path=193, row=26, date=date,
                                       crs_epsg=32632, transform=transform, sr=sr, qa_pixel=qa))
    labels = out_dir / "labels.tif"
    with rasterio.open(labels, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="uint8", crs="EPSG:32632", transform=transform, nodata=0) as dst:
        dst.write(codes, 1)
    (out_dir / "classes.yaml").write_text("".join(
        f"- {{code: {c}, name: {n}, color: '{col}'}}\n" for c, n, col in FIELD_CLASSES))
    return scenes, labels
