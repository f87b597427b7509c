"""The class table: one validated list of (code, name, colour) carried from labels to the output map.

Codes are the values users know (in their label files and in the map we write); the model works on
contiguous *indices* ``0..K-1`` in code order. :data:`IGNORE` (255) marks pixels without a usable
label; it is never a class code (codes must lie in 0..254), so it cannot collide with one.

A class table is read from YAML (``yaml.safe_load``): a list of ``{code, name, color}``, or a mapping
with a ``classes`` key holding that list. ``color`` is ``"#rrggbb"`` or ``[r, g, b]``; when left
out it is derived from the class name when the name holds a common land-cover term
(:func:`color_for_name`: water blue, forest dark green, crops yellow/orange, urban red/grey, ...),
else taken from a fixed palette.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.contract import IGNORE
from landcover.errors import ClassTableError

MAX_CODE = 254

# A qualitative palette (ColorBrewer Set1/Dark2 style) for classes without a colour.
PALETTE = ("#1f78b4", "#33a02c", "#e31a1c", "#ff7f00", "#6a3d9a", "#b15928", "#a6cee3",
           "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99", "#8dd3c7", "#bebada")

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")

# Colours for common land-cover terms: (words a name may contain, shades of the family). A name
# matches when one of its words (split at non-letters, lower case) is a listed word or its plural,
# or, for listed words of 5 letters or more, starts with it ("waterbody", "grasslands"); the
# first family that matches wins, and classes of one family take its shades in turn (two crop
# classes: yellow, then orange). Order matters: "wetland" before "water", "shrub" before "forest".
TERM_COLORS = (
    (("wetland", "marsh", "swamp", "bog", "fen", "reed", "mangrove", "flooded", "peat"),
     ("#8e7cc3", "#5fa8a0", "#b4a7d6")),
    (("water", "lake", "river", "sea", "ocean", "reservoir", "pond", "stream", "lagoon"),
     ("#2166ac", "#4393c3", "#92c5de")),
    (("snow", "ice", "glacier"), ("#e8f4fa", "#c6dbef")),
    (("cloud",), ("#f7f7f7",)),
    (("shrub", "scrub", "bush", "heath", "savanna", "savannah"),
     ("#a6a85a", "#c2b280", "#8c9a5b")),
    (("forest", "tree", "wood", "woodland", "conifer", "coniferous", "broadleaf", "deciduous",
      "evergreen", "plantation", "orchard"), ("#1b7837", "#00441b", "#4d9221", "#276419")),
    (("grass", "grassland", "pasture", "meadow", "rangeland", "prairie", "steppe", "lawn"),
     ("#9bd770", "#b8e186", "#7fbc41")),
    (("crop", "cropland", "agricultur", "farmland", "cereal", "maize", "corn", "wheat", "barley",
      "rice", "soy", "soybean", "farm", "arable", "cultivated", "field", "rapeseed", "sugar"),
     ("#f1c232", "#e69138", "#ffd966", "#b45f06", "#fdae61")),
    (("urban", "built", "building", "settlement", "city", "town", "village", "residential",
      "industrial", "impervious", "artificial", "road", "infrastructure", "developed"),
     ("#d6604d", "#8c8c8c", "#b2182b", "#5e5e5e")),
    (("bare", "barren", "sand", "soil", "rock", "desert", "dune", "quarry", "mine", "gravel"),
     ("#d2b48c", "#a68a64", "#e6d5b8")),
)


@dataclass(frozen=True)
class LandClass:
    code: int
    name: str
    color: str  # "#rrggbb"
    required: bool = False  # the map must be able to show it: no training pixels is an error

    @property
    def rgb(self) -> tuple[int, int, int]:
        return tuple(int(self.color[i:i + 2], 16) for i in (1, 3, 5))


@dataclass(frozen=True)
class ClassTable:
    """Classes sorted by code; ``index`` of a class is its position here."""

    classes: tuple[LandClass, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def codes(self) -> list[int]:
        return [c.code for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def colors(self) -> list[str]:
        return [c.color for c in self.classes]

    def lut(self) -> np.ndarray:
        """uint8 lookup table of 256 entries: code -> index, :data:`IGNORE` for unknown codes."""
        table = np.full(256, IGNORE, np.uint8)
        table[self.codes] = np.arange(len(self), dtype=np.uint8)
        return table

    def to_indices(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map an integer code array (-1 = no label) to indices.

        Returns ``(indices uint8, unknown bool)``: ``unknown`` marks labelled pixels whose code is not
        in the table (they get :data:`IGNORE` and are counted by the caller).
        """
        codes = np.asarray(codes)
        labelled = codes >= 0
        inside = labelled & (codes <= 255)
        out = np.full(codes.shape, IGNORE, np.uint8)
        out[inside] = self.lut()[codes[inside].astype(np.int64)]
        unknown = labelled & (out == IGNORE)
        return out, unknown

    def to_list(self) -> list[dict]:
        return [{"code": c.code, "name": c.name, "color": c.color} for c in self.classes]

    def describe(self) -> str:
        return ", ".join(f"{c.code} {c.name}" for c in self.classes)


def term_family(name: str) -> int | None:
    """Index in :data:`TERM_COLORS` of the first family with a word of ``name`` (or None)."""
    words = [w for w in re.split(r"[^a-z]+", str(name).lower()) if w]
    for f, (terms, _) in enumerate(TERM_COLORS):
        if any(w in (t, t + "s", t + "es") or (len(t) >= 5 and w.startswith(t))
               for w in words for t in terms):
            return f
    return None


def color_for_name(name: str, taken: int = 0) -> str | None:
    """The colour of a class called ``name`` when it names a common land-cover term (the
    ``taken``-th shade of its family), else ``None``."""
    f = term_family(name)
    if f is None:
        return None
    shades = TERM_COLORS[f][1]
    return shades[taken % len(shades)]


def default_colors(names: Sequence[str]) -> list[str]:
    """Colours for classes without one, in table order: from the name (:func:`color_for_name`,
    each family's shades taken in turn), else the next palette colour not used yet."""
    used: dict[int, int] = {}
    out: list[str | None] = []
    for name in names:
        f = term_family(name)
        if f is None:
            out.append(None)
            continue
        out.append(color_for_name(name, used.get(f, 0)))
        used[f] = used.get(f, 0) + 1
    spare = [c for c in PALETTE if c not in out] or list(PALETTE)
    k = 0
    for i, c in enumerate(out):
        if c is None:
            out[i] = spare[k % len(spare)]
            k += 1
    return out  # type: ignore[return-value]


def _color(value, default: str, where: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and _HEX.match(value):
        return value.lower()
    if (isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (3, 4)
            and all(isinstance(v, int) and 0 <= v <= 255 for v in value)):
        return "#{:02x}{:02x}{:02x}".format(*value[:3])
    raise ClassTableError(f"{where}: color {value!r} is not '#rrggbb' or [r, g, b]")


def class_table_from_tag(text: str, path) -> ClassTable:
    """The class table of a raster's ``LANDCOVER_CLASSES`` tag (JSON ``[{code, name, color}]``).

    Raises:
        ClassTableError: the tag is not valid JSON or not a valid class table.
    """
    import json

    from landcover.contract import TAG_CLASSES

    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClassTableError(f"{path}: the {TAG_CLASSES} tag is not valid JSON ({exc})") from None
    return class_table(items, f"{path} ({TAG_CLASSES} tag)")


def class_table(items: Iterable, source: str = "class table") -> ClassTable:
    """Validate ``[{code, name, color}, ...]`` into a :class:`ClassTable` (sorted by code)."""
    if isinstance(items, Mapping):
        items = items.get("classes")
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ClassTableError(f"{source}: expected a list of {{code, name, color}}")
    classes, codes, names = [], set(), set()
    for i, item in enumerate(items):
        where = f"{source}: class #{i + 1}"
        if not isinstance(item, Mapping) or "code" not in item:
            raise ClassTableError(f"{where}: needs at least a 'code' (and a 'name')")
        unknown = sorted(set(item) - {"code", "name", "color", "required"})
        if unknown:
            raise ClassTableError(f"{where}: unknown key {unknown[0]!r}; use code, name, color, "
                                  "required")
        if not isinstance(item.get("required", False), bool):
            raise ClassTableError(f"{where}: required must be true or false")
        code = item["code"]
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= MAX_CODE:
            raise ClassTableError(f"{where}: code {code!r} must be an integer 0..{MAX_CODE} "
                                  f"({IGNORE} is the ignore label)")
        name = str(item.get("name") or f"class_{code}").strip()
        if code in codes:
            raise ClassTableError(f"{source}: code {code} appears twice")
        if name in names:
            raise ClassTableError(f"{source}: name {name!r} appears twice")
        codes.add(code)
        names.add(name)
        classes.append((code, name, item.get("color"), where, bool(item.get("required", False))))
    if not classes:
        raise ClassTableError(f"{source}: the class table is empty; list at least one class")
    classes.sort()
    defaults = default_colors([name for _, name, color, _, _ in classes if color is None])
    fallback = iter(defaults)
    return ClassTable(tuple(LandClass(code, name, _color(color, next(fallback) if color is None
                                                          else "", where), required)
                            for code, name, color, where, required in classes),
                      source)


def load_class_table(path: str | Path) -> ClassTable:
    """Read a class table YAML (see the module docstring)."""
    from landcover.config import read_yaml

    raw = read_yaml(path, ClassTableError, "prepare.classes:")
    return class_table(raw if raw is not None else [], str(path))
