import json

from conftest import DESIGNED

from landcover import __version__
from landcover.cli.main import cli


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_info_text(runner, scenes_dir):
    result = runner.invoke(cli, ["-q", "info", str(scenes_dir)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    designed = next(line for line in lines if line.startswith(DESIGNED))
    assert "LC08" in designed and "2023-06-10" in designed and "EPSG:32633 64x64 @ 30 m" in designed
    assert "49.6%" in designed  # valid share of non-fill pixels (see tests/data/make_scenes.py)
    assert any(line.startswith("stack: 4 dates") and "1 mosaicked" in line for line in lines)


def test_info_json_is_the_only_thing_on_stdout(runner, scenes_dir):
    result = runner.invoke(cli, ["info", str(scenes_dir / DESIGNED), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (scene,) = report["scenes"]
    assert scene["scene_id"] == DESIGNED and scene["date"] == "2023-06-10"
    # 64x64 pixels, fill = 4 columns; of the 3840 non-fill pixels: cloud 31x32, shadow 32x28.
    assert scene["fill_fraction"] == 256 / 4096
    assert scene["cloud_fraction"] == 992 / 3840
    assert scene["cloud_shadow_fraction"] == 896 / 3840
    assert scene["snow_fraction"] == 512 / 3840 and scene["water_fraction"] == 512 / 3840
    assert report["stack"]["grid"]["crs"] == "EPSG:32633"
    assert report["stack"]["bands"] == ["blue", "green", "red", "nir", "swir1", "swir2"]


def test_info_config_overrides(runner, scenes_dir):
    result = runner.invoke(cli, ["info", str(scenes_dir / DESIGNED), "--json",
                                 "--set", "scenes.mask.invalid_flags=[fill,snow]"])
    scene = json.loads(result.stdout)["scenes"][0]
    assert scene["valid_fraction"] == (3840 - 512 - 1) / 3840  # snow and the saturated pixel


def test_unknown_config_key_is_a_usage_error(runner, scenes_dir):
    result = runner.invoke(cli, ["info", str(scenes_dir), "--set", "scenes.chunks=5"])
    assert result.exit_code == 2
    assert "unknown config key 'scenes.chunks'" in result.stderr
    assert "Traceback" not in result.output


def test_runtime_error_is_one_line_exit_1(runner, tmp_path):
    result = runner.invoke(cli, ["info", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path}: the folder is empty; point to Landsat scene folders or .tar archives"]


def test_verbose_adds_the_traceback(runner, tmp_path):
    result = runner.invoke(cli, ["-v", "info", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "SceneNotFoundError" in result.stderr


def test_missing_argument_is_usage_error(runner):
    result = runner.invoke(cli, ["info"])
    assert result.exit_code == 2 and "Missing argument" in result.stderr


def test_console_script_is_installed():
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "landcover"  # installed next to this interpreter
    assert exe.exists(), "the landcover console script is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "info" in out.stdout


def _break(kind, folder):
    name = folder.name
    if kind == "missing band":
        (folder / f"{name}_SR_B4.TIF").unlink()
    elif kind == "truncated":
        path = folder / f"{name}_SR_B3.TIF"
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "bad MTL":
        (folder / f"{name}_MTL.txt").write_text("this is not ODL\n")
    return folder


import pytest  # noqa: E402


@pytest.mark.parametrize("kind, message", [
    ("missing band", "_SR_B4.TIF) of LC08_L2SP_193026_20230610_20230619_02_T1 is missing"),
    ("truncated", "_SR_B3.TIF:"),
    ("bad MTL", "_MTL.txt: cannot parse Landsat metadata"),
])
def test_bad_scenes_give_one_line_errors(runner, scene_copy, kind, message):
    folder = _break(kind, scene_copy())
    result = runner.invoke(cli, ["info", str(folder)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


def test_mixed_grids_with_alignment_off(runner, scenes_dir):
    result = runner.invoke(cli, ["info", str(scenes_dir), "--set", "scenes.grid.align=false"])
    assert result.exit_code == 1
    assert "LC09_L2SP_193026_20230704_20230713_02_T1: grid EPSG:32633 64x64 @ 30 m differs" \
        in result.stderr
