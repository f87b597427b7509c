"""``landcover change``: the from-to transitions between two class maps of the same grid.

The two maps (band 1 uint8 codes, nodata 255, the class table in their ``LANDCOVER_CLASSES`` tags)
must share the grid (CRS, transform, size) and the class table (codes and names); otherwise the
error says what differs. They are read window by window (bounded memory). With ``K`` classes of
indices ``0..K-1``, the transition from class ``i`` (map A) to class ``j`` (map B) has the code
``i x K + j`` (so ``K <= 15``: codes stay below the nodata value 255); a pixel that is nodata in
either map is nodata. The output folder holds:

* ``transitions.tif``: the transition codes (COG) with a colour table (unchanged pixels in a pale
  tint of their class, changes in the colour of the class they became), names ``"A -> B"`` in the
  band metadata and in its ``transitions.tif.aux.xml`` legend (GDAL categories, RAT), and a QGIS
  ``transitions.qml``;
* ``transitions.csv``: the transition matrix, rows = map A, columns = map B, in pixels and
  hectares, long format (``from_code, from_class, to_code, to_class, pixels, hectares``);
* ``transitions.md``: the same as two Markdown tables (pixels, hectares), with totals;
* ``transitions_quicklook.png`` and ``change.json`` (matrix, totals, the inputs).

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from landcover.classes import ClassTable, class_table
from landcover.contract import NODATA, TAG_CLASSES, TAG_PRODUCT
from landcover.errors import ClassTableError, GridMismatchError, RasterReadError
from landcover.gdalio import open_raster

WINDOW = 1024
MAX_CLASSES = 15  # K^2 transition codes must stay below NODATA (255)


def transition_table(table: ClassTable) -> ClassTable:
    """The class table of the transitions: code ``i K + j``, name ``"a -> b"``, colours."""
    K = len(table)
    items = []
    for i, a in enumerate(table.classes):
        for j, b in enumerate(table.classes):
            if i == j:  # unchanged: a pale tint of the class
                rgb = tuple(int(round(v + (255 - v) * 0.6)) for v in a.rgb)
            else:  # changed: the colour of the class it became
                rgb = b.rgb
            items.append({"code": i * K + j, "name": f"{a.name} -> {b.name}",
                          "color": "#{:02x}{:02x}{:02x}".format(*rgb)})
    return class_table(items, "transitions")


def _check_pair(a, b, table_a: ClassTable, table_b: ClassTable) -> None:
    if a.grid != b.grid:
        diffs = [k for k in ("crs", "transform", "width", "height")
                 if getattr(a.grid, k) != getattr(b.grid, k)]
        raise GridMismatchError(
            f"{b.path}: not on the grid of {a.path} (different {', '.join(diffs)}: "
            f"{a.grid.difference(b.grid)}); classify both on one grid (scenes.grid.like)")
    if [(c.code, c.name) for c in table_a.classes] != [(c.code, c.name) for c in table_b.classes]:
        raise ClassTableError(f"{b.path}: its classes ({table_b.describe()}) are not those of "
                              f"{a.path} ({table_a.describe()}); compare maps of one class table")
    if len(table_a) > MAX_CLASSES:
        raise ClassTableError(f"{a.path}: {len(table_a)} classes; change supports up to "
                              f"{MAX_CLASSES} (the {MAX_CLASSES}^2 transitions fit in one byte)")


def _read(src, window, path: str) -> np.ndarray:
    """Band 1 over ``window``; a truncated or damaged map is named (RasterReadError)."""
    from rasterio.errors import RasterioError

    try:
        return src.read(1, window=window)
    except RasterioError as exc:
        detail = " ".join(str(exc.__cause__ or exc).split())
        raise RasterReadError(f"{path}: cannot read ({detail}); the map is truncated or damaged, "
                              "write it again") from None


def change(map_a: str | Path, map_b: str | Path, out: str | Path, *, overwrite: bool = False,
           quicklook: bool = True, window: int = WINDOW) -> dict:
    """Compare two class maps and write the transition products into the folder ``out``.

    Raises:
        RasterReadError, ClassTableError (no/different class tables), GridMismatchError,
        OutputExistsError.
    """
    import zarr
    from rasterio.windows import Window

    from landcover.dataset import compressor
    from landcover.grid import pixel_area_m2
    from landcover.maps import write_map, write_quicklook, write_style, writing
    from landcover.outputs import OutputSet
    from landcover.products import map_with_classes

    t0 = time.monotonic()
    a, table_a = map_with_classes(map_a)
    b, table_b = map_with_classes(map_b)
    _check_pair(a, b, table_a, table_b)
    K, g, lut = len(table_a), a.grid, table_a.lut()
    trans = transition_table(table_a)
    out = Path(out).absolute()
    counts = np.zeros(K * K, np.int64)
    with OutputSet([out], overwrite, folders=[True]) as outputs, writing(out):
        tmp = outputs.temporary(out)
        tmp.mkdir()
        store = tmp / ".store.zarr"
        group = zarr.open_group(str(store), mode="w")
        group.create_array("classes", shape=(g.height, g.width), dtype="uint8",
                           chunks=(window, window), fill_value=NODATA, compressors=[compressor()])
        windows = []
        with open_raster(a.path) as sa, open_raster(b.path) as sb:
            for r0, c0, h, w in g.tiles(window):
                win = Window(c0, r0, w, h)
                ia, ib = lut[_read(sa, win, a.path)], lut[_read(sb, win, b.path)]
                ok = (ia < K) & (ib < K)
                code = np.full((h, w), NODATA, np.uint8)
                code[ok] = ia[ok] * K + ib[ok]
                group["classes"][r0:r0 + h, c0:c0 + w] = code
                counts += np.bincount(code[ok], minlength=K * K)
                windows.append((r0, r0 + h, c0, c0 + w))
        tags = {TAG_PRODUCT: "transitions", TAG_CLASSES: json.dumps(trans.to_list()),
                "LANDCOVER_CHANGE_FROM": str(map_a), "LANDCOVER_CHANGE_TO": str(map_b)}
        write_map(str(store), g, windows, trans, tmp / "transitions.tif", tags,
                  legend=tmp / "transitions.tif.aux.xml")
        write_style(trans, tmp / "transitions.qml")
        if quicklook:
            present = class_table([c for c, n in zip(trans.to_list(), counts) if n] or
                                  trans.to_list()[:1], "transitions")
            write_quicklook(tmp / "transitions.tif", present,
                            [n for n in counts if n] or [0], tmp / "transitions_quicklook.png",
                            title=f"{Path(map_a).name} -> {Path(map_b).name}")
        from landcover.outputs import remove

        remove(store)
        px_area = pixel_area_m2(g.crs, g.transform)
        matrix = counts.reshape(K, K)
        result = {"output": str(out), "from": str(map_a), "to": str(map_b), "grid": g.to_dict(),
                  "classes": table_a.to_list(), "rows": "from (map A)", "columns": "to (map B)",
                  "matrix_pixels": matrix.tolist(),
                  "matrix_hectares": (np.round(matrix * px_area / 1e4, 4).tolist()
                                      if px_area else None),
                  "pixels_compared": int(matrix.sum()),
                  "pixels_changed": int(matrix.sum() - np.trace(matrix)),
                  "changed_share": (round(float(1 - np.trace(matrix) / matrix.sum()), 6)
                                    if matrix.sum() else None),
                  "files": {k: str(out / k) for k in ("transitions.tif", "transitions.tif.aux.xml",
                                                      "transitions.qml", "transitions.csv",
                                                      "transitions.md", "change.json")}}
        _write_csv(tmp / "transitions.csv", table_a, matrix, px_area)
        (tmp / "transitions.md").write_text(format_markdown(result, table_a))
        result["seconds"] = round(time.monotonic() - t0, 2)
        (tmp / "change.json").write_text(json.dumps(result, indent=2))
        outputs.commit({out: tmp})
    return result


def _write_csv(path: Path, table: ClassTable, matrix: np.ndarray, px_area) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["from_code", "from_class", "to_code", "to_class", "pixels", "hectares"])
        for i, a in enumerate(table.classes):
            for j, b in enumerate(table.classes):
                ha = f"{matrix[i, j] * px_area / 1e4:.4f}" if px_area else ""
                w.writerow([a.code, a.name, b.code, b.name, int(matrix[i, j]), ha])


def format_markdown(result: dict, table: ClassTable) -> str:
    """The transition matrix in pixels and hectares (rows: map A, columns: map B)."""
    names = table.names
    lines = [f"# Change from {Path(result['from']).name} to {Path(result['to']).name}", "",
             f"{result['pixels_compared']:,d} pixels with a class in both maps; "
             f"{result['pixels_changed']:,d} changed"
             + (f" ({100 * result['changed_share']:.2f} %)." if result["changed_share"] is not None
                else ".")]
    for key, unit, fmt in (("matrix_pixels", "pixels", "{:,.0f}"),
                           ("matrix_hectares", "hectares", "{:,.2f}")):
        m = result[key]
        if m is None:
            continue
        m = np.asarray(m, float)
        lines += ["", f"## Transitions ({unit}; rows: from, columns: to)", "",
                  "| from \\ to | " + " | ".join(names) + " | total |",
                  "|---|" + "---:|" * (len(names) + 1)]
        for i, name in enumerate(names):
            lines.append(f"| {name} | " + " | ".join(fmt.format(v) for v in m[i]) +
                         f" | {fmt.format(m[i].sum())} |")
        lines.append("| total | " + " | ".join(fmt.format(v) for v in m.sum(0)) +
                     f" | {fmt.format(m.sum())} |")
    return "\n".join(lines) + "\n"
