"""Sensor profiles: small YAML files that say how a scene layout is read.

A profile names the regex that recognises a scene ID (and its date), the band files of each sensor
by band name, how DNs become reflectance, the nodata value and valid DN range, and the quality
layer with its decoding. Band names are free (``blue``, ``nir``, ``ndvi``, ``red-edge``, ``b2``
...): the stack and the outputs use them as given; :data:`COMMON_BANDS` are only the usual ones. A
layout whose IDs carry no sensor code (a folder named by its date) names it with the key ``sensor``.

Profiles ship in ``configs/profiles/``: ``landsat_c2l2`` (Landsat 4-9 Collection 2 Level-2),
``landsat_c1l1`` (Landsat 8 Collection 1 Level-1 with BQA), ``landsat_pre_l1`` (pre-collection
Landsat 4/5/7 Level-1), ``fmask_per_date`` (per-date band files with an Fmask layer) and
``per_date_folders`` (folders named by the date, ``B2.tif`` .. ``B7.tif``). A user can pass the
path of their own YAML as ``scenes.profile``. :func:`profile_record` and
:func:`profile_from_record` carry a profile inside a dataset or model bundle, so that it still
works when its YAML file is gone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from landcover import qa
from landcover.errors import ProfileError

COMMON_BANDS = ("coastal", "blue", "green", "red", "nir", "swir1", "swir2")
BAND_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Feature names the pipeline adds after the bands (landcover.prepare): no band may take them.
RESERVED_BAND_NAMES = ("valid", "doy_sin", "doy_cos")
# The order ``auto`` tries the shipped profiles in; others follow alphabetically, LAST at the end.
AUTO_ORDER = ("landsat_c2l2", "landsat_c1l1", "landsat_pre_l1", "fmask_per_date")
AUTO_LAST = ("per_date_folders",)
RECORD_KIND = "landcover.sensor_profile"


def config_dir() -> Path:
    """The ``configs`` folder: inside the installed package, or the source checkout's."""
    packaged = Path(__file__).parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Profile:
    """A validated sensor profile (see ``configs/profiles/*.yaml`` for the documented keys).

    ``default_sensor`` is the YAML key ``sensor``: the sensor code of scenes whose ID has no
    ``sensor`` group. ``text`` is the YAML the profile was read from (for :func:`profile_record`).
    """

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
    default_sensor: str | None = None
    text: str = field(default="", repr=False, compare=False)
    regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "regex", re.compile(self.id_pattern))

    def __dask_tokenize__(self):
        return RECORD_KIND, self.name, self.source, repr(self)

    def match(self, name: str) -> re.Match | None:
        """Search ``name`` for a scene ID of this profile."""
        return self.regex.search(name)

    @property
    def has_sensor_code(self) -> bool:
        """True when the scene IDs name the sensor (the pattern has a ``sensor`` group)."""
        return "sensor" in self.regex.groupindex

    def sensor_of(self, found: re.Match) -> str:
        """Sensor code of a match: its ``sensor`` group, else ``default_sensor``, else ``""``."""
        code = found.groupdict().get("sensor")
        return code if code is not None else (self.default_sensor or "")


_REQUIRED = ("name", "id_pattern", "date_format", "band_file", "sensors", "scale", "offset")
_OPTIONAL = ("description", "sensor", "nodata", "valid_range", "metadata", "mtl_scale",
             "optional_bands", "mask", "saturation")


def _check_sensors(sensors, where: str) -> dict:
    """``{sensor code: {band name: file suffix}}`` with every name and suffix checked."""
    if not isinstance(sensors, dict) or not sensors:
        raise ProfileError(f"{where}: sensors must map sensor codes to {{band name: file suffix}}")
    out = {}
    for sensor, bands in sensors.items():
        if not isinstance(bands, dict) or not bands:
            raise ProfileError(f"{where}: sensors.{sensor} must map band names to file suffixes, "
                               "e.g. {red: B4, nir: B5}")
        for band, suffix in bands.items():
            if not isinstance(band, str) or not BAND_NAME.fullmatch(band):
                raise ProfileError(
                    f"{where}: sensors.{sensor}: band name {band!r} is not a name; use letters, "
                    "digits, '_' or '-', starting with a letter or '_' (blue, ndvi, red-edge, b2)")
            if band in RESERVED_BAND_NAMES:
                raise ProfileError(f"{where}: sensors.{sensor}: band name {band!r} is reserved for "
                                   f"a feature ({', '.join(RESERVED_BAND_NAMES)}); rename the band")
            if isinstance(suffix, (dict, list, bool)) or suffix is None or str(suffix) == "":
                raise ProfileError(f"{where}: sensors.{sensor}.{band}: give the file suffix that "
                                   "replaces {band} in band_file, e.g. B4")
        out[str(sensor)] = {band: str(suffix) for band, suffix in bands.items()}
    return out


def _build(raw, where: str, *, source: str, text: str) -> Profile:
    """Validate a parsed profile mapping; every error names ``where`` and the key at fault."""
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: a sensor profile must be a mapping of keys")
    unknown = sorted(str(k) for k in set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r}; known keys: "
                           f"{', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ProfileError(f"{where}: missing key {missing[0]!r}")
    try:
        regex = re.compile(str(raw["id_pattern"]))
    except re.error as exc:
        raise ProfileError(f"{where}: id_pattern is not a valid regex ({exc})") from None
    if "date" not in regex.groupindex:
        raise ProfileError(f"{where}: id_pattern needs a named group (?P<date>...)")
    if "{band}" not in str(raw["band_file"]):
        raise ProfileError(f"{where}: band_file must contain {{band}}")
    sensors = _check_sensors(raw["sensors"], where)
    default = raw.get("sensor")
    if default is not None and str(default) not in sensors:
        raise ProfileError(f"{where}: sensor {default!r} is not one of sensors "
                           f"({', '.join(sensors)}); add it there or fix the name")
    if default is None and "sensor" not in regex.groupindex:
        if len(sensors) > 1:
            raise ProfileError(f"{where}: id_pattern has no (?P<sensor>...) group, so name the "
                               f"sensor of its scenes with sensor: (one of {', '.join(sensors)})")
        default = next(iter(sensors))
    mask = raw.get("mask")
    if mask is not None:
        if not isinstance(mask, dict) or "file" not in mask or \
                mask.get("kind") not in qa.MASK_KINDS:
            raise ProfileError(f"{where}: mask needs 'file' and 'kind' (one of "
                               f"{', '.join(qa.MASK_KINDS)})")
        if mask["kind"] == "codes" and not mask.get("codes"):
            raise ProfileError(f"{where}: mask.kind 'codes' needs mask.codes {{flag: [codes]}}")
    mtl_scale = raw.get("mtl_scale")
    if mtl_scale is not None and (not isinstance(mtl_scale, dict) or
                                  not {"mult", "add"} <= set(mtl_scale)):
        raise ProfileError(f"{where}: mtl_scale needs 'mult' and 'add' MTL keys with {{number}}, "
                           "e.g. REFLECTANCE_MULT_BAND_{number}")
    try:
        scale, offset = float(raw["scale"]), float(raw["offset"])
        vr = raw.get("valid_range")
        valid_range = tuple(float(v) for v in vr) if vr else None
        nodata = raw.get("nodata")
        nodata = None if nodata is None else float(nodata)
    except (TypeError, ValueError):
        raise ProfileError(f"{where}: scale, offset, nodata and valid_range must be numbers") \
            from None
    if valid_range is not None and len(valid_range) != 2:
        raise ProfileError(f"{where}: valid_range must be [low, high]")
    metadata = raw.get("metadata") or []
    return Profile(
        name=str(raw["name"]), description=str(raw.get("description", "")),
        id_pattern=str(raw["id_pattern"]), date_format=str(raw["date_format"]),
        band_file=str(raw["band_file"]), sensors=sensors, scale=scale, offset=offset,
        nodata=nodata, valid_range=valid_range,
        metadata=tuple([metadata] if isinstance(metadata, str) else metadata),
        mtl_scale=mtl_scale, optional_bands=bool(raw.get("optional_bands", False)),
        mask=mask, saturation=raw.get("saturation"), source=source,
        default_sensor=None if default is None else str(default), text=text,
    )


def _parse(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ProfileError(f"{where}: not valid YAML ({detail})") from None


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile YAML (``yaml.safe_load``); errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"sensor profile {path}: cannot read ({exc.strerror}); check "
                           "scenes.profile") from None
    return _build(_parse(text, str(path)), str(path), source=str(path), text=text)


@lru_cache(maxsize=None)
def shipped_profiles() -> tuple[Profile, ...]:
    """Profiles in ``configs/profiles``, in the order auto-detection tries them.

    Collection 2 first, then :data:`AUTO_ORDER`, the others alphabetically, and :data:`AUTO_LAST`
    (layouts with generic names, such as folders named by a date) at the very end.
    """
    def key(path: Path):
        if path.stem in AUTO_ORDER:
            return 0, AUTO_ORDER.index(path.stem), ""
        return (2 if path.stem in AUTO_LAST else 1), 0, path.stem

    paths = sorted((config_dir() / "profiles").glob("*.yaml"), key=key)
    return tuple(load_profile(p) for p in paths)


def resolve_profiles(spec: str | Profile | Sequence[Profile]) -> tuple[Profile, ...]:
    """Profiles to try for ``scenes.profile``.

    Args:
        spec: ``auto`` (all shipped), a shipped name, the path of a profile YAML, or
            :class:`Profile` objects (one or a sequence, e.g. from :func:`profile_from_record`).
    """
    if isinstance(spec, Profile):
        return (spec,)
    if not isinstance(spec, (str, Path)):
        profiles = tuple(spec)
        if not profiles or not all(isinstance(p, Profile) for p in profiles):
            raise ProfileError("scenes.profile: expected a profile name, a YAML path or Profile "
                               "objects")
        return profiles
    spec = str(spec)
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


# ------------------------------------------------------------------------------ records in bundles
def _mapping(profile: Profile) -> dict:
    """The YAML mapping of a profile built in code (one that was not read from a file)."""
    raw = {"name": profile.name, "description": profile.description,
           "id_pattern": profile.id_pattern, "date_format": profile.date_format,
           "band_file": profile.band_file, "sensors": profile.sensors, "scale": profile.scale,
           "offset": profile.offset, "nodata": profile.nodata,
           "valid_range": list(profile.valid_range) if profile.valid_range else None,
           "metadata": list(profile.metadata), "mtl_scale": profile.mtl_scale,
           "optional_bands": profile.optional_bands, "mask": profile.mask,
           "saturation": profile.saturation, "sensor": profile.default_sensor}
    return {k: v for k, v in raw.items() if v is not None}


def profile_record(profile: Profile) -> dict:
    """A JSON-able record of ``profile`` to store with a dataset or model bundle.

    Returns:
        ``{"kind": "landcover.sensor_profile", "name": ..., "source": <path it was read from>,
        "yaml": <the full profile YAML text>}``. All values are strings, so ``json.dumps`` works and
        the record can live in zarr attrs. :func:`profile_from_record` rebuilds the profile from the
        text alone, so it still works after the user's YAML is moved or deleted.
    """
    text = profile.text or yaml.safe_dump(_mapping(profile), sort_keys=False)
    return {"kind": RECORD_KIND, "name": profile.name, "source": profile.source, "yaml": text}


def profile_from_record(record: Mapping | str) -> Profile:
    """The :class:`Profile` of a record written by :func:`profile_record` (or its JSON string).

    The YAML in the record is validated exactly as a profile file is; the file it came from is not
    read. The profile compares equal to the one that was recorded.

    Raises:
        ProfileError: the record is not such a record, or its YAML is not a valid profile.
    """
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError:
            record = None
    if not isinstance(record, Mapping) or not isinstance(record.get("yaml"), str):
        raise ProfileError("sensor profile record: expected a mapping with 'name' and 'yaml' "
                           "(written by landcover.profiles.profile_record); re-create the dataset "
                           "or set scenes.profile")
    name = str(record.get("name", "?"))
    where = f"sensor profile record {name!r}"
    profile = _build(_parse(record["yaml"], where), where, source=str(record.get("source", "")),
                     text=record["yaml"])
    if "name" in record and profile.name != name:
        raise ProfileError(f"{where}: its YAML names the profile {profile.name!r}; the record is "
                           "inconsistent, re-create the dataset")
    return profile
