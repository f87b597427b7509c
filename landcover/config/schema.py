"""Every config key, declared once: its type (the annotation), default, check and help.

A key is a dataclass field made with :func:`setting`; a section (a mapping of keys) with
:func:`section`. From these declarations come the value checks of
:func:`landcover.config.load_config`, the comments of ``configs/default.yaml`` and the README's
configuration table (:mod:`landcover.config.docs`; a test fails when the committed files differ).

Adding a key is one change here: a field with its annotation, ``setting(default, "help",
check)`` and, for a string with a fixed set of values, ``choices=``; then
``python -m landcover.config --write`` rewrites the two files. Checks that involve two keys
are in ``landcover.config.cross_checks``.
"""

# ruff: noqa: RUF009  (setting() and section() return dataclasses.field(...), as field() does)
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from landcover import contract, features, models, qa


@dataclass(frozen=True)
class Check:
    """A check of one value (never called on null): ``test(value)`` is true when it is allowed.

    ``message`` completes the error ``"KEY: message"``; ``brief`` is the README's short form.
    """

    test: Callable[[Any], bool]
    message: str
    brief: str


def at_least(low, unit: str = "", *, low_means: str = "", null: str = "") -> Check:
    """``value >= low``; ``low_means`` says what ``low`` does (``"off"``), ``null`` what null does."""
    message = (f"must be {f'null ({null}) or ' if null else ''}{low}"
               f"{f' ({low_means})' if low_means else ''} or more{f' {unit}' if unit else ''}")
    return Check(lambda v: v >= low, message, f">= {low}")


def more_than(low) -> Check:
    return Check(lambda v: v > low, f"must be more than {low}", f"> {low}")


def within(low, high, brackets: str = "[]") -> Check:
    """``low <= value <= high``, each end open where ``brackets`` says ``(`` or ``)``."""
    interval = f"{brackets[0]}{low}, {high}{brackets[1]}"
    return Check(lambda v: (v >= low if brackets[0] == "[" else v > low)
                 and (v <= high if brackets[1] == "]" else v < high),
                 f"must be in {interval}", f"in {interval}")


def odd(low: int, message: str) -> Check:
    return Check(lambda v: v >= low and v % 2 == 1, message, f"odd, >= {low}")


def each_value(check: Check, noun: str = "values") -> Check:
    """``check`` on every value of a mapping."""
    return Check(lambda v: all(check.test(x) for x in v.values()), f"{noun} {check.message}",
                 f"values {check.brief}")


def setting(default, help: str | Callable[[], str], check: Check | None = None, *,
            choices: tuple | Callable[[], tuple] | None = None, path: bool = False,
            untrusted: bool = False):
    """A config key: ``default``, its ``help`` (the default.yaml comment and the README text;
    a callable is asked when the docs are written), a value ``check``, the allowed ``choices``
    (a callable is asked when the value is not the default), ``path``: a path, relative to a
    config file that names it (``PATH_KEYS``), ``untrusted``: runs code or opens an address, so
    never taken from a model bundle (``UNTRUSTED_KEYS``)."""
    metadata = {"help": help, "check": check, "choices": choices, "path": path,
                "untrusted": untrusted}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def section(cls: type, help: str):
    """A mapping of keys (a dataclass of settings), with its ``help``."""
    return field(default_factory=cls, metadata={"help": help})


def default_of(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def help_of(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    return text() if callable(text) else text


def choices_of(f: dataclasses.Field) -> tuple | None:
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


def walk(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """``(dotted key, field, type)`` of every section and key under ``cls``, in declaration
    order (a section before its keys)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        yield key, f, hints[f.name]
        if dataclasses.is_dataclass(hints[f.name]):
            yield from walk(hints[f.name], key)


# ----------------------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class MaskConfig:
    invalid_flags: tuple[str, ...] = setting(
        qa.DEFAULT_INVALID_FLAGS, "QA flags that make a pixel invalid; also: snow, water, "
        "cloud_confidence_high, cloud_confidence_medium, cloud_shadow_confidence_high, "
        "snow_confidence_high, cirrus_confidence_high, terrain_occlusion, saturated (C1 BQA)")
    saturation: bool = setting(
        True, "QA_RADSAT: a saturated stacked band makes the pixel invalid")
    valid_range: bool = setting(
        True, "DNs outside the product's valid range (C2 L2: 7273..43636) are invalid")


@dataclass(frozen=True)
class GridConfig:
    align: bool = setting(True, "reproject scenes on other grids onto the target grid; false = "
                          "refuse them with an error")
    like: str | None = setting(
        None, "path of a raster whose grid (CRS, transform, size) is the target; null = derive "
        "from the scenes", path=True, untrusted=True)
    crs: str | None = setting(
        None, "target CRS, e.g. EPSG:32633; null = the CRS of the most common scene grid")
    resolution: float | None = setting(
        None, "target pixel size in CRS units; null = that of the most common grid")
    extent: str = setting("union", "union (all footprints) or intersection (only where every "
                          "scene has pixels)", choices=("union", "intersection"))


@dataclass(frozen=True)
class StacConfig:
    signer: str = setting(
        "none", "signs asset URLs before reading: none, planetary_computer (pip install "
        "planetary-computer) or module:function", untrusted=True)


@dataclass(frozen=True)
class ScenesConfig:
    profile: str = setting(
        "auto", "sensor profile: auto (try all shipped), landsat_c2l2, landsat_c1l1, "
        "landsat_pre_l1, fmask_per_date, per_date_folders, or a path to a profile YAML",
        path=True)
    bands: tuple[str, ...] = setting(
        ("blue", "green", "red", "nir", "swir1", "swir2"), "common band names to stack, in this "
        "order (must exist in every scene)",
        Check(bool, "the list is empty; name at least one band", "not empty"))
    chunk_size: int = setting(
        1024, "dask chunk size in pixels (y and x); memory per worker ~ (bands+1) * "
        "chunk_size^2 * 4 bytes", at_least(64, "pixels"))
    mask: MaskConfig = section(MaskConfig, "which observations count as valid")
    grid: GridConfig = section(GridConfig, "the one grid all dates are stacked on")
    stac: StacConfig = section(StacConfig, "SCENES that are STAC documents "
                               "(ItemCollection/Item/Catalog .json files or URLs)")


# ---------------------------------------------------------------------------------- prepare
@dataclass(frozen=True)
class LabelsConfig:
    column: str | None = setting(
        None, "vector labels: column with class codes (integers) or class names; null = first "
        "of class_code, code, class, classvalue, label, id")
    name_column: str | None = setting(
        None, "vector labels: column with class names for a derived class table; null = "
        "class_name, name or a text class column")
    layer: str | None = setting(None, "GeoPackage layer; null = the only (or first) layer")
    nodata: float | None = setting(
        None, "raster labels: value meaning \"no label\"; null = the raster's nodata tag")
    overlap: str = setting(
        "ignore", "overlapping polygons of different classes: ignore (no label there), smallest "
        "(smaller polygon wins), first, last (file order)",
        choices=("ignore", "smallest", "first", "last"))
    all_touched: bool = setting(
        False, "rasterise every pixel a polygon touches (true) or only pixels whose centre is "
        "inside (false)")
    erode: int = setting(
        0, "drop labels within this many pixels of another class or of unlabelled ground "
        "(mixed pixels)", at_least(0, "pixels"))
    drop_suspect: bool = setting(
        False, "drop the samples that a self-organising map marks suspect (landcover "
        "check-samples, settings under prepare.check_samples); a fixed test split is kept")


@dataclass(frozen=True)
class CheckSamplesConfig:
    grid: int | None = setting(
        None, "SOM neurons a side; null = sqrt(5 sqrt(pixels)), 4 to 30",
        within(2, 100))
    iterations: int | None = setting(
        None, "SOM training steps; null = 10 per pixel, 20,000 to 200,000", at_least(1))
    sigma: float | None = setting(
        None, "initial SOM neighbourhood width in neurons; null = grid / 4", more_than(0))
    radius: float = setting(
        1.0, "neurons around a sample's neuron whose pixels vote on its class",
        at_least(0, "neurons"))
    prior_weight: float = setting(
        1.0, "weight of the class shares of all samples in each neuron's vote", at_least(0))
    suspect: float = setting(
        0.2, "a sample whose own class has less probability than this in its neighbourhood "
        "(and another class more) is suspect", within(0, 1))
    doubtful: float = setting(0.5, "below this it is doubtful", within(0, 1))
    per_sample: int = setting(100, "pixels read per sample at most", at_least(1))
    seed: int = setting(0, "seed of every random draw of the check", at_least(0))


@dataclass(frozen=True)
class PatchesConfig:
    size: int = setting(30, "window side in pixels", at_least(4))
    stride: int = setting(
        30, "step between windows in pixels (less than size = overlapping windows)", at_least(1))
    min_labelled: float = setting(
        0.1, "cut a window for a split when at least this share of its pixels are labelled "
        "pixels of that split, or when it holds labelled pixels no such window covers (so no "
        "label is lost)", within(0, 1))
    min_valid: float = setting(
        0.0, "... and at least this share of the observations (pixel x date) of its labelled "
        "pixels is valid; 0 keeps every label (pixels without min_valid_dates valid observations "
        "are ignored anyway); raise it to drop mostly cloudy windows", within(0, 1))
    tile_size: int = setting(
        480, "pixels per side read at once for all dates (rounded down to a multiple of stride); "
        "memory ~ dates * (bands+1) * tile_size^2 * 4 bytes per worker")


@dataclass(frozen=True)
class FeaturesConfig:
    fill: str = setting(
        "zero", "invalid observations: zero (the band mean after normalisation) or linear "
        "(interpolated in time, nearest at the ends)", choices=features.FILLS)
    doy: bool = setting(True, "add day-of-year as sin and cos channels")
    min_date_valid: float = setting(
        0.05, "drop dates whose share of valid observations in the candidate windows is below "
        "this", within(0, 1))
    min_valid_dates: int = setting(
        1, "pixels with fewer valid observations than this (over the kept dates) get the ignore "
        "label", at_least(1))


def _fractions_ok(f: tuple[float, ...]) -> bool:
    return (len(f) in (2, 3) and all(x >= 0 for x in f) and f[0] > 0
            and abs(sum(f) - 1.0) < 1e-6)


@dataclass(frozen=True)
class SplitConfig:
    by: str = setting(
        "blocks", "blocks (squares of block_size px), column (a column of the vector labels: "
        "field or polygon ids; values train/validation/test/none are fixed assignments), raster "
        "(a raster of split codes: 1 train, 2 validation, 3 test, 0 none)",
        choices=("blocks", "column", "raster"))
    block_size: int = setting(
        120, "by blocks: side of the square groups in pixels", at_least(1, "pixels"))
    column: str | None = setting(
        None, "by column: the column of group ids; null = every feature (polygon, point) is its "
        "own group")
    raster: str | None = setting(
        None, "by raster: path of the split-code raster (any grid; nearest resampling)",
        path=True)
    gap: int = setting(
        0, "a buffer: labelled pixels within this many pixels of another split's labelled pixel "
        "are dropped", at_least(0, "pixels"))
    fractions: tuple[float, ...] = setting(
        (0.7, 0.2, 0.1), "share of the labelled pixels of every class for [train, validation, "
        "test] (test may be left out)",
        Check(_fractions_ok, "must be [train, validation] or [train, validation, test], "
              "non-negative, train > 0, summing to 1", "2 or 3 shares, train > 0, sum 1"))
    seed: int = setting(0, "random order of the groups in the stratified assignment")


@dataclass(frozen=True)
class WeightsConfig:
    mode: str = setting(
        "effective", "balanced (n / (K n_c)), inverse_sqrt (1 / sqrt(n_c)), effective (inverse "
        "effective number of samples, Cui et al. 2019), uniform (1), or manual; over the training "
        "split's unique pixels, K = classes with training pixels, scaled to a mean pixel weight "
        "of 1", choices=("balanced", "inverse_sqrt", "effective", "uniform", "manual"))
    cap: float = setting(10.0, "upper limit of any class weight", at_least(1))
    beta: float = setting(
        0.999, "mode effective: (1 - beta) / (1 - beta^n_c)", within(0, 1, "()"))
    manual: dict[int, float] = setting(
        {}, "mode manual: {class code: weight}; classes left out get 1",
        each_value(at_least(0), "weights"))


@dataclass(frozen=True)
class PrepareConfig:
    classes: str | None = setting(
        None, "class table YAML (list of {code, name, color}); null = derive it from the labels",
        path=True)
    labels: LabelsConfig = section(LabelsConfig, "reading and rasterising the labels")
    check_samples: CheckSamplesConfig = section(
        CheckSamplesConfig, "the sample check of landcover check-samples and "
        "prepare.labels.drop_suspect (a self-organising map over the labelled pixel series)")
    patches: PatchesConfig = section(PatchesConfig, "spatio-temporal windows cut from the stack")
    features: FeaturesConfig = section(FeaturesConfig, "what the model sees per date")
    split: SplitConfig = section(
        SplitConfig, "spatially disjoint train / validation / test split; every labelled pixel "
        "belongs to one group, and a group goes whole to one split")
    weights: WeightsConfig = section(
        WeightsConfig, "per-pixel sample weights (0 where the label is ignored)")


# ------------------------------------------------------------------------------------ train
def _architecture_help() -> str:
    """The registry's architectures (landcover.models names them; this module does not)."""
    names = ", ".join(f"{a.name}{' (auto network)' if a.default else ''}"
                      f"{' (pixel classifier)' if a.pixel else ''}"
                      for a in models.architectures())
    return ("auto (the auto network and the pixel classifiers scored on the same held-out "
            f"pixels, the best kept: docs/training.md) or one architecture: {names}; the network "
            "keys below do not apply to pixel classifiers; 'landcover train --help' and "
            "docs/models.md describe each")


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = setting("auto", _architecture_help,
                                choices=lambda: (*models.architecture_names(), "auto"))
    filters: int = setting(
        16, "filters per ConvLSTM layer; U-Nets and U-TAE: filters of the first level, doubled "
        "per level; L-TAE: channels per attention head", at_least(1))
    layers: int = setting(
        3, "ConvLSTM: number of ConvLSTM2D layers; U-Nets: number of down-sampling levels",
        Check(lambda v: 1 <= v <= 6, "must be between 1 and 6", "1 to 6"))
    kernel: int = setting(3, "convolution kernel size (odd)",
                          odd(1, "must be an odd number (1, 3, 5, ...)"))
    head_kernel: int = setting(1, "kernel of the final convolution to class logits (1 or 3)",
                               odd(1, "must be an odd number (1, 3, ...)"))
    head_units: int | None = setting(
        None, "hidden units of a 1x1 convolution (ReLU) before the logits; 0 = none, the logits "
        "straight from the network's features; null = 64 for a frozen pretrained encoder "
        "(train.pretrain), else 0 (docs/training.md)", at_least(0, low_means="none"))
    dropout: float = setting(
        0.0, "dropout rate (ConvLSTM input dropout; U-Net spatial dropout)",
        within(0, 1, "[)"))
    norm: str = setting(
        "layer", "normalisation after each ConvLSTM layer / convolution: layer (each pixel's "
        "channels; the same in training and inference), group (groups of 4 channels over the "
        "patch), batch (batch statistics in training, moving averages in inference: unreliable "
        "on small datasets), none", choices=models.NORMS)
    heads: int = setting(
        models.DEFAULT_HEADS, "L-TAE, U-TAE: attention heads (channel groups, one learned master "
        "query each); U-TAE uses gcd(heads, filters)")
    key_dim: int = setting(
        models.DEFAULT_KEY_DIM, "L-TAE, U-TAE: dimension of the attention keys and queries "
        "(L-TAE: heads x filters channels in all)")


@dataclass(frozen=True)
class AutoConfig:
    max_minutes: float = setting(
        10.0, "budget of auto's cross-validation of the network (projected from the first "
        "batches of the first fold; beyond it the network is not a candidate)", more_than(0))


@dataclass(frozen=True)
class LossConfig:
    kind: str = setting(
        "ce", "ce (cross-entropy from logits), focal, dice, or ce+dice; every kind is masked and "
        "weighted the same way", choices=contract.LOSS_KINDS)
    class_weights: bool = setting(
        True, "use the dataset's per-pixel class weights; false = weight 1 on every valid pixel "
        "(mask only)")
    focal_gamma: float = setting(
        2.0, "focal loss: (1 - p)^gamma down-weighting of easy pixels", at_least(0))
    dice_weight: float = setting(1.0, "ce+dice: weight of the Dice term", at_least(0))


@dataclass(frozen=True)
class AugmentConfig:
    flips: bool = setting(True, "random horizontal flips")
    rotations: bool = setting(True, "random 90-degree rotations")
    drop_dates: float = setting(
        0.0, "probability of hiding each date of a sample (set to missing: bands 0, valid 0); at "
        "least one date is kept", within(0, 1, "[)"))


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = section(ModelConfig, "the network; all output class logits (no softmax)")
    loss: LossConfig = section(LossConfig, "masked loss: pixels with the ignore label (255) or "
                               "weight 0 contribute nothing")
    augment: AugmentConfig = section(AugmentConfig, "applied identically to inputs, labels and "
                                     "weights (training split only)")
    epochs: int = setting(30, "maximum number of epochs", at_least(1))
    min_epoch_steps: int = setting(
        20, "an epoch repeats the training split (reshuffled, re-augmented) until it has at least "
        "this many optimiser steps, so small datasets get enough steps; 0 = one pass",
        at_least(0, "steps", low_means="off"))
    batch_size: int = setting(16, "patches per batch", at_least(1))
    learning_rate: float = setting(0.003, "Adam learning rate (peak of the schedule)",
                                   more_than(0))
    schedule: str = setting(
        "cosine", "cosine (warm-up, then cosine decay to lr_floor x learning_rate at the last "
        "epoch) or constant", choices=("cosine", "constant"))
    warmup_epochs: int = setting(
        1, "linear warm-up from learning_rate / 10 over this many epochs", at_least(0, "epochs"))
    lr_floor: float = setting(
        0.05, "the cosine schedule ends at this fraction of learning_rate, not at 0",
        within(0, 1, "[)"))
    patience: int = setting(
        10, "early stopping: epochs without a better validation mIoU; 0 = off",
        at_least(0, "epochs", low_means="off"))
    min_epochs: int = setting(10, "early stopping never stops before this many epochs",
                              at_least(0, "epochs"))
    baseline: str = setting(
        "random_forest", "random_forest: also fit a per-pixel random forest (scikit-learn, 100 "
        "trees, up to 50,000 training pixels) on the same features and compare it with the "
        "network on the same validation and test pixels (report.md in the bundle); none",
        choices=("random_forest", "none"))
    shuffle_chunks: int = setting(
        8, "stored chunks (32 patches each) read and shuffled together; larger = better mixing, "
        "more memory", at_least(1))
    seed: int = setting(0, "seeds data order, augmentation and weight initialisation")
    deterministic: bool = setting(
        True, "deterministic TensorFlow ops (same result for the same seed, also after --resume)")
    mixed_precision: bool = setting(
        False, "float16 compute on a GPU (ignored with a warning on a CPU)")
    jit_compile: bool = setting(
        False, "XLA compilation of the training step (slower on CPUs; try it on GPUs)")
    estimate: str = setting(
        "auto", "with architecture auto: holdout (validation split), kfold (folds of whole groups "
        "of train + validation), auto (kfold when the validation split has < 5 groups or "
        "< 1000 px)", choices=("auto", "holdout", "kfold"))
    folds: int = setting(5, "cross-validation folds (whole spatial groups)", at_least(2))
    auto: AutoConfig = section(AutoConfig, "train.model.architecture=auto")
    pretrain: str = setting(
        "none", "start the network's encoder from a pretrained one: none, a folder written by "
        "'landcover pretrain', or auto (pretrain on the dataset's own scenes with the pretrain.* "
        "settings, kept beside the dataset and reused); with architecture auto the pretrained "
        "network is one more candidate (docs/training.md)", path=True)
    pretrain_mode: str = setting(
        "auto", "with train.pretrain: frozen (the pretrained encoder is kept, only the head "
        "trains), finetune (every weight trains), staged (frozen, then every weight for "
        "train.finetune_epochs at train.finetune_lr_scale x the rate) or auto (finetune from "
        "3,000 labelled training pixels on, else frozen: measured on maipo, docs/training.md)",
        choices=("auto", "frozen", "finetune", "staged"))
    finetune_epochs: int = setting(
        10, "train.pretrain_mode staged: epochs of the second stage, after the head trained on "
        "the frozen encoder; its best epoch is kept only where it scores better", at_least(1))
    finetune_lr_scale: float = setting(
        0.1, "train.pretrain_mode staged: the second stage's learning rate as a fraction of "
        "train.learning_rate (cosine decay from there, no warm-up)", within(0, 1, "(]"))


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = setting(20, "maximum number of epochs over the sampled windows", at_least(1))
    batch_size: int = setting(16, "windows per batch", at_least(1))
    learning_rate: float = setting(0.001, "Adam learning rate (cosine decay to a tenth)",
                                   more_than(0))
    hide: float = setting(
        0.3, "share of the valid observations (pixel x date) hidden from the encoder and "
        "reconstructed", within(0, 1, "()"))
    hide_bands: float = setting(
        0.1, "share of the bands of the other valid observations hidden (set to the mean) and "
        "reconstructed", within(0, 1, "[)"))
    max_pixels: int = setting(
        1_000_000, "window pixels sampled from the stack at most (spread over its blocks)",
        at_least(1))
    max_minutes: float = setting(
        20.0, "time budget: no epoch starts that would end after it (projected)", more_than(0))
    seed: int = setting(0, "seeds the windows drawn, their order and the hidden observations")


# --------------------------------------------------------------------------------- classify
@dataclass(frozen=True)
class SmoothConfig:
    enabled: bool = setting(
        False, "smooth every classification (--smooth turns it on for one run)")
    window: int = setting(  # measured: better than sits' 9/20 on the demo, close on maipo
        5, "side of the square neighbourhood in pixels (odd); the blocks read a halo of "
        "window // 2 (sits: 9)",
        odd(3, "must be an odd number of pixels, 3 or more (9 = a 9 x 9 neighbourhood)"))
    neigh_fraction: float = setting(
        0.5, "fraction of the valid neighbours, those with the highest logit of the class, that "
        "form the prior (mean and variance)", within(0, 1, "(]"))
    smoothness: float = setting(
        2.0, "variance of the pixel's own logit, per class (the likelihood): larger = smoother, "
        "the neighbours weigh more (sits: 20)", more_than(0))
    smoothness_by_class: dict[int, float] = setting(
        {}, "{class code: smoothness} overriding smoothness for some classes, e.g. {7: 5.0} keeps "
        "a rare, small class sharper", each_value(more_than(0)))


@dataclass(frozen=True)
class ClassifyConfig:
    # Tiling defaults measured on the demo and sperrorest-maipo (README, "Tiling"): null = derived
    window: int | None = setting(
        None, "prediction window in pixels; null = at most 256, the size whose lattice predicts "
        "the fewest pixels for the grid (the patch size for norm: group networks)",
        at_least(4, "pixels", null="at most 256, fitted to the grid"))
    overlap: int | None = setting(
        None, "pixels shared by neighbouring windows, half on each side of a window's kept "
        "pixels; null = 16 (8 px of context: measured, README \"Tiling\")",
        at_least(0, "pixels", null="16, at most half the window"))
    blend: int = setting(
        0, "width of a sin^2-blended seam inside the overlap; 0 = each pixel from the one window "
        "where it lies furthest from the edge", at_least(0, "pixels", low_means="no blending"))
    block_size: int | None = setting(
        None, "pixels per side of a dask block (one task: read with context, predict, write), "
        "rounded down to a multiple of the stride; null = 1024 for up to 12 dates, 1024 x "
        "sqrt(12 / dates) beyond (flat memory)",
        at_least(64, "pixels", null="from the number of dates"))
    batch_pixels: int | None = setting(
        None, "window pixels per model call; null = 65,536 on a CPU (one 256 px window: the "
        "fastest measured on a 2-core CPU), 1,048,576 (16 such windows) where an NVIDIA GPU is "
        "present (16-32 windows a call ran the bare network at 89-94 Mpx/s on an H200)",
        at_least(1, null="65,536 on a CPU, 1,048,576 with an NVIDIA GPU"))
    batch_size: int | None = setting(
        None, "windows per model call; null = from batch_pixels",
        at_least(1, null="from classify.batch_pixels"))
    precision: str = setting(
        "auto", "auto (bfloat16 on a GPU with native bfloat16, and on a CPU with AMX or AVX-512 "
        "BF16 where a one-off cached benchmark finds it faster; else float32: README \"Tiling\"), "
        "float32, bfloat16 or float16 (Keras mixed precision: float32 weights)", choices=("auto", "float32", "bfloat16", "float16"))
    features_on: str = setting(
        "auto", "where a window's model inputs are made: model (the digital numbers and validity "
        "sent in their own types, the features made inside the network with keras.ops: a sixth "
        "of the bytes to a GPU; needs fill: zero and one scene per date), host (float32 features "
        "made in NumPy and sent) or auto (model where it can, else host; the same maps: README "
        "\"Classifying\")", choices=("auto", "host", "model"))
    probability_dtype: str = setting(
        "uint8", "--probabilities: uint8 (0-250 = p x 250, nodata 255) or uint16 (0-10000 = p x "
        "10000, nodata 65535)", choices=tuple(contract.PROBABILITY_SCALE))
    uncertainty: str = setting(
        "entropy", "--probabilities' last band: entropy (normalised Shannon entropy, 0 = certain, "
        "1 = uniform) or margin (1 - (p1 - p2))", choices=contract.UNCERTAINTIES)
    quicklook: bool = setting(
        True, "write OUT.quicklook.png (map with a legend) next to the GeoTIFF")
    smooth: SmoothConfig = section(
        SmoothConfig, "Bayesian spatial smoothing of the probabilities before the map (Camara et "
        "al.; sits_smooth); also --smooth, and 'landcover smooth'")


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration; one attribute per stage."""

    scenes: ScenesConfig = section(ScenesConfig, "reading scenes into lazy (time, band, y, x) "
                                   "stacks")
    prepare: PrepareConfig = section(PrepareConfig, "landcover prepare: labels + scenes -> a Zarr "
                                     "dataset of patches")
    train: TrainConfig = section(TrainConfig, "landcover train: a prepared dataset -> a model "
                                 "bundle")
    pretrain: PretrainConfig = section(PretrainConfig, "landcover pretrain: scenes -> a network "
                                       "encoder trained without labels (masked observations "
                                       "reconstructed)")
    classify: ClassifyConfig = section(ClassifyConfig, "landcover classify: scenes + a model "
                                       "bundle -> a classification GeoTIFF")

    def to_dict(self) -> dict:
        return _to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _to_plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj
