"""Sensor profiles: small YAML files that say how a scene layout is read.

A profile names the regex that recognises a scene ID (and its date), the band files of each sensor by
common name (blue, green, red, nir, swir1, swir2), how DNs become reflectance, the nodata value and valid
DN range, and the quality layer with its decoding. Profiles ship in ``configs/profiles/``:
``landsat_c2l2`` (Landsat 4-9 Collection 2 Level-2), ``landsat_c1l1`` (Landsat 8 Collection 1 Level-1
with BQA) and ``fmask_per_date`` (per-date band files with an Fmask layer). A user can pass the path of
their own YAML as ``scenes.profile``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


from landcover import qa
from landcover.config import read_yaml
from landcover.errors import ProfileError

COMMON_BANDS = ("coastal", "blue", "green", "red", "nir", "swir1", "swir2")


def config_dir() -> Path:
    """The ``configs`` folder: inside the installed package, or the source checkout's."""
    packaged = Path(__file__).parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Profile:
    """A validated sensor profile (see ``configs/profiles/*.yaml`` for the documented keys)."""

    name: str
    description: str
    id_pattern: str
    date_format: str
    band_file: str
    sensors: dict
    scale: float
    offset: float
    nodata: float | None
    valid_range: tuple[float, float] | None
    metadata: tuple[str, ...] = ()
    mtl_scale: dict | None = None
    optional_bands: bool = False
    mask: dict | None = None
    saturation: dict | None = None
    source: str = ""
    regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "regex", re.compile(self.id_pattern))

    def match(self, name: str) -> re.Match | None:
        """Search ``name`` for a scene ID of this profile."""
        return self.regex.search(name)


_REQUIRED = ("name", "id_pattern", "date_format", "band_file", "sensors", "scale", "offset")
_OPTIONAL = ("description", "nodata", "valid_range", "metadata", "mtl_scale", "optional_bands",
             "mask", "saturation")


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile YAML (``yaml.safe_load``); errors name the file and the key."""
    path = Path(path)
    raw = read_yaml(path, ProfileError, "sensor profile")
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a sensor profile must be a mapping of keys")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ProfileError(f"{path}: unknown key {unknown[0]!r}; known keys: "
                           f"{', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ProfileError(f"{path}: missing key {missing[0]!r}")
    try:
        re.compile(raw["id_pattern"])
    except re.error as exc:
        raise ProfileError(f"{path}: id_pattern is not a valid regex ({exc})") from None
    if "date" not in re.compile(raw["id_pattern"]).groupindex:
        raise ProfileError(f"{path}: id_pattern needs a named group (?P<date>...)")
    if "{band}" not in raw["band_file"]:
        raise ProfileError(f"{path}: band_file must contain {{band}}")
    sensors = raw["sensors"]
    if not isinstance(sensors, dict) or not sensors:
        raise ProfileError(f"{path}: sensors must map sensor codes to {{band name: file suffix}}")
    for sensor, bands in sensors.items():
        bad = [b for b in (bands or {}) if b not in COMMON_BANDS]
        if bad:
            raise ProfileError(f"{path}: sensors.{sensor}: unknown band name {bad[0]!r}; use "
                               f"{', '.join(COMMON_BANDS)}")
    mask = raw.get("mask")
    if mask is not None:
        if "file" not in mask or mask.get("kind") not in qa.MASK_KINDS:
            raise ProfileError(f"{path}: mask needs 'file' and 'kind' (one of "
                               f"{', '.join(qa.MASK_KINDS)})")
        if mask["kind"] == "codes" and not mask.get("codes"):
            raise ProfileError(f"{path}: mask.kind 'codes' needs mask.codes {{flag: [codes]}}")
    vr = raw.get("valid_range")
    metadata = raw.get("metadata") or []
    return Profile(
        name=str(raw["name"]), description=str(raw.get("description", "")),
        id_pattern=raw["id_pattern"], date_format=raw["date_format"], band_file=raw["band_file"],
        sensors={str(k): dict(v) for k, v in sensors.items()}, scale=float(raw["scale"]),
        offset=float(raw["offset"]), nodata=raw.get("nodata"),
        valid_range=tuple(float(v) for v in vr) if vr else None,
        metadata=tuple([metadata] if isinstance(metadata, str) else metadata),
        mtl_scale=raw.get("mtl_scale"), optional_bands=bool(raw.get("optional_bands", False)),
        mask=mask, saturation=raw.get("saturation"), source=str(path),
    )


@lru_cache(maxsize=None)
def shipped_profiles() -> tuple[Profile, ...]:
    """Profiles in ``configs/profiles``, Collection 2 first (the order auto-detection tries)."""
    order = {"landsat_c2l2": 0, "landsat_c1l1": 1}
    paths = sorted((config_dir() / "profiles").glob("*.yaml"),
                   key=lambda p: (order.get(p.stem, 9), p.stem))
    return tuple(load_profile(p) for p in paths)


def resolve_profiles(spec: str) -> tuple[Profile, ...]:
    """Profiles to try for ``scenes.profile``: ``auto`` (all shipped), a shipped name, or a YAML path."""
    if spec == "auto":
        return shipped_profiles()
    for profile in shipped_profiles():
        if profile.name == spec:
            return (profile,)
    if spec.endswith((".yaml", ".yml")) or Path(spec).exists():
        return (load_profile(spec),)
    names = ", ".join(p.name for p in shipped_profiles())
    raise ProfileError(f"scenes.profile: unknown profile {spec!r}; use auto, one of {names}, "
                       "or the path of a profile YAML")
