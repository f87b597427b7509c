"""The unlabelled windows pretraining learns from: drawn from the whole stack, spread over it, bounded.

The stack is read block by block (its dask chunks, every date at once: the reads GDAL does best),
in a seeded random order. Each block is cut into ``size`` x ``size`` windows on a lattice; a
window is a candidate when at least one of its pixels has a valid observation. Every block gets
the same quota of windows (``max_pixels / size^2`` spread over the blocks; a block with fewer
candidates passes its unused quota to the blocks after it), so the windows cover the whole scene,
not its first blocks. The features are those of training (:class:`landcover.features.FeatureSpec`:
standardised bands, gap fill, validity, day of year), standardised with the mean and standard
deviation of the sampled windows' valid observations.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np

from landcover.errors import DatasetError
from landcover.features import FeatureSpec, days_since_reference

log = logging.getLogger(__name__)


@dataclass
class Windows:
    """The sampled windows: ``x`` ``(n, T, size, size, F)`` float32 features, their ``spec``,
    the stack's ``dates``, the windows' top-left ``origins`` (row, col) and the stack's
    ``grid`` description and scene IDs (the encoder's provenance)."""

    x: np.ndarray
    spec: FeatureSpec
    dates: list[dt.date]
    origins: np.ndarray
    grid: str
    scene_ids: list[str]
    blocks_read: int

    @property
    def days(self) -> np.ndarray:
        return days_since_reference(self.dates)

    @property
    def valid_observations(self) -> int:
        return int((self.x[..., len(self.spec.bands)] > 0.5).sum())


def _block_windows(refl: np.ndarray, valid: np.ndarray, size: int):
    """``(T, B, h, w)`` reflectance and ``(T, h, w)`` validity of a block cut into the windows of
    its lattice that hold a valid observation: ``(refl (k, T, s, s, B), valid (k, T, s, s),
    offsets (k, 2))``."""
    t, b, h, w = refl.shape
    ny, nx = h // size, w // size
    if ny == 0 or nx == 0:
        return None
    r = refl[:, :, :ny * size, :nx * size].reshape(t, b, ny, size, nx, size)
    v = valid[:, :ny * size, :nx * size].reshape(t, ny, size, nx, size)
    any_valid = v.any(axis=(0, 2, 4))  # (ny, nx)
    iy, ix = np.nonzero(any_valid)
    if len(iy) == 0:
        return None
    r = r.transpose(2, 4, 0, 3, 5, 1)[iy, ix]  # (k, T, s, s, B)
    v = v.transpose(1, 3, 0, 2, 4)[iy, ix]
    return r, v, np.stack([iy * size, ix * size], axis=1)


def sample_windows(stack, size: int, max_pixels: int, fill: str, doy: bool, seed: int,
                   progress=None) -> Windows:
    """Windows of ``stack`` (:func:`landcover.stack.stack_scenes`) as described in the module's
    docstring.

    Raises:
        DatasetError: no window of the stack holds a valid observation.
    """
    import dask

    from landcover.progress import Stage, reporter

    refl, valid = stack.reflectance.data, stack.valid.data
    ych, xch = refl.chunks[2], refl.chunks[3]
    blocks = [(i, j) for i in range(len(ych)) for j in range(len(xch))]
    order = np.random.default_rng([seed, 1]).permutation(len(blocks))
    quota_total = max(1, max_pixels // (size * size))
    rows0, cols0 = np.cumsum((0,) + ych), np.cumsum((0,) + xch)
    rs, vs, origins = [], [], []
    taken = 0
    stage = Stage(reporter(progress), "Sampling windows", len(blocks), unit="blocks").start()
    for n, k in enumerate(order):
        i, j = blocks[k]
        quota = (quota_total - taken) // (len(blocks) - n) if n < len(blocks) else 0
        quota = max(quota, 0)
        r, v = dask.compute(refl.blocks[:, :, i, j], valid.blocks[:, i, j])
        stage.advance()
        cut = _block_windows(np.asarray(r, np.float32), np.asarray(v, bool), size)
        if cut is None or quota == 0:
            continue
        wr, wv, off = cut
        pick = np.random.default_rng([seed, 2, int(k)]).permutation(len(wr))[:quota]
        pick.sort()
        rs.append(wr[pick])
        vs.append(wv[pick])
        origins.append(off[pick] + [rows0[i], cols0[j]])
        taken += len(pick)
    stage.finish()
    if not rs:
        raise DatasetError("no window of the stack holds a valid observation: the scenes are "
                           "cloud-covered or their QA masks everything")
    refl_w = np.concatenate(rs)
    valid_w = np.concatenate(vs)
    refl_w = np.where(valid_w[..., None], np.nan_to_num(refl_w), 0.0).astype(np.float32)
    count = int(valid_w.sum())
    x = refl_w[valid_w].astype(np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)
    bands = tuple(str(b) for b in stack.band.values)
    spec = FeatureSpec(bands, tuple(mean.tolist()), tuple(std.tolist()), fill, doy)
    dates = [dt.date.fromisoformat(str(t)[:10]) for t in stack.time.values]
    feats = spec.make(refl_w, valid_w, dates).astype(np.float32)
    log.info("pretraining on %d windows of %d px (%d valid observations) from %d blocks",
             len(feats), size, count, len(blocks))
    return Windows(feats, spec, dates, np.concatenate(origins), stack.attrs.get("grid", ""),
                   [str(s) for s in stack.scene_id.values], len(blocks))
