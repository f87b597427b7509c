"""``landcover smooth``: a probability GeoTIFF -> a smoothed map, probabilities and uncertainty.

The input is the ``OUT_probabilities.tif`` that ``landcover classify --probabilities`` writes (one
band per class, ``p x scale``, then an uncertainty band; the class table in its
``LANDCOVER_CLASSES`` tag). It is read block by block (``classify.block_size``) with a halo of
``classify.smooth.window // 2`` pixels, smoothed by :class:`landcover.postprocess.BayesSmooth` and
written as the same products as classify's: the map COG with its legend (``MAP.tif.aux.xml``),
QGIS style and quicklook, and ``MAP_probabilities.tif`` (the smoothed probabilities and their
uncertainty, of the input's kind). Memory is bounded by the block size; the result does not depend
on it. The stored probabilities are quantised (1/250 for uint8), so the map of an unsmoothed file
can differ from classify's at near-ties.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from landcover.config import Config, load_config
from landcover.contract import (
    NODATA,
    TAG_CONFIG,
    TAG_CREATED,
    TAG_PRODUCT,
    TAG_SCALE,
)
from landcover.errors import RasterReadError, UsageError
from landcover.gdalio import open_raster
from landcover.lattice import MIN_BLOCK, block_side
from landcover.products import ProbabilityFile, open_probabilities, output_paths

PRODUCTS = ("map", "legend", "style", "probabilities", "quicklook")


def smooth_block(src: ProbabilityFile, step, store: str, window, block: int) -> list[int]:
    """Read one block and its halo, smooth it, write codes and probabilities into the store;
    returns the pixels per class."""
    import zarr
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    r0, r1, c0, c1 = window
    g, halo, K = src.grid, step.halo, len(src.table)
    R0, R1, C0, C1 = max(0, r0 - halo), min(g.height, r1 + halo), max(0, c0 - halo), \
        min(g.width, c1 + halo)
    try:
        with open_raster(src.path) as f:
            raw = f.read(list(range(1, K + 1)), window=Window(C0, R0, C1 - C0, R1 - R0))
    except (RasterioError, OSError) as exc:  # a truncated or damaged input: name it, not out
        raise RasterReadError(
            f"{src.path}: cannot read rows {R0}..{R1}, columns {C0}..{C1} "
            f"({' '.join(str(exc.__cause__ or exc).split())}); the file is truncated or "
            "damaged, write it again with 'landcover classify --probabilities'") from None
    observed = raw[0] != src.nodata
    prob = np.moveaxis(raw, 0, -1).astype(np.float32) / src.scale
    prob = step.apply(prob, observed)
    core = (slice(r0 - R0, r1 - R0), slice(c0 - C0, c1 - C0))
    prob, observed = prob[core], observed[core]
    from landcover.maps import encode_classes, encode_probabilities

    codes, index = encode_classes(prob, observed, src.table.codes)
    group = zarr.open_group(store, mode="r+")
    group["classes"][r0:r1, c0:c1] = codes
    group["probabilities"][:, r0:r1, c0:c1] = encode_probabilities(prob, observed, src.dtype,
                                                                   src.uncertainty)
    return np.bincount(index[observed], minlength=K).tolist()


def smooth(probabilities: str | Path, out: str | Path, cfg: Config | None = None, *,
           overwrite: bool = False, progress=None) -> dict:
    """Smooth a probability file of classify into a map (``out``) and smoothed probabilities.

    Args:
        probabilities: ``OUT_probabilities.tif`` of ``landcover classify --probabilities``.
        out: the map GeoTIFF to write; ``OUT.tif.aux.xml``, ``OUT.qml``,
            ``OUT_probabilities.tif`` and ``OUT_quicklook.png`` go beside it.
        cfg: ``classify.smooth.*`` (the parameters; ``enabled`` is not needed),
            ``classify.block_size`` and ``classify.quicklook``.
        progress: a :mod:`landcover.progress` reporter.

    Raises:
        RasterReadError, ClassTableError, ConfigError, OutputExistsError.
    """
    import dask
    import zarr

    from landcover.dataset import compressor
    from landcover.maps import (
        class_areas,
        write_map,
        write_probabilities,
        write_quicklook,
        write_style,
    )
    from landcover.outputs import OutputSet
    from landcover.postprocess import describe, smoothing_step
    from landcover.scheduler import compute

    t0 = time.perf_counter()
    cfg = cfg or load_config()
    src = open_probabilities(probabilities)
    step = smoothing_step(cfg.classify.smooth, src.table.codes)
    paths = {k: p for k, p in output_paths(out, True, cfg.classify.quicklook).items()
             if k in PRODUCTS}  # classify's naming, of the products written here
    given = Path(probabilities).resolve()
    for kind, path in paths.items():  # --overwrite must never replace the input itself
        if Path(path).resolve() == given:
            what = "the map" if kind == "map" else f"the smoothed {kind}"
            raise UsageError(f"{probabilities}: the input would be overwritten by {what}; choose "
                             "another --out", flag="--out")
    g, block, K = src.grid, max(MIN_BLOCK, block_side(cfg.classify.block_size)), len(src.table)
    windows = [(r, r + h, c, c + w) for r, c, h, w in g.tiles(block)]
    with OutputSet(list(paths.values()), overwrite, folders=[False] * len(paths)) as outputs:
        # a "work" temporary: removed by the next run into this output when a run is killed
        store = outputs.temporary(paths["map"], "work")
        group = zarr.open_group(str(store), mode="w")
        group.create_array("classes", shape=(g.height, g.width), dtype="uint8",
                           chunks=(block, block), fill_value=NODATA, compressors=[compressor()])
        group.create_array("probabilities", shape=(K + 1, g.height, g.width), dtype=src.dtype,
                           chunks=(K + 1, block, block), fill_value=src.nodata,
                           compressors=[compressor()])
        tasks = [dask.delayed(smooth_block, pure=False)(src, step, str(store), w, block)
                 for w in windows]
        (counts,) = compute(tasks, label="Smoothing", show=progress)
        counts = np.sum(counts, axis=0)
        tags = _tags(src, describe([step]), probabilities)
        tmp = {k: outputs.temporary(p) for k, p in paths.items()}
        write_map(str(store), g, windows, src.table, tmp["map"], tags, legend=tmp["legend"])
        write_style(src.table, tmp["style"])
        write_probabilities(str(store), g, windows, src.table, tmp["probabilities"], tags,
                            src.dtype, src.uncertainty)
        if "quicklook" in tmp:
            write_quicklook(tmp["map"], src.table, counts, tmp["quicklook"],
                            title=f"{paths['map'].name}: smoothed {Path(probabilities).name}")
        outputs.commit({paths[k]: tmp[k] for k in paths})
    return {"output": str(paths["map"]), "files": {k: str(v) for k, v in paths.items()},
            "input": str(probabilities), "grid": g.to_dict(), "post": describe([step]),
            "blocks": len(windows), "classified_pixels": int(counts.sum()),
            "classes": class_areas(src.table, counts, g),
            "seconds": round(time.perf_counter() - t0, 2)}


def _tags(src: ProbabilityFile, post: list, probabilities) -> dict:
    import datetime as dt

    tags = {k: v for k, v in src.tags.items() if k.startswith("LANDCOVER_") and k != TAG_SCALE}
    try:
        config = json.loads(tags.get(TAG_CONFIG, "{}"))
    except json.JSONDecodeError:
        config = {}
    classify = config.setdefault("classify", {})
    classify["post"] = [*classify.get("post", []), *json.loads(json.dumps(post))]
    classify["smoothed_from"] = str(probabilities)
    tags.update({TAG_PRODUCT: "classification", TAG_CONFIG: json.dumps(config),
                 TAG_CREATED: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return tags
