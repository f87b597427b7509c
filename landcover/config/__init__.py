"""Configuration: typed, frozen dataclasses per stage, built from defaults < ``--config`` YAML < ``--set``.

Every key is declared once, in :mod:`landcover.config.schema`: type, default, check and help.
The checks here are derived from those declarations; ``configs/default.yaml`` and the README's
configuration table are written from them (``python -m landcover.config --write``, a test keeps
them equal). Unknown keys and values of the wrong type are a :class:`~landcover.errors.ConfigError`
naming the key. YAML is only ever read with ``yaml.safe_load``.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from landcover import qa
from landcover.config.schema import (
    AugmentConfig,
    AutoConfig,
    ClassifyConfig,
    Config,
    FeaturesConfig,
    GridConfig,
    LabelsConfig,
    LossConfig,
    MaskConfig,
    ModelConfig,
    PatchesConfig,
    PrepareConfig,
    PretrainConfig,
    ScenesConfig,
    SmoothConfig,
    SplitConfig,
    StacConfig,
    TrainConfig,
    WeightsConfig,
    choices_of,
    default_of,
    walk,
)
from landcover.errors import ConfigError

__all__ = [
    "PATH_KEYS", "UNTRUSTED_KEYS", "AugmentConfig", "AutoConfig", "ClassifyConfig", "Config",
    "FeaturesConfig", "GridConfig", "LabelsConfig", "LossConfig", "MaskConfig", "ModelConfig",
    "PatchesConfig", "PrepareConfig", "PretrainConfig", "ScenesConfig", "SmoothConfig", "SplitConfig",
    "StacConfig", "TrainConfig", "WeightsConfig", "check", "cross_checks", "load_config",
    "parse_override", "read_yaml", "trusted_base",
]


def _keys_marked(flag: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(key.split(".")) for key, f, _ in walk(Config) if f.metadata.get(flag))


UNTRUSTED_KEYS = _keys_marked("untrusted")
"""Settings that run code (``scenes.stac.signer``: any ``module:function``) or open an address
(``scenes.grid.like``: any path or ``/vsicurl/`` URL), marked ``untrusted`` in the schema. They
come only from the user's own ``--config`` or ``--set``, never from a model bundle's saved config
(see :func:`trusted_base`)."""

PATH_KEYS = _keys_marked("path")
"""Settings that name a file, marked ``path`` in the schema: relative to the config file."""


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
    return cls(**kwargs)


def check(cfg, prefix: str = "") -> None:
    """The declared checks of every key of ``cfg`` (its ``choices`` and ``check``); a value
    equal to its default is not asked (a test keeps every default valid), nor is null.

    Raises:
        ConfigError: ``"KEY: what is wrong"`` for the first key that fails.
    """
    for f in dataclasses.fields(cfg):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check(value, key)
            continue
        if value is None or value == default_of(f):
            continue
        choices = choices_of(f)
        if choices is not None and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        test = f.metadata.get("check")
        if test is not None and not test.test(value):
            raise ConfigError(f"{key}: {test.message}")


def cross_checks(cfg: Config) -> None:
    """The checks that involve more than one key (or a list of names known elsewhere)."""
    qa.validate_flags(cfg.scenes.mask.invalid_flags)
    p, c = cfg.prepare, cfg.classify
    checks = [
        (p.patches.tile_size >= p.patches.size, "prepare.patches.tile_size",
         "must be at least prepare.patches.size"),
        (p.split.by != "raster" or bool(p.split.raster), "prepare.split.raster",
         ("is empty; give a raster of split codes (1 train, 2 validation, 3 test, 0 none) for "
          "prepare.split.by=raster")),
        (p.weights.mode != "manual" or bool(p.weights.manual), "prepare.weights.manual",
         "is empty; give {code: weight} for prepare.weights.mode=manual"),
        (c.window is None or c.overlap is None or c.overlap < c.window, "classify.overlap",
         "must be smaller than classify.window"),
        (c.overlap is None or c.blend <= c.overlap, "classify.blend",
         "must be at most classify.overlap (the seam is blended inside the overlap)"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{key}: {message}")


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


def trusted_base(saved, keys=UNTRUSTED_KEYS) -> tuple[dict, list[tuple[str, object]]]:
    """A copy of a bundle's saved config without ``keys``; ``(config, [(key, value dropped)])``
    (only values other than the default are listed). Not a mapping: an empty config."""
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
    check(cfg)
    cross_checks(cfg)
    return cfg
