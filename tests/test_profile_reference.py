"""The README's sensor-profile reference: every key, the shipped profiles, and its example of
per-date files with a cloud mask (read on a small synthetic folder of that layout)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from landcover import profiles  # noqa: E402
from landcover.cli.main import cli  # noqa: E402
from landcover.config import load_config  # noqa: E402
from landcover.scenes import find_scenes  # noqa: E402
from landcover.stack import stack_scenes  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
BANDS = ("B2", "B3", "B4", "B5", "B6", "B7")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def example_yaml() -> str:
    text = readme()
    block = text[text.index("<!-- profile-example:start -->"):
                 text.index("<!-- profile-example:end -->")]
    return re.search(r"```yaml\n(.*?)```", block, re.S).group(1)


def reference_section() -> str:
    text = readme()
    start = text.index("## Sensor profiles (reference)")
    return text[start:text.index("\n## ", start + 1)]


def test_every_profile_key_is_in_the_reference():
    table = reference_section()
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", table, re.M))
    keys = {k for pair in documented for k in pair if k}
    assert keys == set(profiles._REQUIRED) | set(profiles._OPTIONAL)


def test_the_readme_lists_the_five_shipped_profiles_in_the_order_auto_tries_them():
    text = readme()
    start = text.index("## Reading scenes")
    section = text[start:text.index("\n## ", start + 1)]
    listed = re.findall(r"^  \| `([a-z0-9_]+)` \|", section, re.M)
    assert listed == [p.name for p in profiles.shipped_profiles()]
    assert len(listed) == 5


def _write(folder: Path, name: str, data: np.ndarray, dtype: str, nodata=None) -> None:
    from rasterio.transform import from_origin

    with rasterio.open(folder / name, "w", driver="GTiff", width=data.shape[1],
                       height=data.shape[0], count=1, dtype=dtype, crs="EPSG:32633",
                       transform=from_origin(500010, 5800020, 30, 30), nodata=nodata) as dst:
        dst.write(data.astype(dtype), 1)


def per_date_scenes(root: Path, *, float_nan: bool = False) -> Path:
    """Two dates of 16 x 16 px: rows 0-1 no data, a cloud in rows 8-11 left, its shadow right on
    the second date; a cloud mask of codes 0 clear, 1 cloud, 2 shadow, 3 snow, 255 fill."""
    for date, shadow in (("20230610", False), ("20230704", True)):
        folder = root / date
        folder.mkdir(parents=True)
        for i, band in enumerate(BANDS):
            dn = np.full((16, 16), 1000 + 300 * i, np.float32)
            dn[:2] = np.nan if float_nan else -9999
            _write(folder, f"{band}.tif", dn, "float32" if float_nan else "int16",
                   np.nan if float_nan else -9999)
        mask = np.zeros((16, 16), np.uint8)
        mask[:2] = 255
        mask[8:12, :8] = 1
        if shadow:
            mask[8:12, 8:] = 2
        mask[14, 14] = 3
        _write(folder, "cloudmask.tif", mask, "uint8")
    return root


def test_the_example_profile_reads_per_date_files_with_a_cloud_mask(tmp_path, runner):
    profile = tmp_path / "my_profile.yaml"
    profile.write_text(example_yaml())
    assert profiles.load_profile(profile).name == "per_date_cloudmask"
    scenes = per_date_scenes(tmp_path / "scenes")
    res = runner.invoke(cli, ["-q", "info", str(scenes), "--json",
                              "--set", f"scenes.profile={profile}"])
    assert res.exit_code == 0, res.output
    found = {s["scene_id"]: s for s in json.loads(res.stdout)["scenes"]}
    assert sorted(found) == ["20230610", "20230704"]
    first, second = found["20230610"], found["20230704"]
    assert first["fill_fraction"] == 32 / 256  # the fill code
    assert first["cloud_fraction"] == second["cloud_fraction"] == 32 / 224
    assert first["cloud_shadow_fraction"] == 0 and second["cloud_shadow_fraction"] == 32 / 224
    cfg = load_config(overrides=[f"scenes.profile={profile}"])
    stack = stack_scenes(find_scenes([str(scenes)], profile=str(profile)), cfg.scenes)
    valid = stack.valid.values
    assert not valid[:, :2].any() and not valid[:, 8:12, :8].any()
    assert valid[0, 8:12, 8:].all() and not valid[1, 8:12, 8:].any()
    assert valid[:, 14, 14].all()  # snow is valid unless scenes.mask.invalid_flags names it
    refl = stack.reflectance.values
    np.testing.assert_allclose(refl[0, :, 5, 5], [0.1, 0.13, 0.16, 0.19, 0.22, 0.25], rtol=1e-5)


def test_nodata_nan_marks_the_nan_pixels_of_float_rasters(tmp_path):
    """``nodata: .nan`` (a guess users made): NaN pixels are no data, not valid NaN reflectance."""
    profile = tmp_path / "nan.yaml"
    profile.write_text(example_yaml().replace("nodata: -9999 ", "nodata: .nan  "))
    assert np.isnan(profiles.load_profile(profile).nodata)
    scenes = per_date_scenes(tmp_path / "scenes", float_nan=True)
    cfg = load_config(overrides=[f"scenes.profile={profile}", "scenes.mask.invalid_flags=[cloud]"])
    stack = stack_scenes(find_scenes([str(scenes)], profile=str(profile)), cfg.scenes)
    valid, refl = stack.valid.values, stack.reflectance.values
    assert not valid[:, :2].any(), "NaN pixels are no data"
    assert not np.isnan(refl[:, :, 2:][np.broadcast_to(valid[:, None, 2:], refl[:, :, 2:].shape)]).any()
