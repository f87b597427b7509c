"""Rasters kept open for a run (``gdalio.keep_open``): every window equals a plain read, bit for
bit, and the tile column two neighbouring blocks share is read from the file once."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landcover import gdalio
from landcover.gdalio import keep_open, read_window
from landcover.grid import Grid

H, W, TILE = 300, 520, 64


def write(path, tiled: bool, dtype="uint16"):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 60000 if dtype == "uint16" else 250, (H, W)).astype(dtype)
    profile = {"driver": "GTiff", "width": W, "height": H, "count": 1, "dtype": dtype,
               "crs": "EPSG:32633", "transform": from_origin(300000, 5100000, 30, 30),
               "compress": "deflate", "nodata": 0}
    if tiled:
        profile.update(tiled=True, blockxsize=TILE, blockysize=TILE)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    with rasterio.open(path) as src:
        return Grid.from_rasterio(src.crs, src.transform, W, H)


def blocks_then_random(target_offset=(0, 0)):
    """Windows as classify reads them (blocks of 200 px with 12 px of context, row by row, the
    edges sticking out of the grid), then random ones."""
    dr, dc = target_offset
    out = []
    for r in range(-12, H, 200):
        for c in range(-12, W, 200):
            out.append((r + dr, c + dc, 224, 224))
    rng = np.random.default_rng(5)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 260, 2))
        out.append((int(rng.integers(-40, H)) + dr, int(rng.integers(-40, W)) + dc, h, w))
    return out


@pytest.mark.parametrize("tiled", [True, False])
@pytest.mark.parametrize("dtype,fill", [("uint16", 0), ("uint8", -1)])
def test_kept_open_reads_equal_plain_reads(tmp_path, tiled, dtype, fill):
    path = str(tmp_path / "band.tif")
    grid = write(path, tiled, dtype)
    # a target grid on the same lattice, shifted by 7 rows and 3 columns
    a, b, c, d, e, f = grid.transform
    target = Grid(grid.crs, (a, b, c - 3 * a, d, e, f - 7 * e), W + 20, H + 30)
    for g in (grid, target):
        windows = blocks_then_random((7, 3) if g is target else (0, 0))
        plain = [read_window(path, grid, g, *w, fill, resampling="nearest") for w in windows]
        with keep_open():
            kept = [read_window(path, grid, g, *w, fill, resampling="nearest") for w in windows]
        assert gdalio._KEPT is None  # closed with the block
        for p, k, w in zip(plain, kept, windows):
            if p is None:
                assert k is None, w
                continue
            assert k.dtype == p.dtype and k.shape == p.shape, w
            np.testing.assert_array_equal(k, p, err_msg=str(w))


def test_neighbouring_blocks_read_their_shared_tile_column_once(tmp_path, monkeypatch):
    path = str(tmp_path / "band.tif")
    grid = write(path, tiled=True)
    reads = []
    real_read = rasterio.io.DatasetReader.read

    def spy(self, *args, window=None, **kwargs):
        reads.append(window)
        return real_read(self, *args, window=window, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    with keep_open():
        read_window(path, grid, grid, 0, 0, 140, 140, 0, resampling="nearest")
        read_window(path, grid, grid, 0, 120, 140, 140, 0, resampling="nearest")
    # the first read takes the whole tiles of columns 0-191 (tile columns 0-2) and keeps those
    # of its last 64 px (64-191); the second, columns 120-259, takes 120-191 from them and reads
    # only the tiles after them: columns 192-319
    assert [(w.col_off, w.width, w.row_off, w.height) for w in reads] == \
        [(0, 192, 0, 192), (192, 128, 0, 192)]


def test_overlapping_runs_share_the_kept_rasters_until_the_last_ends(tmp_path):
    from rasterio.env import get_gdal_config

    path = str(tmp_path / "band.tif")
    grid = write(path, tiled=True)
    before = get_gdal_config("GDAL_CACHEMAX")
    with keep_open() as outer:
        assert get_gdal_config("GDAL_CACHEMAX") == gdalio.KEPT_CACHE_BYTES
        with keep_open() as inner:  # a second run in this process
            assert inner is outer
            read_window(path, grid, grid, 0, 0, 100, 100, 0, resampling="nearest")
        assert gdalio._KEPT is outer and not outer._rasters[path][0].closed  # still open
        read_window(path, grid, grid, 0, 80, 100, 100, 0, resampling="nearest")
    assert gdalio._KEPT is None and not outer._rasters
    assert get_gdal_config("GDAL_CACHEMAX") == before
