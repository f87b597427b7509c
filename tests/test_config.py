import re
from pathlib import Path

import pytest
import yaml

from landcover.config import Config, load_config, parse_override
from landcover.errors import ConfigError

DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


def test_default_yaml_matches_the_built_in_defaults():
    assert yaml.safe_load(DEFAULT.read_text()) == Config().to_dict()


def test_every_key_in_default_yaml_has_a_comment():
    for line in DEFAULT.read_text().splitlines():
        if re.match(r"^\s*[a-z_]+:", line):
            assert "#" in line, f"no comment on: {line}"


def test_default_yaml_loads_as_config_file():
    assert load_config(DEFAULT) == Config()


def test_set_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenes:\n  chunk_size: 256\n  grid:\n    align: false\n")
    cfg = load_config(path, ["scenes.chunk_size=512", "scenes.bands=[red,nir]"])
    assert cfg.scenes.chunk_size == 512
    assert cfg.scenes.grid.align is False
    assert cfg.scenes.bands == ("red", "nir")
    assert cfg.scenes.mask.saturation is True  # untouched default


@pytest.mark.parametrize("override, message", [
    ("scenes.chunksize=512", "unknown config key 'scenes.chunksize'"),
    ("train.epoch=2", "unknown config key 'train.epoch'"),
    ("train.epochs=0", "train.epochs: must be 1 or more"),
    ("train.model.architecture=resnet", "train.model.architecture: 'resnet' is not one of"),
    ("train.model.kernel=2", "train.model.kernel: must be an odd number"),
    ("scenes.chunk_size=big", "scenes.chunk_size: expected an integer"),
    ("scenes.grid.align=maybe", "scenes.grid.align: expected true or false"),
    ("scenes.grid.extent=everything", "scenes.grid.extent: 'everything' is not one of"),
    ("scenes.mask.invalid_flags=[cloud,clouds]", "unknown flag 'clouds'"),
    ("scenes.chunk_size", "expected KEY=VALUE"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_bad_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenes: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_parse_override_values_are_yaml():
    assert parse_override("a.b=1.5") == {"a": {"b": 1.5}}
    assert parse_override("a=null") == {"a": None}
    assert parse_override("a.b.c=EPSG:32633") == {"a": {"b": {"c": "EPSG:32633"}}}


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(None, ["scenes.grid.crs=EPSG:32633", "scenes.grid.resolution=60"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_paths_in_a_config_file_are_relative_to_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "classes.yaml").write_text("- {code: 1, name: a}\n")
    (folder / "c.yaml").write_text("prepare:\n  classes: classes.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(folder / "c.yaml").prepare.classes == str(folder / "classes.yaml")
    # --set values stay relative to the working directory
    assert load_config(None, ["prepare.classes=x.yaml"]).prepare.classes == "x.yaml"
