"""``landcover classify``: scenes + a model bundle -> a seamless, georeferenced classification.

How a scene is cut (all sizes in pixels; ``s`` = ``classify.window``, ``o`` = ``classify.overlap``,
``d = s - o`` the stride; the geometry in :mod:`landcover.lattice`, the defaults in
:func:`~landcover.classify.plan.tiling`):

* **Windows** lie on one lattice of the whole grid: window ``k`` of an axis starts at
  ``k d - o // 2`` and *keeps* the pixels ``[k d, (k + 1) d)``, with ``o // 2`` pixels of context
  before them and the rest after. Each pixel is predicted ``(s / d)^2`` times (about 1.15 with the
  defaults: ``s`` at most 256, fitted to the grid, ``o = 16``), and taken from the one window where
  it lies furthest from the edge. Outside the grid the series is *reflected* (pixel ``-1`` is pixel
  ``1``). The context was measured: with 4 or 8 px of it the maps of the demo and of real
  sperrorest-maipo equal those of the earlier 30 px windows blended four times (README, "Tiling").
* **Blending** (``classify.blend`` > 0): a ``sin^2`` ramp of that width across each seam, inside
  the overlap; ramps of neighbouring windows sum to exactly 1. Off by default (it costs the windows
  at block edges a second prediction).
* **Blocks**: the grid is processed in ``classify.block_size`` blocks by dask (a multiple of the
  stride: no window is predicted for two blocks; by default 1024 px for up to 12 dates and smaller
  for longer series, so memory stays flat). A block task reads the pixels of every window that
  keeps pixels of the block, opening the scene files by path, and keeps each date's reflectance
  and validity (:class:`BlockData`); it builds a window's features (with reflection at the grid's
  edges) only when the window is predicted, in global lattice order, one model call of
  ``classify.batch_pixels`` window pixels at a time (one 256 px window: the fastest on the 2-core
  CPU measured), and writes its part of the result into a Zarr store next to the output, which it
  also opens by path. On dask's local schedulers the blocks run one after the other, in order,
  and a pool of threads reads the next block's dates while the model predicts one (GDAL decodes
  without Python's lock; at most one block ahead, :class:`~landcover.classify.blocks.ReadAhead`);
  within a block, a thread builds the next batch's features while the model predicts the batch
  before, and during a block's last call it readies the next block (its windows and first
  batch). On a cluster each worker runs whole blocks with its own model. A block's result is
  therefore the same whichever way the grid is cut and whichever scheduler runs it; memory is
  bounded by the block size, not the scene size.
* **Missing data**: windows without any valid observation are not predicted; pixels without a
  valid observation on any date are nodata (255).
* **The network**: the bundle's network restated for prediction where its architecture has one
  (:func:`landcover.models.rebuild_for_window`): the default network streams the dates through
  every layer at once, so its memory does not grow with the series.
* **Where the features are made** (``classify.features_on``): by default the network is sent each
  window's digital numbers in the rasters' own type, its validity and each date's scale, offset,
  normalisation and day of year, and a layer in front of it makes the features with the host's
  float32 operations (:func:`landcover.models.with_input_features`; bit for bit on TensorFlow);
  on the host where it cannot (a pixel classifier, ``fill: linear``, mosaicked dates).
* **Precision**: ``classify.precision`` ``bfloat16``/``float16`` runs the network under Keras mixed
  precision (float32 weights and softmax); ``auto`` (the default) is bfloat16 on a GPU that computes it
  natively and on a CPU where a cached one-off benchmark found it faster, else float32
  (:func:`landcover.precision.auto_precision`; README, "Tiling").

Inputs are made exactly as in training, from the bundle: bands, normalisation statistics, gap
filling, validity channel and day-of-year features, dates dropped in training. The model is loaded
once per worker process (and shared by its threads).

When every block is done, the Zarr store is turned into a Cloud Optimized GeoTIFF (tiled, DEFLATE,
internal overviews with nearest resampling; colour table, class names, tags) under a temporary
name and renamed; a QGIS ``.qml`` style and a quicklook PNG are written beside it. An interrupted
run leaves only the hidden ``.OUT.partial`` store, which ``--resume`` continues.

The package, one job per module, each importing only those above it in this list:

* :mod:`landcover.lattice` (outside the package, shared with prepare and smooth): the window
  lattice, blending weights and block sizes;
* :mod:`~landcover.classify.plan`: the bundle's config, the checks of bundle and scenes, the dates
  kept, the tiling, the resources (:class:`Plan`, :func:`build_plan`);
* :mod:`~landcover.classify.worker`: the model of a worker process, its loading thread, the
  batched model calls (:func:`predict_windows`);
* :mod:`~landcover.classify.store`: the resumable Zarr block store and its markers;
* :mod:`~landcover.classify.blocks`: the block tasks (:class:`BlockData`, :func:`classify_block`)
  and the read-ahead (:class:`ReadAhead`);
* :mod:`~landcover.classify.run`: a run from plan to products (:func:`classify`).
"""

from landcover.classify.blocks import (
    BlockData,
    ReadAhead,
    block_probabilities,
    classify_block,
    read_features,
    reading_ahead,
)
from landcover.classify.plan import (
    Plan,
    block_memory,
    build_plan,
    check_resources,
    kept_dates,
    kept_days,
    model_scenes,
    resolve_config,
    tiling,
    warn_unlike_training,
)
from landcover.classify.run import classify, predictions_per_pixel
from landcover.classify.store import partial_path
from landcover.classify.worker import load_model, predict_windows, softmax, worker_model

__all__ = [
    "BlockData",
    "Plan",
    "ReadAhead",
    "block_memory",
    "block_probabilities",
    "build_plan",
    "check_resources",
    "classify",
    "classify_block",
    "kept_dates",
    "kept_days",
    "load_model",
    "model_scenes",
    "partial_path",
    "predict_windows",
    "predictions_per_pixel",
    "read_features",
    "reading_ahead",
    "resolve_config",
    "softmax",
    "tiling",
    "warn_unlike_training",
    "worker_model",
]
