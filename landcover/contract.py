"""The values that files written by one stage and read by another agree on.

Every label value, nodata value, tag name and format version that crosses a file boundary is defined
here once; the modules that write and read those files import it from here.
"""

from __future__ import annotations

# --- label and map values ----------------------------------------------------------------------
IGNORE = 255
"""Label index of a pixel without a usable label (datasets, losses, metrics, evaluation)."""

NODATA = 255
"""Class-map value of a pixel without a valid observation on any date."""

PROBABILITY_SCALE = {"uint8": (250, 255), "uint16": (10000, 65535)}
"""Probability rasters: ``dtype -> (stored value of p = 1, nodata)``."""

# --- names recorded in configs and bundles ----------------------------------------------------
LOSS_KINDS = ("ce", "focal", "dice", "ce+dice")
"""``train.loss.kind``: cross-entropy, focal, Dice, cross-entropy + Dice (:mod:`landcover.losses`)."""

UNCERTAINTIES = ("entropy", "margin")
"""``classify.uncertainty``: the probabilities' last band (:func:`landcover.maps.uncertainty`)."""

# --- format versions ---------------------------------------------------------------------------
DATASET_FORMAT = 1
"""``landcover_dataset`` attribute of a prepared Zarr dataset."""

BUNDLE_FORMAT = 1
"""``landcover_model`` field of a model bundle's ``bundle.json``."""

PARTIAL_FORMAT = 1
"""``format`` of the ``run.json`` of an interrupted classification (``--resume``)."""

# --- GeoTIFF tags of the maps ------------------------------------------------------------------
TAG_PRODUCT = "LANDCOVER_PRODUCT"  # classification | probabilities
TAG_VERSION = "LANDCOVER_VERSION"
TAG_CREATED = "LANDCOVER_CREATED"
TAG_MODEL = "LANDCOVER_MODEL"
TAG_ARCHITECTURE = "LANDCOVER_ARCHITECTURE"  # the kept model (auto: which candidate won)
TAG_MODEL_HASH = "LANDCOVER_MODEL_HASH"
TAG_DATES = "LANDCOVER_DATES"  # JSON list of ISO dates
TAG_SCENES = "LANDCOVER_SCENES"  # JSON list, one "+"-joined scene ID string per date
TAG_CLASSES = "LANDCOVER_CLASSES"  # JSON list of {code, name, color}
TAG_CONFIG = "LANDCOVER_CONFIG"  # JSON: scenes, classify and the model's config
TAG_SCALE = "LANDCOVER_SCALE"  # probabilities: how stored values map to probabilities
