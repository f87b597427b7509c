"""``bundle.json`` as a typed, read-only record: :class:`BundleMeta`.

Every reader of a bundle's metadata asks a :class:`BundleMeta` (:func:`landcover.bundle.
read_bundle_meta`, :func:`~landcover.bundle.load_bundle`): the sections that code acts on are
typed (:class:`InputSpec`, :class:`OutputSpec`, the architecture spec, the dates, the class
table), and :meth:`BundleMeta.from_json` is the one place where older bundles are upgraded (a
field they lack gets the value it had before it was written):

* ``input.variable_time_steps`` missing: the architecture's ``variable_dates`` (the registry);
* ``input.takes_dates`` missing: False (no ``days`` input), ``input.days`` missing: none;
* ``output.absent_classes`` missing: none; ``output.temperature`` missing or null: 1;
* ``model_file`` missing: ``model.keras`` (bundles before the pixel classifiers);
* ``model`` (``auto``'s record) missing: the architecture's name is the model's name;
* ``dates_dropped``, ``profiles`` missing: none; ``architecture.norm`` missing: the old
  ``batch_norm`` flag (:func:`landcover.models.norm_of`).

A bundle of any model kind reads the same way: a pixel classifier (:mod:`landcover.pixel`) is a
bundle whose architecture the registry calls ``pixel`` (:attr:`BundleMeta.is_pixel`), with its
``model_file`` and ``pixel`` record; nothing else differs.

The record is also a read-only mapping of the JSON as the file holds it (``meta["input"]``,
``meta.get("estimate")``), so code that reads a section as a whole (the reports, the saved
config) needs no conversion; :meth:`BundleMeta.to_json` gives that dict (a copy), which is what
:func:`landcover.bundle.write_metadata` writes.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from landcover.errors import ModelError

MODEL_FILE = "model.keras"
META_FILE = "bundle.json"


def _mapping(value) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _strings(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else ()


def model_file_name(data: Mapping) -> str:
    """``data['model_file']`` (a plain file name of the bundle folder), else ``model.keras``.

    Raises:
        ModelError: a name that is not a plain file name of the bundle folder.
    """
    name = data.get("model_file", MODEL_FILE)
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or \
            "\\" in name or name == META_FILE:
        raise ModelError(f"bundle.json: model_file {name!r} is not a file name of the bundle")
    return name


@dataclass(frozen=True)
class InputSpec:
    """``input``: what the model takes, as training built it (:mod:`landcover.features`)."""

    time_steps: int | None
    patch_size: int | None
    features: tuple[str, ...]
    bands: tuple[str, ...]
    fill: str | None
    doy: bool | None
    dtype: str
    variable_time_steps: bool  # upgraded: the registry decides for bundles without it
    takes_dates: bool  # a network with a ``days`` input
    days_reference: str | None  # how its days are counted (landcover.features.DAYS_REFERENCE)
    days_trained: tuple[float, float] | None  # the range of days seen in training

    @classmethod
    def from_json(cls, inp: Mapping, architecture: str | None) -> InputSpec:
        variable = inp.get("variable_time_steps")
        if variable is None:
            variable = _variable_dates(architecture)
        days = _mapping(inp.get("days"))
        trained = days.get("trained")
        return cls(time_steps=inp.get("time_steps"), patch_size=inp.get("patch_size"),
                   features=_strings(inp.get("features")), bands=_strings(inp.get("bands")),
                   fill=inp.get("fill"), doy=inp.get("doy"), dtype=inp.get("dtype", "float32"),
                   variable_time_steps=bool(variable), takes_dates=bool(inp.get("takes_dates")),
                   days_reference=days.get("reference"),
                   days_trained=_strings(trained) or None)

    @property
    def valid_channel(self) -> int | None:
        """The index of the ``valid`` feature, or None."""
        return self.features.index("valid") if "valid" in self.features else None


@dataclass(frozen=True)
class OutputSpec:
    """``output``: what the model gives (``logits`` of a network, ``log_probabilities`` of a pixel
    classifier), the classes it never predicts, and the fitted temperature."""

    kind: str | None
    classes: int | None
    absent_classes: tuple[int, ...]
    temperature: float

    @classmethod
    def from_json(cls, out: Mapping) -> OutputSpec:
        return cls(kind=out.get("kind"), classes=out.get("classes"),
                   absent_classes=_strings(out.get("absent_classes")),
                   temperature=float(out.get("temperature") or 1.0))


def _variable_dates(name) -> bool:
    from landcover.models import architecture

    try:
        return bool(architecture(name).variable_dates)
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True, eq=False)
class BundleMeta(Mapping):
    """A bundle's ``bundle.json``: typed sections (upgraded, see the module) and the JSON itself
    as a read-only mapping. Build one with :meth:`from_json`."""

    architecture: Mapping  # train.model as trained (architecture, filters, layers, norm ...)
    input: InputSpec
    output: OutputSpec
    classes: tuple[Mapping, ...]  # index, code, name, color, weight
    normalisation: Mapping
    dates: tuple[str, ...]  # ISO dates of training
    dates_dropped: tuple[str, ...]
    grid: Mapping | None
    profiles: tuple  # the sensor profiles' records (landcover.profiles.profile_from_record)
    config: object  # the resolved config (a mapping, unless the bundle was edited)
    content_hash: str | None
    json: Mapping = field(repr=False)  # the file's dict, as read

    @classmethod
    def from_json(cls, data: Mapping) -> BundleMeta:
        """The record of a ``bundle.json`` dict, with every upgrade of older bundles (see the
        module). Sections of the wrong type read as empty: the checks that use them say what is
        wrong (:func:`landcover.classify.plan.resolve_config` ...)."""
        data = copy.deepcopy(dict(data))
        arch = _mapping(data.get("architecture"))
        name = arch.get("architecture")
        profiles = data.get("profiles")
        return cls(
            architecture=arch, input=InputSpec.from_json(_mapping(data.get("input")), name),
            output=OutputSpec.from_json(_mapping(data.get("output"))),
            classes=_strings(data.get("classes")),
            normalisation=_mapping(data.get("normalisation")),
            dates=_strings(data.get("dates")),
            dates_dropped=_strings(data.get("dates_dropped")),
            grid=data.get("grid"),
            profiles=tuple(profiles) if isinstance(profiles, list) else (),
            config=data.get("config") or {}, content_hash=data.get("content_hash"),
            json=data)

    @classmethod
    def of(cls, meta: Mapping) -> BundleMeta:
        """``meta`` itself when it is a :class:`BundleMeta`, else :meth:`from_json` of it (a
        ``bundle.json`` dict being written, or made by hand)."""
        return meta if isinstance(meta, BundleMeta) else cls.from_json(meta)

    def to_json(self) -> dict:
        """The ``bundle.json`` dict (a copy; ``content_hash`` and ``landcover_model`` included
        once written)."""
        return copy.deepcopy(dict(self.json))

    # -- the JSON as a read-only mapping
    def __getitem__(self, key: str):
        return self.json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.json)

    def __len__(self) -> int:
        return len(self.json)

    # -- what readers ask
    @property
    def architecture_name(self) -> str | None:
        """The trained architecture (``architecture.architecture``)."""
        return self.architecture.get("architecture")

    @property
    def model(self) -> Mapping:
        """``model``: ``auto``'s record (candidates, the kept architecture, why), else empty."""
        return _mapping(self.json.get("model"))

    @property
    def model_name(self) -> str:
        """The model as a map names it: the architecture (``auto``: the kept candidate)."""
        return str(self.model.get("architecture") or self.architecture_name or "unknown")

    @property
    def metrics(self) -> Mapping:
        """``metrics``: the scores per split (``validation``, ``test``, ``cross_validation``)."""
        return _mapping(self.json.get("metrics"))

    @property
    def estimate(self) -> Mapping | None:
        """``estimate``: the figures to believe, with their intervals (None when absent)."""
        return self.json.get("estimate")

    @property
    def baseline(self) -> Mapping | None:
        """``baseline``: the random forest's scores on the same pixels (None when absent)."""
        return self.json.get("baseline")

    @property
    def training(self) -> Mapping:
        """``training``: epochs, the kept epoch, seconds, the dataset ..."""
        return _mapping(self.json.get("training"))

    @property
    def calibration(self) -> Mapping:
        """``calibration``: the fitted temperature and the calibration errors."""
        return _mapping(self.json.get("calibration"))

    @property
    def versions(self) -> Mapping:
        """``versions``: of landcover and the libraries that trained the model."""
        return _mapping(self.json.get("versions"))

    @property
    def created(self) -> str | None:
        """``created``: when the bundle was written (ISO time)."""
        return self.json.get("created")

    @property
    def is_pixel(self) -> bool:
        """Whether the bundle holds a pixel classifier (:mod:`landcover.pixel`), not a network."""
        from landcover.models import architecture

        try:
            return bool(architecture(self.architecture_name).pixel)
        except (ValueError, TypeError):
            return False

    @property
    def model_file(self) -> str:
        """The model file's name: ``model_file`` (a plain file name), else ``model.keras``.

        Raises:
            ModelError: a name that is not a plain file name of the bundle folder.
        """
        return model_file_name(self.json)

    @property
    def format(self):
        """``landcover_model``: the bundle format (:data:`landcover.bundle.BUNDLE_FORMAT`)."""
        return self.json.get("landcover_model")

    @property
    def pixel(self) -> Mapping:
        """A pixel classifier's record (library, model_sha256, features, classes ...)."""
        return _mapping(self.json.get("pixel"))

    @property
    def class_codes(self) -> list[int]:
        return [c["code"] for c in self.classes]

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    @property
    def window_statistics(self) -> bool:
        """Whether the network normalises over its input window (``norm: group``)."""
        return self.architecture.get("norm") == "group"

    def days(self, dates: Sequence[dt.date]) -> np.ndarray | None:
        """The ``days`` input of ``dates`` for a network that takes the dates, else None: counted
        as in training, from the 1 January that puts most dates in the trained range
        (:func:`landcover.features.season_days`; another year's series lands on the same days).

        Raises:
            ModelError: the bundle counts its days another way than this landcover.
        """
        from landcover.features import DAYS_REFERENCE, season_days

        if not self.input.takes_dates:
            return None
        if self.input.days_reference != DAYS_REFERENCE:
            raise ModelError(f"the bundle counts the days of its dates as "
                             f"{self.input.days_reference!r}; this landcover counts them as "
                             f"{DAYS_REFERENCE!r}; train the model again")
        return season_days(list(dates), self.input.days_trained)
