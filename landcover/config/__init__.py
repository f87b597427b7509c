"""Configuration: typed, frozen dataclasses per stage, built from defaults < ``--config`` YAML < ``--set``.

``configs/default.yaml`` documents every key with its default (a test keeps it equal to these
dataclasses). Unknown keys and values of the wrong type are a :class:`~landcover.errors.ConfigError`
naming the key. YAML is only ever read with ``yaml.safe_load``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from landcover import contract, features, maps, models, qa
from landcover.errors import ConfigError


@dataclass(frozen=True)
class MaskConfig:
    invalid_flags: tuple[str, ...] = qa.DEFAULT_INVALID_FLAGS
    saturation: bool = True
    valid_range: bool = True


@dataclass(frozen=True)
class GridConfig:
    align: bool = True
    like: str | None = None
    crs: str | None = None
    resolution: float | None = None
    extent: str = "union"


@dataclass(frozen=True)
class StacConfig:
    signer: str = "none"


@dataclass(frozen=True)
class ScenesConfig:
    profile: str = "auto"
    bands: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")
    chunk_size: int = 1024
    mask: MaskConfig = field(default_factory=MaskConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    stac: StacConfig = field(default_factory=StacConfig)


@dataclass(frozen=True)
class LabelsConfig:
    column: str | None = None
    name_column: str | None = None
    layer: str | None = None
    nodata: float | None = None
    overlap: str = "ignore"
    all_touched: bool = False
    erode: int = 0


@dataclass(frozen=True)
class PatchesConfig:
    size: int = 30
    stride: int = 30
    min_labelled: float = 0.1
    min_valid: float = 0.0
    tile_size: int = 480


@dataclass(frozen=True)
class FeaturesConfig:
    fill: str = "zero"
    doy: bool = True
    min_date_valid: float = 0.05
    min_valid_dates: int = 1


@dataclass(frozen=True)
class SplitConfig:
    by: str = "blocks"
    block_size: int = 120
    column: str | None = None
    raster: str | None = None
    gap: int = 0
    fractions: tuple[float, ...] = (0.7, 0.2, 0.1)
    seed: int = 0


@dataclass(frozen=True)
class WeightsConfig:
    mode: str = "effective"
    cap: float = 10.0
    beta: float = 0.999
    manual: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PrepareConfig:
    classes: str | None = None
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    patches: PatchesConfig = field(default_factory=PatchesConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)


@dataclass(frozen=True)
class ModelConfig:
    # auto (landcover.auto): the default network and the pixel classifiers on the same held-out
    # pixels, the best kept; or one architecture of the registry (landcover.models)
    architecture: str = "auto"
    filters: int = 16
    layers: int = 3
    kernel: int = 3
    head_kernel: int = 1
    dropout: float = 0.0
    norm: str = "layer"
    heads: int = models.DEFAULT_HEADS  # temporal attention (models.ATTENTION_KEYS)
    key_dim: int = models.DEFAULT_KEY_DIM


@dataclass(frozen=True)
class AutoConfig:
    max_minutes: float = 10.0  # budget of train.model.architecture=auto's cross-validation


@dataclass(frozen=True)
class LossConfig:
    kind: str = "ce"
    class_weights: bool = True
    focal_gamma: float = 2.0
    dice_weight: float = 1.0


@dataclass(frozen=True)
class AugmentConfig:
    flips: bool = True
    rotations: bool = True
    drop_dates: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 30
    min_epoch_steps: int = 20
    batch_size: int = 16
    learning_rate: float = 0.003
    schedule: str = "cosine"
    warmup_epochs: int = 1
    lr_floor: float = 0.05
    patience: int = 10
    min_epochs: int = 10
    baseline: str = "random_forest"
    shuffle_chunks: int = 8
    seed: int = 0
    deterministic: bool = True
    mixed_precision: bool = False
    jit_compile: bool = False
    estimate: str = "auto"  # landcover.auto: auto, holdout or kfold
    folds: int = 5
    auto: AutoConfig = field(default_factory=AutoConfig)


@dataclass(frozen=True)
class SmoothConfig:
    enabled: bool = False
    window: int = 5  # measured: better than sits' 9/20 on the demo, close on maipo (README)
    neigh_fraction: float = 0.5
    smoothness: float = 2.0
    smoothness_by_class: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassifyConfig:
    # Tiling defaults measured on the demo and sperrorest-maipo (README, "Tiling"): null = derived
    window: int | None = None  # side of a prediction window (null: at most 256, fitted to the grid)
    overlap: int | None = None  # pixels two windows share (null: 16, at most half the window)
    blend: int = 0  # width of the blended seam inside the overlap (0: no blending)
    block_size: int | None = None  # pixels per block side (null: from the number of dates)
    batch_pixels: int = 65536  # window pixels per model call (one 256 px window)
    batch_size: int | None = None  # windows per model call (null: from batch_pixels)
    precision: str = "auto"  # auto, float32, bfloat16 or float16 (mixed precision)
    probability_dtype: str = "uint8"
    uncertainty: str = "entropy"
    quicklook: bool = True
    smooth: SmoothConfig = field(default_factory=SmoothConfig)


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration; one attribute per stage."""

    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)

    def to_dict(self) -> dict:
        return _to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_CHOICES = {
    "scenes.grid.extent": ("union", "intersection"),
    "prepare.labels.overlap": ("ignore", "smallest", "first", "last"),
    "prepare.features.fill": features.FILLS,
    "prepare.split.by": ("blocks", "column", "raster"),
    "prepare.weights.mode": ("balanced", "inverse_sqrt", "effective", "uniform", "manual"),
    "train.model.norm": models.NORMS,
    "train.baseline": ("random_forest", "none"),
    # the registry, when first used, and auto (landcover.auto: the best of the network and the
    # pixel classifiers on held-out pixels)
    "train.model.architecture": lambda: (*models.architecture_names(), "auto"),
    "train.estimate": ("auto", "holdout", "kfold"),
    "train.loss.kind": contract.LOSS_KINDS,
    "train.schedule": ("cosine", "constant"),
    "classify.probability_dtype": tuple(contract.PROBABILITY_SCALE),
    "classify.uncertainty": maps.UNCERTAINTIES,
    "classify.precision": ("auto", "float32", "bfloat16", "float16"),
}


def _choices(key: str) -> tuple[str, ...] | None:
    """The allowed values of ``key`` (None: any); a callable in ``_CHOICES`` is asked each time."""
    choices = _CHOICES.get(key)
    return tuple(choices()) if callable(choices) else choices


def _to_plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _coerce(value, hint, key: str):
    """Check/convert one value to the annotated type; errors name the key."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, e.g. {{7: 5.0}}, got {value!r}")
        return {_coerce(k, args[0], f"{key} key"): _coerce(v, args[1], f"{key}[{k}]")
                for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover


def _build(cls, data: Mapping, prefix: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown config key {where!r}; known keys here: {', '.join(names)}")
    kwargs = {}
    for name in names:
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, data[name] or {}, key)
        else:
            kwargs[name] = _coerce(data[name], hint, key)
            choices = _choices(key)
            if choices is not None and kwargs[name] not in choices:
                raise ConfigError(f"{key}: {kwargs[name]!r} is not one of {', '.join(choices)}")
    return cls(**kwargs)


def _merge(base: dict, extra: Mapping) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """``"scenes.grid.align=false"`` -> ``{"scenes": {"grid": {"align": False}}}`` (value as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set scenes.chunk_size=512")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: the key must look like section.name")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node: dict = {}
    out = node
    parts = key.split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return out


def read_yaml(path: str | Path, error: type[Exception], what: str):
    """``yaml.safe_load`` of a file; unreadable or invalid YAML raises ``error`` naming the file."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (YAML is UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None


UNTRUSTED_KEYS = (("scenes", "stac", "signer"), ("scenes", "grid", "like"))
"""Settings that run code (``scenes.stac.signer``: any ``module:function``) or open an address
(``scenes.grid.like``: any path or ``/vsicurl/`` URL). They come only from the user's own
``--config`` or ``--set``, never from a model bundle's saved config (see :func:`trusted_base`)."""


def trusted_base(saved, keys=UNTRUSTED_KEYS) -> tuple[dict, list[tuple[str, object]]]:
    """A copy of a bundle's saved config without ``keys``; ``(config, [(key, value dropped)])``
    (only values other than the default are listed). Not a mapping: an empty config."""
    import copy

    data = copy.deepcopy(dict(saved)) if isinstance(saved, Mapping) else {}
    dropped = []
    defaults = Config().to_dict()
    for path in keys:
        node, default = data, defaults
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, Mapping) else None
            default = default.get(key, {})
        if isinstance(node, dict) and path[-1] in node:
            value = node.pop(path[-1])
            if value != default.get(path[-1]):
                dropped.append((".".join(path), value))
    return data, dropped


PATH_KEYS = (("scenes", "profile"), ("scenes", "grid", "like"), ("prepare", "classes"),
             ("prepare", "split", "raster"))


def _relative_to(data, folder: Path):
    """Paths in a config file are relative to that file (when the file they name exists there)."""
    if not isinstance(data, Mapping):
        return data
    data = _merge({}, data)
    for keys in PATH_KEYS:
        node = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            value = Path(node[keys[-1]])
            if not value.is_absolute() and (folder / value).exists():
                node[keys[-1]] = str(folder / value)
    return data


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                base: Mapping | None = None) -> Config:
    """Resolve the configuration: built-in defaults, then ``base`` (e.g. the config saved in a model
    bundle), then the YAML file, then ``--set`` overrides.

    Raises:
        ConfigError: unreadable file, unknown key, or a value of the wrong type.
    """
    data: dict = _merge({}, base or {})
    if path is not None:
        loaded = read_yaml(path, ConfigError, "--config")
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: a config is a mapping of sections (scenes:, prepare:, "
                              f"train:, classify:), not a YAML {type(loaded).__name__}")
        data = _merge(data, _relative_to(loaded or {}, Path(path).parent))
    for text in overrides:
        data = _merge(data, parse_override(text))
    cfg = _build(Config, data, "")
    qa.validate_flags(cfg.scenes.mask.invalid_flags)
    if not cfg.scenes.bands:
        raise ConfigError("scenes.bands: the list is empty; name at least one band")
    if cfg.scenes.chunk_size < 64:
        raise ConfigError(f"scenes.chunk_size: {cfg.scenes.chunk_size} is too small; use 64 or more")
    _check_prepare(cfg.prepare)
    _check_train(cfg.train)
    _check_classify(cfg.classify)
    return cfg


def _raise_first(checks) -> None:
    """Raise a ConfigError naming the key of the first failed ``(ok, key, message)`` check."""
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{key}: {message}")


def _check_classify(c: ClassifyConfig) -> None:
    checks = [
        (c.window is None or c.window >= 4, "classify.window", "must be null (at most 256, "
         "fitted to the grid) or 4 or more pixels"),
        (c.overlap is None or c.overlap >= 0, "classify.overlap", "must be null (16, at most half "
         "the window) or 0 or more pixels"),
        (c.window is None or c.overlap is None or c.overlap < c.window, "classify.overlap",
         "must be smaller than classify.window"),
        (c.blend >= 0, "classify.blend", "must be 0 (no blending) or more pixels"),
        (c.overlap is None or c.blend <= c.overlap, "classify.blend",
         "must be at most classify.overlap (the seam is blended inside the overlap)"),
        (c.block_size is None or c.block_size >= 64, "classify.block_size",
         "must be null (from the number of dates) or 64 or more pixels"),
        (c.batch_pixels >= 1, "classify.batch_pixels", "must be 1 or more"),
        (c.batch_size is None or c.batch_size >= 1, "classify.batch_size",
         "must be null (from classify.batch_pixels) or 1 or more"),
        (c.smooth.window >= 3 and c.smooth.window % 2 == 1, "classify.smooth.window",
         "must be an odd number of pixels, 3 or more (9 = a 9 x 9 neighbourhood)"),
        (0.0 < c.smooth.neigh_fraction <= 1.0, "classify.smooth.neigh_fraction",
         "must be in (0, 1]"),
        (c.smooth.smoothness > 0, "classify.smooth.smoothness", "must be more than 0"),
        (all(v > 0 for v in c.smooth.smoothness_by_class.values()),
         "classify.smooth.smoothness_by_class", "values must be more than 0"),
    ]
    _raise_first(checks)


def _check_train(t: TrainConfig) -> None:
    checks = [
        (t.model.filters >= 1, "train.model.filters", "must be 1 or more"),
        (1 <= t.model.layers <= 6, "train.model.layers", "must be between 1 and 6"),
        (t.model.kernel >= 1 and t.model.kernel % 2 == 1, "train.model.kernel",
         "must be an odd number (1, 3, 5, ...)"),
        (t.model.head_kernel >= 1 and t.model.head_kernel % 2 == 1, "train.model.head_kernel",
         "must be an odd number (1, 3, ...)"),
        (0.0 <= t.model.dropout < 1.0, "train.model.dropout", "must be in [0, 1)"),
        (t.loss.focal_gamma >= 0, "train.loss.focal_gamma", "must be 0 or more"),
        (t.loss.dice_weight >= 0, "train.loss.dice_weight", "must be 0 or more"),
        (0.0 <= t.augment.drop_dates < 1.0, "train.augment.drop_dates", "must be in [0, 1)"),
        (t.epochs >= 1, "train.epochs", "must be 1 or more"),
        (t.folds >= 2, "train.folds", "must be 2 or more"),
        (t.auto.max_minutes > 0, "train.auto.max_minutes", "must be more than 0"),
        (t.min_epoch_steps >= 0, "train.min_epoch_steps", "must be 0 (off) or more steps"),
        (t.warmup_epochs >= 0, "train.warmup_epochs", "must be 0 or more epochs"),
        (0.0 <= t.lr_floor < 1.0, "train.lr_floor", "must be in [0, 1)"),
        (t.min_epochs >= 0, "train.min_epochs", "must be 0 or more epochs"),
        (t.batch_size >= 1, "train.batch_size", "must be 1 or more"),
        (t.learning_rate > 0, "train.learning_rate", "must be more than 0"),
        (t.patience >= 0, "train.patience", "must be 0 (off) or more epochs"),
        (t.shuffle_chunks >= 1, "train.shuffle_chunks", "must be 1 or more"),
    ]
    _raise_first(checks)


def _check_prepare(p: PrepareConfig) -> None:
    """Value checks that types alone cannot express; each error names its key."""
    checks = [
        (p.patches.size >= 4, "prepare.patches.size", "must be 4 or more"),
        (p.patches.stride >= 1, "prepare.patches.stride", "must be 1 or more"),
        (0.0 <= p.patches.min_labelled <= 1.0, "prepare.patches.min_labelled", "must be in [0, 1]"),
        (0.0 <= p.patches.min_valid <= 1.0, "prepare.patches.min_valid", "must be in [0, 1]"),
        (p.patches.tile_size >= p.patches.size, "prepare.patches.tile_size",
         "must be at least prepare.patches.size"),
        (0.0 <= p.features.min_date_valid <= 1.0, "prepare.features.min_date_valid",
         "must be in [0, 1]"),
        (p.features.min_valid_dates >= 1, "prepare.features.min_valid_dates", "must be 1 or more"),
        (p.labels.erode >= 0, "prepare.labels.erode", "must be 0 or more pixels"),
        (p.split.block_size >= 1, "prepare.split.block_size", "must be 1 or more pixels"),
        (p.split.by != "raster" or bool(p.split.raster), "prepare.split.raster",
         "is empty; give a raster of split codes (1 train, 2 validation, 3 test, 0 none) for "
         "prepare.split.by=raster"),
        (0.0 < p.weights.beta < 1.0, "prepare.weights.beta", "must be in (0, 1)"),
        (p.split.gap >= 0, "prepare.split.gap", "must be 0 or more pixels"),
        (len(p.split.fractions) in (2, 3) and all(f >= 0 for f in p.split.fractions)
         and p.split.fractions[0] > 0 and abs(sum(p.split.fractions) - 1.0) < 1e-6,
         "prepare.split.fractions", "must be [train, validation] or [train, validation, test], "
         "non-negative, train > 0, summing to 1"),
        (p.weights.cap >= 1.0, "prepare.weights.cap", "must be 1 or more"),
        (all(w >= 0 for w in p.weights.manual.values()), "prepare.weights.manual",
         "weights must be 0 or more"),
        (p.weights.mode != "manual" or bool(p.weights.manual), "prepare.weights.manual",
         "is empty; give {code: weight} for prepare.weights.mode=manual"),
    ]
    _raise_first(checks)
