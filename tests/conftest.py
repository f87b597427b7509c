"""Shared fixtures: the committed tiny scenes, the CLI runner, the real public samples."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

DATA = Path(__file__).parent / "data"
SCENES = DATA / "scenes"

def _real_root() -> Path:
    """The real public samples: ``$LANDCOVER_SHARED/data/real`` when that variable is set (CI sets
    it to a missing folder once, to prove the tests skip cleanly without it), else
    ``../shared/data/real`` beside the checkout."""
    shared = os.environ.get("LANDCOVER_SHARED")
    if shared is not None:
        return Path(shared) / "data" / "real"
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


REAL = _real_root()

DESIGNED = "LC08_L2SP_193026_20230610_20230619_02_T1"
CLEAR = "LC08_L2SP_193026_20230712_20230721_02_T1"
L7 = "LE07_L2SP_193026_20230618_20230627_02_T1"
SOUTH = "LC08_L2SP_193027_20230712_20230721_02_T1"
MISALIGNED = "misaligned/LC09_L2SP_193026_20230704_20230713_02_T1"


@pytest.fixture(scope="session", autouse=True)
def _precision_cache(tmp_path_factory):
    """The tests neither read nor write the user's measurement of ``classify.precision: auto``
    (``~/.cache/landcover/precision.json``): they keep it in a folder of their own, which says
    float32 for this machine, so every classification of the tests computes alike on any CPU.
    bfloat16 is tested where a test asks for it; the measurement in tests/test_precision.py with
    caches of its own."""
    import json

    from landcover.precision import CACHE_FORMAT, machine_key

    root = tmp_path_factory.mktemp("landcover-cache")
    (root / "precision.json").write_text(json.dumps(
        {"format": CACHE_FORMAT, "key": machine_key(), "precision": "float32", "seconds": {},
         "measured": "not measured: tests/conftest.py"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LANDCOVER_CACHE_DIR", str(root))
        yield root


@pytest.fixture(autouse=True)
def _landcover_logger():
    """Each test starts with the ``landcover`` logger as it was: a CLI run in the test process
    gives it a handler of its own and the level of its -q/-v (``-q``: errors only), which would
    keep the warnings of every later test from ``caplog``."""
    import logging

    logger = logging.getLogger("landcover")
    saved = logger.handlers[:], logger.level, logger.propagate, logger.disabled
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate, logger.disabled = saved[2], saved[3]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def scenes_dir() -> Path:
    return SCENES


@pytest.fixture
def scene_copy(tmp_path):
    """Copy one committed scene folder into tmp_path (to break it safely)."""

    def copy(name: str = DESIGNED) -> Path:
        dst = tmp_path / Path(name).name
        shutil.copytree(SCENES / name, dst)
        return dst

    return copy


def one_line_error(result, code: int, *fragments: str) -> None:
    """A CLI result that is one ``Error: ...`` line with exit ``code`` holding every fragment."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def real(name: str) -> Path:
    """Path of a real sample folder, skipping the test when it is absent."""
    path = REAL / name
    if not path.is_dir():
        pytest.skip(f"real sample {name} not available at {path}")
    return path


# Test budgets: one pass per epoch (train.min_epoch_steps=0) and no random-forest baseline unless a
# test is about them.
TINY_MODEL = ["train.model.filters=4", "train.model.layers=1", "train.batch_size=8",
              "train.epochs=2", "train.patience=0", "train.min_epoch_steps=0",
              "train.baseline=none", "train.model.architecture=convlstm"]
FIELD_PREPARE = ["prepare.patches.size=16", "prepare.patches.stride=16",
                 "prepare.split.block_size=48"]


@pytest.fixture(scope="session")
def field_series(tmp_path_factory):
    """The seeded crop-field learning problem (landcover.synthetic.write_field_series)."""
    from landcover.synthetic import write_field_series

    folder = tmp_path_factory.mktemp("fields")
    scenes, labels = write_field_series(folder / "scenes")
    return scenes, labels, folder / "scenes" / "classes.yaml"


def _prepare_fields(field_series, tmp_path_factory, scenes, extra=()):
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import find_scenes

    _, labels, classes = field_series
    out = tmp_path_factory.mktemp("fields_ds") / "ds.zarr"
    cfg = load_config(None, [*FIELD_PREPARE, f"prepare.classes={classes}", *extra])
    prepare(find_scenes(scenes, profile=cfg.scenes.profile), str(labels), out, cfg,
            progress=False)
    return out


@pytest.fixture(scope="session")
def field_dataset(field_series, tmp_path_factory):
    """The crop-field series prepared with all 4 dates."""
    return _prepare_fields(field_series, tmp_path_factory, field_series[0])


@pytest.fixture(scope="session")
def field_dataset_small_blocks(field_series, tmp_path_factory):
    """The crop fields with 24 px split blocks: a validation split of 12 groups, enough for a
    paired comparison to see a real difference between two models (slow tests only)."""
    return _prepare_fields(field_series, tmp_path_factory, field_series[0],
                           ["prepare.split.block_size=24"])


@pytest.fixture(scope="session")
def field_dataset_balanced(field_series, tmp_path_factory):
    """The crop-field series with balanced class weights (n / (K n_c), capped at 10)."""
    return _prepare_fields(field_series, tmp_path_factory, field_series[0],
                           ["prepare.weights.mode=balanced"])


@pytest.fixture(scope="session")
def field_dataset_one_date(field_series, tmp_path_factory):
    """The same fields prepared from the first date only."""
    return _prepare_fields(field_series, tmp_path_factory, field_series[0][:1])


@pytest.fixture(scope="session")
def field_bundle(field_dataset, tmp_path_factory):
    """A small ConvLSTM bundle trained briefly on the crop fields (patch size 16); it learns them."""
    from landcover.config import load_config
    from landcover.train import train

    out = tmp_path_factory.mktemp("fields_model") / "model"
    train(field_dataset, out, load_config(None, [
        "train.model.architecture=convlstm", "train.model.filters=8", "train.model.layers=1", "train.epochs=6", "train.batch_size=8",
        "train.learning_rate=0.005", "train.patience=0", "train.min_epoch_steps=0"]),
        progress=False)
    return out
