"""The training input pipeline: streaming, shuffling by (seed, epoch), augmentation applied
identically to inputs, labels and weights."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from landcover.config import AugmentConfig
from landcover.dataset import open_dataset
from landcover.errors import DatasetError
from landcover.pipeline import PatchStream

N, T, S = 100, 3, 8
FEATURES = ["blue", "nir", "valid", "sample_id", "doy_sin"]


def tiny_dataset(path, n=N, splits=None):
    """A dataset in the landcover format whose inputs encode their own labels and identity:
    feature 'blue' = label, 'nir' = label + 1 (0 where ignored), 'sample_id' = the sample index,
    'valid' = 1, 'doy_sin' = the date index."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (n, S, S)).astype(np.uint8)
    labels[:, :2, :3] = 255  # an asymmetric ignored corner: rotations and flips are visible
    weights = np.where(labels == 255, 0.0, labels + 1.0).astype(np.float32)
    x = np.zeros((n, T, S, S, len(FEATURES)), np.float32)
    x[..., 0] = labels[:, None]
    x[..., 1] = weights[:, None]
    x[..., 2] = 1.0
    x[..., 3] = np.arange(n)[:, None, None, None]
    x[..., 4] = np.arange(T)[None, :, None, None]
    g = zarr.open_group(str(path), mode="w")
    for name, arr in (("inputs", x), ("labels", labels), ("weights", weights),
                      ("split", np.zeros(n, np.uint8))):
        g.create_array(name, shape=arr.shape, dtype=arr.dtype,
                       chunks=(32,) + arr.shape[1:])[...] = arr
    g.attrs.update({"landcover_dataset": 1, "features": FEATURES, "bands": ["blue", "nir"],
                    "ignore_label": 255, "classes": [{"index": i, "name": f"c{i}"}
                                                     for i in range(3)],
                    "splits": splits or {"train": [0, 70], "validation": [70, 90],
                                         "test": [90, 100]}})
    return open_dataset(path)


def ids(x):
    return x[:, 0, 0, 0, 3].astype(int).tolist()


def test_every_training_patch_once_per_epoch_in_a_seeded_order(tmp_path):
    ds = tiny_dataset(tmp_path / "d.zarr")
    stream = PatchStream(ds, "train", batch_size=16, shuffle=True, seed=3, shuffle_chunks=2)
    batches = list(stream.batches(epoch=0))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 16, 6] and len(stream) == 5
    seen = sum((ids(b[0]) for b in batches), [])
    assert sorted(seen) == list(range(70)) and seen != list(range(70))
    again = sum((ids(b[0]) for b in stream.batches(epoch=0)), [])
    other = sum((ids(b[0]) for b in stream.batches(epoch=1)), [])
    assert again == seen and sorted(other) == sorted(seen) and other != seen
    # validation: every patch once, in stored order, no augmentation
    val = PatchStream(ds, "validation", batch_size=16)
    assert sum((ids(b[0]) for b in val.batches()), []) == list(range(70, 90))


def test_augmentation_moves_inputs_labels_and_weights_together(tmp_path):
    ds = tiny_dataset(tmp_path / "d.zarr")
    plain = {i: (x, y) for b in PatchStream(ds, "train", batch_size=70).batches()
             for i, x, y in zip(ids(b[0]), b[0], b[1])}
    stream = PatchStream(ds, "train", batch_size=10, shuffle=True,
                         augment=AugmentConfig(flips=True, rotations=True), seed=1)
    changed = 0
    for x, y, w in stream.batches(epoch=2):
        for t in range(T):
            np.testing.assert_array_equal(x[:, t, :, :, 0], y)         # label follows
            np.testing.assert_array_equal(x[:, t, :, :, 1], w)         # weight follows
        for i, xi, yi in zip(ids(x), x, y):
            # the same patch, turned/flipped as a whole: same multiset of values
            assert sorted(yi.ravel()) == sorted(plain[i][1].ravel())
            changed += not np.array_equal(yi, plain[i][1])
            assert np.array_equal(xi[..., 4], plain[i][0][..., 4])   # date order untouched
    assert changed > 40  # 7 of 8 rotation/flip combinations change the patch


def test_dropping_dates_hides_bands_and_validity_and_keeps_one(tmp_path):
    ds = tiny_dataset(tmp_path / "d.zarr")
    stream = PatchStream(ds, "train", batch_size=70, shuffle=True,
                         augment=AugmentConfig(flips=False, rotations=False, drop_dates=0.9),
                         seed=0)
    (x, y, w), = list(stream.batches())
    dropped = x[:, :, 0, 0, 2] == 0  # valid channel
    assert dropped.mean() > 0.5 and not dropped.all(axis=1).any()
    hidden = x[dropped]
    assert (hidden[..., [0, 1, 2]] == 0).all()
    assert (hidden[..., 3:] != 0).any()  # other features (id, day of year) kept
    np.testing.assert_array_equal(x[..., 4], np.arange(T)[None, :, None, None] * np.ones_like(
        x[..., 4]))
    assert (w == np.where(y == 255, 0, y + 1.0)).all()  # labels and weights untouched


def test_without_class_weights_the_weight_is_a_mask(tmp_path):
    ds = tiny_dataset(tmp_path / "d.zarr")
    (x, y, w), = list(PatchStream(ds, "train", batch_size=70, class_weights=False).batches())
    np.testing.assert_array_equal(w, (y != 255).astype(np.float32))


def test_tf_dataset_yields_the_same_batches(tmp_path):
    pytest.importorskip("tensorflow")
    ds = tiny_dataset(tmp_path / "d.zarr")
    stream = PatchStream(ds, "train", batch_size=16, shuffle=True, seed=4,
                         augment=AugmentConfig())
    stream.epoch = 5
    expected = list(stream.batches(epoch=5))
    got = [tuple(t.numpy() for t in b) for b in stream.tf_dataset()]
    assert len(got) == len(expected) == len(stream)
    for a, b in zip(got, expected):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


def test_open_dataset_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetError, match="not a Zarr dataset|not a landcover dataset"):
        open_dataset(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(DatasetError, match="not a landcover dataset"):
        open_dataset(tmp_path / "other.zarr")


def test_keras_dataset_yields_the_same_batches_without_tf_data(tmp_path):
    """The PyDataset that fit takes on every backend: in order from its thread after
    on_epoch_begin, any index directly (Keras peeks at the first batches), the epoch's batches."""
    ds = tiny_dataset(tmp_path / "d.zarr")
    stream = PatchStream(ds, "train", batch_size=16, shuffle=True, seed=4,
                         augment=AugmentConfig())
    data = stream.keras_dataset()
    stream.epoch = 5
    expected = list(stream.batches(epoch=5))
    peek = data[1]  # outside an epoch: computed directly
    for u, v in zip(peek, expected[1]):
        np.testing.assert_array_equal(u, v)
    data.on_epoch_begin()
    got = [data[i] for i in range(len(data))]
    data.on_epoch_end()
    assert len(got) == len(expected) == len(stream)
    for a, b in zip(got, expected):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    stream.epoch = 6  # the next epoch is another shuffle
    data.on_epoch_begin()
    first = data[0]
    data.on_epoch_end()
    assert not all(np.array_equal(u, v) for u, v in zip(first, expected[0]))


def test_keras_dataset_hands_a_read_error_to_the_training_thread(tmp_path, monkeypatch):
    ds = tiny_dataset(tmp_path / "d.zarr")
    stream = PatchStream(ds, "train", batch_size=16)

    def broken(*_):
        raise OSError("disk gone")

    monkeypatch.setattr(stream, "_read", broken)
    data = stream.keras_dataset()
    data.on_epoch_begin()
    with pytest.raises(OSError, match="disk gone"):
        data[0]
    data.on_epoch_end()
