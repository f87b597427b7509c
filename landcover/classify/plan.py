"""The plan of a classification: the bundle's config resolved, the bundle and the scenes checked
against each other, the dates kept, the tiling chosen, and the resources checked (reads no
pixels). The :class:`Plan` is all a block task needs."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from landcover.bundle import BundleMeta
from landcover.classes import ClassTable, class_table
from landcover.config import Config, MaskConfig, load_config
from landcover.errors import ConfigError, ModelError
from landcover.features import (
    DAYS_TOLERANCE,
    FeatureSpec,
    days_outside,
    feature_names,
)
from landcover.grid import Grid
from landcover.lattice import (
    OVERLAP,
    aligned_block,
    auto_window,
    block_side,
    support,
    window_origins,
)
from landcover.models import variable_date_architectures
from landcover.outputs import check_space
from landcover.postprocess import check_steps, halo_of
from landcover.precision import has_nvidia_gpu
from landcover.runtime import auto_precision, check_memory
from landcover.scenes import Scene, SceneSource, as_scenes, scene_source

log = logging.getLogger(__package__)  # the package's: messages keep the name "landcover.classify"


def resolve_config(model_dir: str | Path, config_path=None, overrides: Sequence[str] = ()):
    """``(bundle metadata, Config)``: the bundle's saved config (scenes mask and grid rules as in
    training), then ``--config``, then ``--set``. The bundle is checked (format, content hash).

    A bundle is not trusted (anyone who edits it recomputes its hash): settings that run code or
    open an address (:data:`landcover.config.UNTRUSTED_KEYS`: ``scenes.stac.signer``,
    ``scenes.grid.like``) are taken from the user's config and ``--set`` only, a
    ``scenes.profile`` that names a file becomes the profile recorded in the bundle (no file
    it names is read), and its settings are validated like the user's (a ModelError naming the
    bundle)."""
    from landcover.bundle import read_bundle_meta
    from landcover.config import trusted_base
    from landcover.profiles import shipped_profiles

    meta = read_bundle_meta(model_dir)
    saved = meta.config
    if not isinstance(saved, dict):
        raise ModelError(f"{model_dir}: the bundle's saved config is not a mapping; train again")
    base, dropped = trusted_base({k: saved[k] for k in ("scenes",) if k in saved})
    scenes = base.get("scenes")
    if isinstance(scenes, dict) and isinstance(scenes.get("profile"), str):
        records = meta.profiles
        recorded = [r.get("name") for r in records if isinstance(r, dict)]
        known = {"auto", *(p.name for p in shipped_profiles()), *recorded}
        if scenes["profile"] not in known:  # a path: read with the recorded profile instead
            dropped.append(("scenes.profile", scenes.pop("profile")))
            if recorded and isinstance(recorded[0], str):
                scenes["profile"] = recorded[0]
    for key, value in dropped:
        log.warning("%s: the bundle's %s (%r) is not used: a bundle may not name code, files "
                    "or addresses (set it in your own --config or with --set)", model_dir, key,
                    value)
    try:
        load_config(None, (), base=base)
    except ConfigError as exc:
        raise ModelError(f"{model_dir}: the bundle's saved config is invalid ({exc}); train "
                         "again or restore the bundle") from None
    cfg = load_config(config_path, overrides, base=base)
    trained = (saved.get("scenes") or {}).get("mask")
    if trained is not None and plain(asdict(cfg.scenes.mask)) != plain(trained):
        log.warning("scenes.mask differs from the one the model was trained with (%s); the "
                    "validity channel will not mean the same thing", trained)
    return meta, cfg


def plain(value):
    """``value`` as JSON gives it back (tuples as lists, keys as strings): how records compare."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class Plan:
    """Everything a block task needs (small and picklable: it travels to dask workers)."""

    bundle: str
    content_hash: str
    groups: tuple  # scenes per date, in date order
    dates: tuple  # their dates
    features: FeatureSpec
    grid: Grid
    mask: MaskConfig
    window: int
    overlap: int
    batch_size: int  # windows per model call
    codes: tuple[int, ...]
    block: int
    store: str
    probabilities: bool
    probability_dtype: str
    uncertainty: str
    post: tuple = ()  # post-processing steps (landcover.postprocess)
    days: tuple | None = None  # the dates' days, for a network with a days input (else None)
    blend: int = 0  # width of the blended seam between windows (0: each pixel from one window)
    precision: str = "float32"  # the network's compute dtype policy
    temperature: float = 1.0  # logits are divided by it before the softmax (landcover.calibration)
    features_on: str = "host"  # host: float32 features sent; model: DNs sent (features_inside)

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    @property
    def num_classes(self) -> int:
        return len(self.codes)

    def blocks(self) -> list[tuple[int, int]]:
        ny = math.ceil(self.grid.height / self.block)
        nx = math.ceil(self.grid.width / self.block)
        return [(i, j) for i in range(ny) for j in range(nx)]

    def origins(self) -> tuple[np.ndarray, np.ndarray]:
        """Window origins along y and x: the lattice over the whole grid."""
        return (window_origins(self.grid.height, self.window, self.overlap),
                window_origins(self.grid.width, self.window, self.overlap))

    def support(self) -> tuple[int, int]:
        """The positions of a window whose blending weight is not 0 (:func:`landcover.lattice.support`)."""
        return support(self.window, self.overlap, self.blend)

    def block_window(self, i: int, j: int) -> tuple[int, int, int, int]:
        r0, c0 = i * self.block, j * self.block
        return r0, min(r0 + self.block, self.grid.height), c0, min(c0 + self.block,
                                                                    self.grid.width)


def kept_dates(meta: BundleMeta, groups: list, model_dir: Path) -> list:
    """The dates to classify: the scenes' dates minus those the model dropped in training."""
    dropped = set(meta.dates_dropped)
    kept = [(d, g) for d, g in groups if d.isoformat() not in dropped]
    if len(kept) < len(groups):
        log.warning("leaving out %d date(s) that were dropped in training (too few valid "
                    "observations): %s", len(groups) - len(kept),
                    ", ".join(d.isoformat() for d, _ in groups if d.isoformat() in dropped))
    inp = meta.input
    if not kept:
        raise ModelError(f"{model_dir}: every date of the scenes was dropped in training")
    if not inp.variable_time_steps and len(kept) != inp.time_steps:
        raise ModelError(
            f"{model_dir}: this {meta.architecture_name} model takes exactly "
            f"{inp.time_steps} dates, the scenes give {len(kept)}; classify a series with as "
            f"many dates, or train a {'/'.join(variable_date_architectures())} model (any "
            "number of dates)")
    trained = list(meta.dates)
    ours = [d.isoformat() for d, _ in kept]
    days = kept_days(meta, [d for d, _ in kept])
    if days is not None:
        seen = inp.days_trained
        outside = days_outside(days, seen)
        if outside.any():
            log.warning("%d of %d dates lie more than %g days outside the seasonal range the "
                        "model was trained on (day %g .. %g of the season's year): %s; the "
                        "model has not seen these times of the season", int(outside.sum()),
                        len(days), DAYS_TOLERANCE, seen[0], seen[1],
                        ", ".join(d.isoformat() for (d, _), o in zip(kept, outside) if o))
    if ours != trained:
        log.info("classifying %d dates (%s .. %s); the model was trained on %d dates (%s .. %s)",
                 len(ours), ours[0], ours[-1], len(trained), trained[0] if trained else "-",
                 trained[-1] if trained else "-")
    return kept


def warn_unlike_training(meta: BundleMeta, grid: Grid, dates: Sequence, model_dir: Path) -> None:
    """Warn, naming both, when the scenes' pixel size differs from the training grid's, or
    their dates span a very different time (half or twice as many dates or days, or one date
    against a series): the model runs, but on what it has not seen."""
    trained_grid = meta.grid or {}
    try:
        t = trained_grid["transform"]
        trained_res = (abs(float(t[0])), abs(float(t[4])))
    except (KeyError, TypeError, IndexError, ValueError):
        trained_res = None
    if trained_res is not None and not all(
            math.isclose(a, b, rel_tol=0.01) for a, b in zip(trained_res, grid.res)):
        log.warning("%s: the model was trained on %s pixels, the scenes are on %s pixels (%s); "
                    "a model applied to another pixel size sees fields and edges at another "
                    "scale: expect a poorer map, or train on scenes of this resolution",
                    model_dir, _pixel_size(trained_res), _pixel_size(grid.res),
                    grid.describe())
    trained = [_iso_date(d) for d in meta.dates]
    if not trained or not dates:
        return
    span_t, span_o = (trained[-1] - trained[0]).days, (dates[-1] - dates[0]).days
    n_t, n_o = len(trained), len(dates)
    if max(n_t, n_o) >= 2 * min(n_t, n_o) or (max(span_t, span_o) > 0 and (
            min(span_t, span_o) == 0 or max(span_t, span_o) >= 2 * min(span_t, span_o))):
        log.warning("%s: the model was trained on %d date(s) over %d days (%s .. %s), the scenes "
                    "give %d date(s) over %d days (%s .. %s); the model has not seen a series "
                    "like this one: expect a poorer map", model_dir, n_t, span_t, trained[0],
                    trained[-1], n_o, span_o, dates[0], dates[-1])


def _pixel_size(res) -> str:
    rx, ry = res
    return f"{rx:g} m" if math.isclose(rx, ry, rel_tol=1e-6) else f"{rx:g} x {ry:g} m"


def _iso_date(text: str):
    import datetime

    return datetime.date.fromisoformat(text)


def kept_days(meta: BundleMeta, dates: Sequence) -> np.ndarray | None:
    """The ``days`` input of ``dates`` for a bundle whose network takes the dates, else None:
    counted as in training, from the 1 January that puts most dates in the trained range
    (:func:`landcover.features.season_days`; another year's series lands on the same days)."""
    return meta.days(dates)


def _check_bundle(meta: BundleMeta, model_dir: Path) -> tuple[list[str], ClassTable]:
    bands = list(meta.input.bands)
    norm = meta.normalisation
    if not bands or list(meta.input.features) != feature_names(bands, bool(meta.input.doy)) or \
            len(norm.get("mean", [])) != len(bands) or len(norm.get("std", [])) != len(bands):
        raise ModelError(f"{model_dir}: the bundle's input description (bands, features, "
                         "normalisation) is inconsistent; train the model again")
    table = class_table([{"code": c["code"], "name": c["name"], "color": c["color"]}
                         for c in meta.classes], source=f"{model_dir}/bundle.json")
    return bands, table


def _check_bands(scenes, bands: Sequence[str], model_dir: Path) -> None:
    from landcover.stack import scene_lacking

    lacking = scene_lacking(scenes, bands)
    if lacking:
        scene, missing = lacking
        raise ModelError(
            f"{model_dir}: the model was trained on bands {', '.join(bands)}, but "
            f"{scene.source} ({scene.sensor}) has no {', '.join(missing)}; classify scenes "
            "that provide these bands, or train a model on bands they share")


def _profile_spec(spec: str, meta: BundleMeta):
    """The sensor profiles to read the scenes with: those the bundle was trained with (its
    ``profiles`` records, so a user profile YAML need not be passed again, nor still exist), first
    under ``auto``, or alone when ``spec`` names one of them or a YAML that is gone."""
    from landcover.profiles import profile_from_record, shipped_profiles

    recorded = tuple(profile_from_record(r) for r in meta.profiles)
    if not recorded:
        return spec
    names = {p.name for p in recorded}
    if spec == "auto":
        return recorded + tuple(p for p in shipped_profiles() if p.name not in names)
    if spec in names or (spec.endswith((".yaml", ".yml")) and not Path(spec).exists()):
        return recorded
    return spec


def model_scenes(paths: Sequence[str], meta: BundleMeta, cfg: Config) -> SceneSource:
    """The scenes of ``paths`` (folders, archives, STAC documents), read with the profiles the
    model was trained with (see :func:`_profile_spec`)."""
    from landcover.stac import signer_of

    return scene_source(paths, _profile_spec(cfg.scenes.profile, meta),
                        signer_of(cfg.scenes.stac.signer))


def build_plan(scenes: SceneSource | Sequence[Scene], model_dir: str | Path, cfg: Config,
               meta: BundleMeta, store: str | Path, probabilities: bool = False, post: Sequence = ()):
    """Check the bundle and the scenes against each other and plan the run (reads no pixels).

    Returns ``(plan, kept dates [(date, scenes)], class table)``.
    """
    from landcover.stack import date_groups, stack_grid

    model_dir = Path(model_dir).absolute()
    c = cfg.classify
    bands, table = _check_bundle(meta, model_dir)
    scenes = as_scenes(scenes)
    _check_bands(scenes, bands, model_dir)
    grid = stack_grid(scenes, cfg.scenes, bands)  # checks bands and grids; reads nothing
    kept = kept_dates(meta, date_groups(scenes), model_dir)
    warn_unlike_training(meta, grid, [d for d, _ in kept], model_dir)
    inp = meta.input
    tiles = tiling(c, grid, inp.patch_size, len(kept), window_statistics=meta.window_statistics,
                   context=not meta.is_pixel)
    plan = Plan(
        bundle=str(model_dir), content_hash=meta.content_hash,
        groups=tuple(g for _, g in kept), dates=tuple(d for d, _ in kept),
        features=FeatureSpec.from_record({"bands": inp.bands, "fill": inp.fill, "doy": inp.doy,
                                          "normalisation": meta.normalisation}),
        grid=grid, mask=cfg.scenes.mask, codes=tuple(table.codes), **tiles,
        store=str(Path(store).absolute()),
        probabilities=probabilities, probability_dtype=c.probability_dtype,
        uncertainty=c.uncertainty, post=check_steps(post),
        days=_as_days(kept_days(meta, [d for d, _ in kept])),
        precision="float32" if meta.is_pixel else  # a pixel classifier computes in float32
        auto_precision() if c.precision == "auto" else c.precision,
        temperature=meta.output.temperature,
        features_on=features_on(c.features_on, meta, [g for _, g in kept]))
    return plan, kept, table


def features_on(setting: str, meta: BundleMeta, groups: Sequence) -> str:
    """Where a run's window inputs are made (``classify.features_on``): ``model`` (the network
    makes the features from the digital numbers: :func:`landcover.models.with_input_features`)
    or ``host``. ``auto``: the model wherever it can; on the 2-core CPU classify took as long
    either way and 60 MiB less memory, and a GPU is sent a sixth of the bytes (README,
    "Classifying").

    Raises:
        ConfigError: ``model`` asked for where the network cannot make them (a pixel classifier,
            ``fill: linear``, a date mosaicked from several scenes).
    """
    why = ("the bundle is a pixel classifier" if meta.is_pixel else
           f"the bundle's features use fill: {meta.input.fill}" if meta.input.fill != "zero" else
           "a date is a mosaic of several scenes" if any(len(g) > 1 for g in groups) else None)
    if setting == "model" and why is not None:
        raise ConfigError(f"classify.features_on: model needs one scene per date, fill: zero and "
                          f"a network, but {why}; use classify.features_on=auto or host")
    if setting == "auto":
        return "host" if why is not None else "model"
    return setting


BATCH_PIXELS = {"cpu": 65536, "gpu": 16 * 256 * 256}
"""``classify.batch_pixels: null``: window pixels a model call on a CPU (one 256 px window, the
fastest measured on 2 cores: README "Tiling") and where an NVIDIA GPU is present (16 windows: a
call of one window leaves a GPU idle between calls; 16-32 windows a call ran the bare network at
89-94 Mpx/s on one H200, issue 27)."""


def tiling(c, grid: Grid, patch_size: int, dates: int, window_statistics: bool = False,
           context: bool = True) -> dict:
    """Window, overlap, blend, block and batch sizes of a run from ``classify.*`` (null keys
    derived: see :mod:`landcover.lattice`, :data:`~landcover.lattice.WINDOW`,
    :data:`~landcover.lattice.OVERLAP`, :func:`~landcover.lattice.block_side`).

    ``window_statistics``: the network normalises over the window (``norm: group``), so a window
    larger than the training patches would change its statistics: the defaults are then the
    patch size, half a patch of overlap, blended across the whole overlap.

    ``context``: the model looks at a pixel's neighbours (a network); a pixel classifier does
    not, so its windows overlap by 0 px unless ``classify.overlap`` says otherwise (its map is the
    same: each pixel is predicted once instead of about 1.15 times, 1.35 on a 100 px grid).

    A batch holds at most the windows of the whole grid: a map of one window is predicted in one
    call of one window (padding it to ``batch_pixels`` predicted 4 windows on a 100 px grid).
    ``batch_pixels: null``: :data:`BATCH_PIXELS`, by the device.
    """
    if not context and c.overlap is None and not c.blend:
        window, overlap, blend = c.window or auto_window(grid, patch_size, 0), 0, 0
    elif window_statistics and c.window is None:
        window = patch_size
        overlap = c.overlap if c.overlap is not None else patch_size // 2
        blend = c.blend or overlap
    else:
        window = c.window or auto_window(grid, patch_size,
                                         c.overlap if c.overlap is not None else OVERLAP)
        overlap = c.overlap if c.overlap is not None else min(OVERLAP, window // 2)
        blend = c.blend
    if overlap >= window:
        raise ConfigError(f"classify.overlap: {overlap} must be smaller than the window ({window})")
    if blend > overlap:
        raise ConfigError(f"classify.blend: {blend} must be at most the overlap ({overlap})")
    block = block_side(c.block_size, dates)
    windows = len(window_origins(grid.height, window, overlap)) * \
        len(window_origins(grid.width, window, overlap))
    pixels = c.batch_pixels or BATCH_PIXELS["gpu" if has_nvidia_gpu() else "cpu"]
    batch = c.batch_size or min(windows, max(1, pixels // (window * window)))
    return {"window": window, "overlap": overlap, "blend": blend, "batch_size": batch,
            "block": aligned_block(block, window - overlap)}


def _as_days(days) -> tuple | None:
    return None if days is None else tuple(float(v) for v in days)


def block_memory(plan: Plan, meta: BundleMeta) -> int:
    """Bytes one block task needs at its peak (an estimate): the rasters of the block and the
    halo its windows read (:class:`BlockData`: reflectance and validity per date), the blend
    accumulators, one batch of windows' features and the network's activations on it (the widest
    layer, a few tensors alive at once, for every date; a network that streams the dates holds
    its input three times, as the loop reads it, and one date's activations)."""
    from landcover.models import streams_dates

    T, F = len(plan.dates), len(plan.features.names)
    s, K = plan.window, plan.num_classes
    side = plan.block + 2 * halo_of(plan.post) + s
    features = T * side * side * 4 * (len(plan.features.bands) + 1)
    blend = (plan.block + 2 * halo_of(plan.post)) ** 2 * (K + 2) * 4 * 2
    arch = meta.architecture
    filters = int(arch.get("filters", 16))
    if "architecture" in arch and streams_dates(arch):
        batch = plan.batch_size * s * s * 4 * (3 * T * F + 24 * max(filters, K))
    elif meta.is_pixel:  # a pixel classifier: the batch as pixels, their features, the outputs
        batch = plan.batch_size * s * s * 4 * (3 * T * F + 4 * K)
    else:
        width = max(filters * 2 ** int(arch.get("layers", 1)), F, K)
        batch = plan.batch_size * T * s * s * (4 * F + 4 * width * 4)
    return int(features + blend + batch)


def check_resources(plan: Plan, meta: BundleMeta, folder: Path) -> None:
    """Refuse, before any work, settings whose block tasks cannot fit in the memory available
    (ConfigError naming the keys to lower), or outputs that cannot fit on the disk."""
    from landcover.scheduler import parallel_tasks

    check_memory(block_memory(plan, meta) * parallel_tasks(),
                 f"classify.window={plan.window}, classify.batch_size={plan.batch_size}, "
                 f"classify.block_size={plan.block}", "the block tasks need",
                 "classify.window, classify.batch_size or classify.block_size")
    px = plan.grid.width * plan.grid.height
    per_px = 1 + (plan.num_classes + 1) * np.dtype(plan.probability_dtype).itemsize * \
        plan.probabilities
    check_space(folder, 3 * px * per_px, "the map (block store, GeoTIFF, COG)")
