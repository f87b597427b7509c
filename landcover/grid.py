"""Raster grids: CRS + affine transform + shape, and how grids relate to each other.

A :class:`Grid` is what two rasters must share to be stacked pixel for pixel. Two grids are on the same
*lattice* when they share CRS and pixel size and their origins differ by a whole number of pixels: then
one is a window of the other and no resampling is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine

_TOL = 1e-6  # fraction of a pixel treated as equal


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid.

    Attributes:
        crs: CRS as a string (``EPSG:32633`` where one fits, else WKT).
        transform: GDAL-order affine coefficients ``(a, b, c, d, e, f)``: x = c + col*a, y = f + row*e.
        width: number of columns.
        height: number of rows.
    """

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @classmethod
    def from_rasterio(cls, crs, transform: Affine, width: int, height: int) -> Grid:
        return cls(crs_string(crs), tuple(float(v) for v in transform[:6]), int(width), int(height))

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)``, both positive, in CRS units."""
        return abs(self.transform[0]), abs(self.transform[4])

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)``."""
        a, _, c, _, e, f = self.transform
        xs = (c, c + a * self.width)
        ys = (f, f + e * self.height)
        return min(xs), min(ys), max(xs), max(ys)

    def tiles(self, size: int):
        """``(row0, col0, height, width)`` of the ``size`` x ``size`` windows that cut the grid,
        row by row (those at the far edges smaller)."""
        for row0 in range(0, self.height, size):
            for col0 in range(0, self.width, size):
                yield row0, col0, min(size, self.height - row0), min(size, self.width - col0)

    def same_lattice(self, other: Grid) -> bool:
        """Same CRS and pixel size, origins a whole number of pixels apart."""
        if not same_crs(self.crs, other.crs):
            return False
        a, b = self.transform, other.transform
        if abs(a[1]) > _TOL or abs(a[3]) > _TOL or abs(b[1]) > _TOL or abs(b[3]) > _TOL:
            return False  # rotated grids are never treated as windows of each other
        if not (math.isclose(a[0], b[0], rel_tol=_TOL) and math.isclose(a[4], b[4], rel_tol=_TOL)):
            return False
        dx, dy = (b[2] - a[2]) / a[0], (b[5] - a[5]) / a[4]
        return abs(dx - round(dx)) < 1e-3 and abs(dy - round(dy)) < 1e-3

    def offset_of(self, other: Grid) -> tuple[int, int]:
        """``(row, col)`` of ``other``'s origin in this grid (both on the same lattice)."""
        a, b = self.transform, other.transform
        return round((b[5] - a[5]) / a[4]), round((b[2] - a[2]) / a[0])

    def describe(self) -> str:
        rx, ry = self.res
        res = f"{rx:g} m" if math.isclose(rx, ry, rel_tol=1e-6) else f"{rx:g}x{ry:g}"
        return f"{short_crs(self.crs)} {self.width}x{self.height} @ {res}"

    def difference(self, other: Grid) -> str:
        """What differs between two grids, with both values (``describe`` can read the same for
        grids one pixel apart): ``"origin (584280, 5420820) vs (584310, 5420820), the second
        shifted 1 px east"``."""
        parts = []
        if not same_crs(self.crs, other.crs):
            parts.append(f"CRS {short_crs(self.crs)} vs {short_crs(other.crs)}")
        if (self.width, self.height) != (other.width, other.height):
            parts.append(f"size {self.width}x{self.height} vs {other.width}x{other.height}")
        a, b = self.transform, other.transform
        if not all(math.isclose(a[i], b[i], rel_tol=1e-9, abs_tol=1e-9) for i in (0, 1, 3, 4)):
            parts.append(f"pixel {a[0]:g} x {a[4]:g} vs {b[0]:g} x {b[4]:g}")
        if not all(math.isclose(a[i], b[i], rel_tol=1e-12, abs_tol=1e-6) for i in (2, 5)):
            text = f"origin ({a[2]:.10g}, {a[5]:.10g}) vs ({b[2]:.10g}, {b[5]:.10g})"
            if self.same_lattice(other):
                dr, dc = self.offset_of(other)
                shifts = [f"{abs(dc)} px {'east' if dc > 0 else 'west'}"] if dc else []
                shifts += [f"{abs(dr)} px {'south' if dr > 0 else 'north'}"] if dr else []
                text += f", the second shifted {' and '.join(shifts)}" if shifts else ""
            parts.append(text)
        return "; ".join(parts) or "the same grid"

    def to_dict(self) -> dict:
        return {"crs": self.crs, "transform": list(self.transform), "width": self.width,
                "height": self.height}


def crs_string(crs) -> str:
    """Canonical string for a rasterio CRS: ``EPSG:n`` when it has an exact EPSG code, else WKT."""
    from rasterio.crs import CRS

    crs = CRS.from_user_input(crs)
    epsg = crs.to_epsg(confidence_threshold=70)
    # Accept a looser EPSG match only when the two CRSs are equal (e.g. USGS "PS WGS84" = EPSG:3031).
    return f"EPSG:{epsg}" if epsg and CRS.from_epsg(epsg) == crs else crs.to_wkt()


def short_crs(crs: str) -> str:
    if crs.startswith("EPSG:"):
        return crs
    from rasterio.crs import CRS

    name = CRS.from_user_input(crs).to_dict().get("proj", "custom")
    return f"WKT({name})"


def same_crs(a: str, b: str) -> bool:
    if a == b:
        return True
    from rasterio.crs import CRS

    return CRS.from_user_input(a) == CRS.from_user_input(b)


def utm_epsg(zone: int, *, south: bool) -> int:
    """EPSG code of WGS 84 / UTM ``zone`` (326zz north, 327zz south)."""
    if not 1 <= int(zone) <= 60:
        raise ValueError(f"UTM zone {zone} is outside 1..60")
    return (32700 if south else 32600) + int(zone)


def pixel_area_m2(crs, transform) -> float | None:
    """Pixel area in square metres for a projected CRS (any linear unit); None for geographic ones.

    ``crs``: a rasterio CRS or anything :meth:`rasterio.crs.CRS.from_user_input` reads;
    ``transform``: an :class:`affine.Affine` or its 6 GDAL-order coefficients.
    """
    from rasterio.crs import CRS

    try:
        crs = CRS.from_user_input(crs)
        if not crs.is_projected:
            return None
        unit = crs.linear_units_factor[1]
    except Exception:  # noqa: BLE001 - rasterio raises CRSError when the unit is unknown
        return None
    a, b, _, d, e, _ = tuple(transform)[:6]
    return abs(a * e - b * d) * unit ** 2
