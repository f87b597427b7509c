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

from landcover import qa
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
class ScenesConfig:
    profile: str = "auto"
    bands: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")
    chunk_size: int = 1024
    mask: MaskConfig = field(default_factory=MaskConfig)
    grid: GridConfig = field(default_factory=GridConfig)


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration; one attribute per stage."""

    scenes: ScenesConfig = field(default_factory=ScenesConfig)

    def to_dict(self) -> dict:
        return _to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_CHOICES = {"scenes.grid.extent": ("union", "intersection")}


def _to_plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
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
            if key in _CHOICES and kwargs[name] not in _CHOICES[key]:
                raise ConfigError(f"{key}: {kwargs[name]!r} is not one of "
                                  f"{', '.join(_CHOICES[key])}")
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


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Resolve the configuration: built-in defaults, then the YAML file, then ``--set`` overrides.

    Raises:
        ConfigError: unreadable file, unknown key, or a value of the wrong type.
    """
    data: dict = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"--config {path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {path}: not valid YAML ({exc})") from None
        data = _merge(data, loaded or {})
    for text in overrides:
        data = _merge(data, parse_override(text))
    cfg = _build(Config, data, "")
    qa.validate_flags(cfg.scenes.mask.invalid_flags)
    if cfg.scenes.chunk_size < 64:
        raise ConfigError(f"scenes.chunk_size: {cfg.scenes.chunk_size} is too small; use 64 or more")
    return cfg
