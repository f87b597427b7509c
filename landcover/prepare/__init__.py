"""``landcover prepare``: scenes + labels -> a Zarr dataset of spatio-temporal patches with weights.

:func:`prepare` takes the scenes as :class:`~landcover.scenes.Scene` objects (or a
:class:`~landcover.scenes.SceneSource` such as :class:`~landcover.scenes.LocalScenes`) and runs
these stages, in this order; each is one function of :mod:`landcover.prepare.run` (the per-tile
work in :mod:`~landcover.prepare.tiles`, the estimate's groups in :mod:`~landcover.prepare.groups`,
what is written in :mod:`~landcover.prepare.output`), and small frozen records
(:mod:`~landcover.prepare.records`) carry what one stage hands to the next. The work runs in
dask graphs whose tasks open their files by path, tile by tile, so memory is bounded by
``prepare.patches.tile_size`` whatever the size of the scenes.

1. **Layout** (:func:`_layout`): the scenes' stack (bands, grid, dates; nothing is read), the
   labels, the split groups, and the window lattice and its tiles (:mod:`landcover.lattice`).
2. **Survey** (:func:`_survey`, labels only): class codes per pixel, counted per code and per split
   group (see :mod:`landcover.splits`); the class table is derived when none is configured, and
   unknown codes are counted and reported (:func:`_resolve_table`).
3. **Assign** (:func:`_assign`): split groups to train/validation/test, stratified by class (fixed
   assignments of a split column or raster kept as given).
4. **Plan** (:func:`_plan`): windows on the lattice (``size`` every ``stride`` pixels, plus one
   flush with each far edge) are placed per split: a window for split *k* when at least
   ``min_labelled`` of its pixels are labelled split-*k* pixels, or when it owns a labelled
   split-*k* pixel that no such window covers. So no labelled pixel is lost, however small its
   polygon or wherever its group's border.
5. **Extract** (:func:`_extract`): the windows are cut from all dates at once (reflectance,
   validity, label index; the pixels of other splits get the ignore label) into a work store next
   to the output; then valid observations are counted per window and date (:func:`_count_valid`).
6. **Dates** (:func:`_select_dates`): dates whose valid share on the labelled pixels is below
   ``features.min_date_valid`` are dropped.
7. **Window checks** (:func:`_check_windows`): pixels with fewer than ``features.min_valid_dates``
   valid observations get the ignore label; windows whose labelled pixels are mostly invalid
   (``patches.min_valid``) or that have no labelled pixel left are dropped.
8. **Label accounting** (:func:`_account_labels`): unique labelled pixels are counted per class and
   split, and against the labels (warnings for classes that lost pixels and for weak splits).
9. **Statistics** (:func:`_statistics`): normalisation mean/std from valid observations of the
   training windows on the kept dates only.
10. **Weights** (:func:`class_weights`): class weights from the training split's unique pixels.
11. **Features** (:func:`_features`): the dask graph of the inputs (made by
    :meth:`landcover.features.FeatureSpec.make`), labels and per-pixel weights, in sample order
    (by split, then work-store order).
12. **Attributes** (:func:`~landcover.prepare.output.summarise`,
    :func:`~landcover.prepare.output.dataset_attributes`): the summary and the self-describing
    attributes of the dataset.
13. **Write** (:func:`~landcover.prepare.output.build_dataset`,
    :func:`~landcover.prepare.output.write_dataset`): to Zarr under a temporary name, with a
    preview of the splits (``splits.png``), renamed when complete.
"""

from landcover.prepare.groups import estimate_groups, window_groups
from landcover.prepare.records import CHUNK_PATCHES
from landcover.prepare.run import prepare
from landcover.prepare.tiles import (class_weights, extract_tile, ignore_unobserved, kept_pixels,
                                     pixel_splits, plan_tile, survey_tile)

__all__ = ["CHUNK_PATCHES", "class_weights", "estimate_groups", "extract_tile",
           "ignore_unobserved", "kept_pixels", "pixel_splits", "plan_tile", "prepare",
           "survey_tile", "window_groups"]
