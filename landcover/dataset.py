"""Reading a prepared patch dataset (the Zarr store written by :mod:`landcover.prepare`).

No TensorFlow here: :mod:`landcover.pipeline` turns these numpy reads into a tf.data pipeline, and
the model bundle copies the metadata that classification needs (bands, features, normalisation,
dates, class table) from :attr:`PreparedDataset.attrs`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.contract import DATASET_FORMAT
from landcover.errors import DatasetError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
ARRAYS = ("inputs", "labels", "weights", "split")


@dataclass
class PreparedDataset:
    """An opened dataset: attributes plus chunk-aligned reads of contiguous sample ranges."""

    path: Path
    attrs: dict
    group: object  # zarr.Group

    @property
    def n_samples(self) -> int:
        return int(self.group["inputs"].shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(time, patch_y, patch_x, feature) of one sample."""
        return tuple(int(v) for v in self.group["inputs"].shape[1:])

    @property
    def chunk(self) -> int:
        return int(self.group["inputs"].chunks[0])

    @property
    def features(self) -> list[str]:
        return list(self.attrs["features"])

    @property
    def bands(self) -> list[str]:
        return list(self.attrs["bands"])

    @property
    def classes(self) -> list[dict]:
        return list(self.attrs["classes"])

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.attrs["classes"]]

    @property
    def num_classes(self) -> int:
        return len(self.attrs["classes"])

    @property
    def ignore_label(self) -> int:
        return int(self.attrs["ignore_label"])

    def split_range(self, split: str) -> tuple[int, int]:
        a, b = self.attrs["splits"][split]
        return int(a), int(b)

    def split_size(self, split: str) -> int:
        a, b = self.split_range(split)
        return b - a

    def pieces(self, split: str) -> list[tuple[int, int]]:
        """The split's sample range cut at stored chunk boundaries (each piece = one chunk read)."""
        a, b = self.split_range(split)
        c = self.chunk
        edges = sorted({a, b, *range(math.ceil(a / c) * c, b, c)})
        return [(s, e) for s, e in zip(edges[:-1], edges[1:]) if e > s]

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """inputs float32 (n, T, H, W, F), labels uint8 (n, H, W), weights float32 (n, H, W)."""
        g = self.group
        return (np.asarray(g["inputs"][start:stop], dtype=np.float32),
                np.asarray(g["labels"][start:stop], dtype=np.uint8),
                np.asarray(g["weights"][start:stop], dtype=np.float32))


def open_dataset(path: str | Path, *, verify: bool = False) -> PreparedDataset:
    """Open a dataset written by ``landcover prepare``.

    Args:
        verify: check every chunk against the checksums written by ``prepare``
            (:func:`verify_checksums`): a missing or damaged chunk is refused instead of being
            read as fill values or failing deep inside training.

    Raises:
        DatasetError: missing path, not a Zarr store, not a landcover dataset, an unknown format
            version, missing arrays, or (``verify``) a missing or damaged chunk.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset; create one with 'landcover prepare'")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a store"
        raise DatasetError(f"{path}: not a Zarr dataset ({type(exc).__name__}); create one with "
                           "'landcover prepare'") from None
    attrs = dict(group.attrs)
    version = attrs.get("landcover_dataset")
    if version is None:
        raise DatasetError(f"{path}: a Zarr store, but not a landcover dataset (no "
                           "'landcover_dataset' attribute); create one with 'landcover prepare'")
    if version != DATASET_FORMAT:
        raise DatasetError(f"{path}: dataset format {version}, this landcover reads format "
                           f"{DATASET_FORMAT}; prepare it again with this version")
    missing = [name for name in ARRAYS if name not in group]
    if missing:
        raise DatasetError(f"{path}: incomplete dataset, missing arrays {', '.join(missing)}; "
                           "prepare it again")
    if verify:
        verify_checksums(path)
    return PreparedDataset(path=path, attrs=attrs, group=group)


CHECKSUMS = "checksums.json"


def _chunk_files(path: Path):
    """``(array name, chunk key, file)`` of every chunk of every array of the Zarr group."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    for name, arr in sorted(group.arrays()):
        for coords in np.ndindex(*arr.cdata_shape):
            key = arr.metadata.encode_chunk_key(coords)
            yield name, key, path / name / key


def file_crc(file: Path) -> int:
    """CRC32 of a file, read in 4 MiB pieces (the chunk checksums of datasets and stores)."""
    import zlib

    crc = 0
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return crc


def write_checksums(path: str | Path) -> None:
    """``checksums.json``: the CRC32 of every chunk file of the dataset (``null`` for a chunk that
    Zarr did not write because it holds only the fill value)."""
    path = Path(path)
    sums: dict[str, dict] = {}
    for name, key, file in _chunk_files(path):
        sums.setdefault(name, {})[key] = file_crc(file) if file.is_file() else None
    (path / CHECKSUMS).write_text(json.dumps({"algorithm": "crc32", "chunks": sums}))


def verify_checksums(path: str | Path) -> None:
    """Refuse a dataset with a missing or damaged chunk, naming the array and the chunk.

    A dataset written before checksums existed is accepted with a warning."""
    path = Path(path)
    file = path / CHECKSUMS
    if not file.is_file():
        log.warning("%s: no %s (written by an older landcover); its chunks cannot be checked",
                    path, CHECKSUMS)
        return
    try:
        sums = json.loads(file.read_text())["chunks"]
    except (OSError, ValueError, KeyError):
        raise DatasetError(f"{file}: unreadable checksums; the dataset is damaged, run "
                           "'landcover prepare' again") from None
    for name, key, chunk in _chunk_files(path):
        expected = sums.get(name, {}).get(key, "unknown")
        if expected == "unknown":
            raise DatasetError(f"{path}: array {name} has a chunk {key} that prepare did not "
                               "write; the dataset was changed, run 'landcover prepare' again")
        if expected is None:
            continue
        if not chunk.is_file():
            raise DatasetError(f"{path}: chunk {key} of array {name} is missing; the dataset is "
                               "damaged, run 'landcover prepare' again")
        if file_crc(chunk) != expected:
            raise DatasetError(f"{path}: chunk {key} of array {name} is damaged (checksum "
                               "mismatch); run 'landcover prepare' again")


def compressor():
    """Blosc (lz4, byte shuffle) for the Zarr arrays landcover writes: compresses float32 features
    well and decodes fast."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
