import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from landcover.config import PATH_KEYS, UNTRUSTED_KEYS, Config, docs, load_config, parse_override
from landcover.config.schema import choices_of, default_of, help_of, walk
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


# ------------------------------------------------------------- one declaration per key (schema)
def test_default_yaml_and_readme_table_are_written_from_the_schema():
    """configs/default.yaml and the README's table come from landcover/config/schema.py; after
    changing a key there, run: python -m landcover.config --write"""
    found = docs.differences()
    assert not found, "\n\n".join(found)


def test_a_drifted_file_is_named_with_the_command_that_rewrites_it(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text(
        docs.render_yaml().replace("chunk_size: 1024", "chunk_size: 512"))
    (tmp_path / "README.md").write_text(f"# x\n\n{docs.START}\nold table\n{docs.END}\n\nend\n")
    found = docs.differences(tmp_path)
    assert len(found) == 2
    assert all("python -m landcover.config --write" in m for m in found)
    assert found[0].startswith("configs/default.yaml differs") and "chunk_size: 512" in found[0]
    assert found[1].startswith("README.md differs")
    docs.write(tmp_path)
    assert docs.differences(tmp_path) == []
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# x\n\n") and text.endswith("\n\nend\n")  # only the table rewritten
    assert "| `scenes.chunk_size` | `1024` | integer, >= 64 |" in text


def test_readme_without_the_markers_is_an_error(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text(docs.render_yaml())
    (tmp_path / "README.md").write_text("# no table\n")
    with pytest.raises(ValueError, match="config-table:start"):
        docs.differences(tmp_path)


def test_every_key_has_help_and_every_default_passes_its_checks():
    for key, f, _hint in walk(Config):
        assert help_of(f).strip(), f"{key}: no help text"
        if dataclasses.is_dataclass(_hint):
            continue
        value = default_of(f)
        choices = choices_of(f)
        assert choices is None or value in choices, f"{key}: default {value!r} not in choices"
        check = f.metadata.get("check")
        assert check is None or value is None or check.test(value), f"{key}: default fails"


def test_declared_paths_and_untrusted_keys():
    assert set(PATH_KEYS) == {("scenes", "profile"), ("scenes", "grid", "like"),
                              ("prepare", "classes"), ("prepare", "split", "raster"),
                              ("train", "pretrain")}
    assert set(UNTRUSTED_KEYS) == {("scenes", "stac", "signer"), ("scenes", "grid", "like")}


@pytest.mark.parametrize("override, message", [
    ("scenes.chunk_size=32", "scenes.chunk_size: must be 64 or more pixels"),
    ("scenes.bands=[]", "scenes.bands: the list is empty"),
    ("train.model.layers=7", "train.model.layers: must be between 1 and 6"),
    ("train.model.dropout=1.0", "train.model.dropout: must be in [0, 1)"),
    ("prepare.weights.beta=1", "prepare.weights.beta: must be in (0, 1)"),
    ("classify.smooth.neigh_fraction=0", "classify.smooth.neigh_fraction: must be in (0, 1]"),
    ("classify.smooth.window=4", "classify.smooth.window: must be an odd number of pixels"),
    ("classify.window=2", "classify.window: must be null (at most 256, fitted to the grid) or 4"),
    ("train.patience=-1", "train.patience: must be 0 (off) or more epochs"),
    ("train.learning_rate=0", "train.learning_rate: must be more than 0"),
    ("prepare.weights.manual={1: -1}", "prepare.weights.manual: weights must be 0 or more"),
    ("classify.smooth.smoothness_by_class={7: 0}",
     "classify.smooth.smoothness_by_class: values must be more than 0"),
    ("prepare.split.fractions=[0.5, 0.4]", "prepare.split.fractions: must be [train, validation]"),
    ("classify.uncertainty=variance", "classify.uncertainty: 'variance' is not one of entropy"),
])
def test_declared_checks_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


@pytest.mark.parametrize("overrides, message", [
    (["prepare.patches.tile_size=16"], "prepare.patches.tile_size: must be at least"),
    (["classify.window=8", "classify.overlap=8"], "classify.overlap: must be smaller than"),
    (["classify.overlap=4", "classify.blend=5"], "classify.blend: must be at most"),
    (["prepare.split.by=raster"], "prepare.split.raster: is empty"),
    (["prepare.weights.mode=manual"], "prepare.weights.manual: is empty"),
])
def test_checks_across_keys_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


def test_the_generator_command_prints_both_files():
    for flag, text in (("--yaml", docs.render_yaml()), ("--markdown", docs.render_markdown())):
        out = subprocess.run([sys.executable, "-m", "landcover.config", flag],
                             capture_output=True, text=True, check=True)
        assert out.stdout == text
    assert yaml.safe_load(docs.render_yaml()) == Config().to_dict()
