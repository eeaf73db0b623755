"""Readers for the official distribution formats: idx (MNIST, Fashion-MNIST), the SVHN .mat
files, the CIFAR-10 python pickles, and CIFAR-10 as JPEG class folders in a tar."""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .dataset import Arrays, pack_arrays
from .errors import DataError
from .images import IMAGE_SUFFIXES, decode_image

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR_PYTHON_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
# Train images, train labels, test images, test labels: the official MNIST file names.
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# --- idx -------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read one idx file (gzipped if the name ends in .gz) into a native-endian array."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # EOFError: gzip stream cut short
        raise DataError(f"{path}: not a readable idx file ({exc})") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx header")
    shape = struct.unpack(f">{raw[3]}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: idx file has {len(raw)} bytes, its header implies {expected}")
    # astype copies, which also makes the array writable (frombuffer over bytes is read-only).
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_files(folder: Path) -> list[Path] | None:
    """The four idx files of `IDX_STEMS` in folder (.gz preferred), or None if any is missing."""
    files = []
    for stem in IDX_STEMS:
        path = next((p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()), None)
        if path is None:
            return None
        files.append(path)
    return files


def read_idx_dataset(files: Sequence[Path], classes: Sequence[str]) -> Arrays:
    """Decode the four files of `find_idx_files` into a grey (N, H, W, 1) dataset."""
    x_train, y_train, x_test, y_test = (read_idx(p) for p in files)
    for x, y, path in ((x_train, y_train, files[0]), (x_test, y_test, files[2])):
        if x.dtype != np.uint8 or x.ndim != 3 or y.shape != x.shape[:1]:
            raise DataError(f"{path}: expected uint8 (N, H, W) images with N labels")
    return pack_arrays(
        x_train[..., None],
        y_train.astype(np.int64),
        x_test[..., None],
        y_test.astype(np.int64),
        classes,
    )


# --- SVHN ------------------------------------------------------------------------------------


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official SVHN file (train_32x32.mat, ...) -> (N, 32, 32, 3) uint8, (N,) int64.

    The files store X as (32, 32, 3, N) and y as (N, 1) with 10 standing for the digit 0.
    """
    import scipy.io  # here, not at the top: it is most of the file pipeline's import time

    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except (OSError, ValueError, NotImplementedError, scipy.io.matlab.MatReadError) as exc:
        raise DataError(f"{path}: not a readable SVHN .mat file ({exc})") from exc
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: expected X uint8 (32, 32, 3, N) and y (N, 1)")
    labels = y.reshape(-1).astype(np.int64)
    if labels.shape != x.shape[3:] or labels.min(initial=1) < 1 or labels.max(initial=1) > 10:
        raise DataError(f"{path}: expected {x.shape[3]} labels in 1..10")
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels


def read_svhn_dataset(train: Path, test: Path) -> Arrays:
    """Decode train_32x32.mat and test_32x32.mat; classes are the digits "0".."9"."""
    return pack_arrays(*read_svhn_mat(train), *read_svhn_mat(test), [str(d) for d in range(10)])


# --- CIFAR-10 --------------------------------------------------------------------------------


def _iter_tar_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(member name, contents) of each regular file, in one sequential pass over the archive."""
    try:
        with tarfile.open(path, "r|*") as tar:  # stream mode: never seeks back in the gzip
            for member in tar:
                if member.isfile():
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable tar archive ({exc})") from exc


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only containers and numpy arrays: a pickle may otherwise run any code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # pickles written with numpy < 2
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),  # Python 3 writes bytes this way under protocol 2
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:  # corrupt pickles raise almost any exception type
        raise DataError(f"{where}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR-10 python batch (no dict)")
    return obj


def _cifar_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3072) rows of 1024 red, then green, then blue values -> (N, 32, 32, 3)."""
    batch = _unpickle(blob, where)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        raise DataError(f"{where}: expected b'data' uint8 (N, 3072)")
    if labels is None or len(labels) != len(data):
        raise DataError(f"{where}: expected {len(data)} b'labels'")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


def read_cifar_python(source: Path) -> Arrays:
    """The official python release, as cifar-10-python.tar.gz or its cifar-10-batches-py folder."""
    if source.is_dir():
        blobs = {n: p.read_bytes() for n in CIFAR_PYTHON_FILES if (p := source / n).is_file()}
    else:  # the official tar nests them in cifar-10-batches-py/; match on the base name
        wanted = set(CIFAR_PYTHON_FILES)
        blobs = {
            base: blob
            for name, blob in _iter_tar_files(source)
            if (base := name.rsplit("/", 1)[-1]) in wanted
        }
    missing = [n for n in CIFAR_PYTHON_FILES if n not in blobs]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)}")
    train = [_cifar_batch(blobs[n], f"{source}/{n}") for n in CIFAR_PYTHON_FILES[:5]]
    x_test, y_test = _cifar_batch(blobs["test_batch"], f"{source}/test_batch")
    names = _unpickle(blobs["batches.meta"], f"{source}/batches.meta").get(b"label_names")
    if not names:
        raise DataError(f"{source}/batches.meta: no b'label_names'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return pack_arrays(x_train, y_train, x_test, y_test, classes)


def read_cifar_jpeg_tar(path: Path) -> Arrays:
    """CIFAR-10 as <split>/<class>/NNNN.jpg in a tar; ordered by official class index, then name.

    Labels come from the folder name via the official class order (airplane=0 ... truck=9), not
    from the alphabetical folder order, so they match the official release.
    """
    splits: dict[str, list[tuple[int, str, np.ndarray]]] = {"train": [], "test": []}
    for name, blob in _iter_tar_files(path):
        parts = name.split("/")
        if len(parts) < 3 or parts[-3] not in splits or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue  # stray files such as READMEs
        split, cls, file = parts[-3:]
        if cls not in CIFAR10_CLASSES:
            raise DataError(f"{path}: unknown CIFAR-10 class folder {name!r}")
        image = decode_image(io.BytesIO(blob), 3, f"{path}:{name}")
        if image.shape != (32, 32, 3):
            raise DataError(f"{path}:{name}: expected 32x32 pixels, got {image.shape[:2]}")
        splits[split].append((CIFAR10_CLASSES.index(cls), file, image))

    arrays = []
    for split, items in splits.items():
        if not items:
            raise DataError(f"{path}: no {split}/<class>/*.jpg images")
        items.sort(key=lambda item: item[:2])
        arrays += [
            np.stack([im for _, _, im in items]),
            np.array([c for c, _, _ in items], np.int64),
        ]
    return pack_arrays(*arrays, CIFAR10_CLASSES)
