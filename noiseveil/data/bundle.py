"""Where the data lives, and `load_dataset`, which picks the reader for each dataset."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from noiseveil.locations import source_checkout, user_data_home

from .cache import cached_arrays, source_id
from .dataset import ARRAY_KEYS, Arrays, ImageDataset
from .errors import DataError, DataNotFound
from .formats import (
    CIFAR_PYTHON_FILES,
    find_idx_files,
    read_cifar_jpeg_tar,
    read_cifar_python,
    read_idx_dataset,
    read_svhn_dataset,
)

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "lfw", "olivetti", "svhn")
# Where Debian's dataset-fashion-mnist package installs the idx files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DIGITS = tuple(str(d) for d in range(10))


def user_data_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/noiseveil/data`` (``~/.local/share/...``)."""
    return user_data_home() / "data"


def data_dir() -> Path:
    """Where datasets are read from: ``$NOISEVEIL_DATA`` if set; else, in a source checkout, the
    shared bundle beside it (``../shared/data``) if present; else the per-user data folder."""
    env = os.environ.get("NOISEVEIL_DATA")
    if env:
        return Path(env).expanduser()
    checkout = source_checkout()
    if checkout is not None and (checkout.parent / "shared" / "data").is_dir():
        return checkout.parent / "shared" / "data"
    return user_data_dir()


def load_dataset(name: str, root: Path | None = None) -> ImageDataset:
    """Load one of `DATASETS` from `root` (default `data_dir()`); see each loader for the files."""
    loader = _LOADERS.get(name)
    if loader is None:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if root is not None:
        return loader(Path(root))
    folder = data_dir()
    hint = f"set $NOISEVEIL_DATA to the data bundle's folder or put the bundle in {user_data_dir()}"
    if not folder.is_dir():
        raise DataNotFound(f"{name}: no data folder ({folder} does not exist): {hint}")
    try:
        return loader(folder)
    except DataNotFound as exc:  # say where a user puts the bundle, whichever folder was tried
        raise DataNotFound(f"{exc}; {hint}") from None


def _decoded(
    name: str, files: Sequence[Path], build: Callable[[], Arrays], label: str | None = None
) -> ImageDataset:
    """Dataset decoded by `build` from `files`, through the cache keyed by the files' hashes."""
    sid = source_id(files, label)
    return ImageDataset.from_arrays(name, cached_arrays(name, sid, build), sid)


def _load_npz(name: str, path: Path) -> ImageDataset:
    """A bundle .npz (keys `ARRAY_KEYS`); already decoded, so not cached again."""
    if not path.is_file():
        raise DataNotFound(f"{name}: {path} not found")
    try:
        with np.load(path) as z:
            if missing := [k for k in ARRAY_KEYS if k not in z.files]:
                raise DataError(f"{path}: missing arrays {', '.join(missing)}")
            arrays = {k: z[k] for k in ARRAY_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    return ImageDataset.from_arrays(name, arrays, source_id([path]))


def _load_mnist(root: Path) -> ImageDataset:
    """root/mnist.npz, else the official idx files in root/mnist/."""
    if (root / "mnist.npz").is_file():
        return _load_npz("mnist", root / "mnist.npz")
    files = find_idx_files(root / "mnist")
    if files is None:
        raise DataNotFound(f"mnist: neither {root / 'mnist.npz'} nor the idx files in {root / 'mnist'}")
    return _decoded("mnist", files, lambda: read_idx_dataset(files, DIGITS), "mnist-idx")


def _load_fashion_mnist(root: Path) -> ImageDataset:
    """idx files in root/fashion-mnist/ if that folder exists, else the Debian package's."""
    folder = root / "fashion-mnist"
    if not folder.is_dir():
        folder = FASHION_MNIST_SYSTEM_DIR
    files = find_idx_files(folder)
    if files is None:
        raise DataError(
            f"fashion-mnist: idx files not found in {folder}; "
            "install them with `apt-get install dataset-fashion-mnist`"
        )
    build = lambda: read_idx_dataset(files, FASHION_MNIST_CLASSES)  # noqa: E731
    return _decoded("fashion-mnist", files, build, "fashion-mnist-idx")


def _load_cifar10(root: Path) -> ImageDataset:
    """root/cifar10.tar.gz (JPEG bundle, preferred), else the official python release."""
    jpeg = root / "cifar10.tar.gz"
    tar = root / "cifar-10-python.tar.gz"
    folder = root / "cifar-10-batches-py"
    if jpeg.is_file():
        return _decoded("cifar10", [jpeg], lambda: read_cifar_jpeg_tar(jpeg))
    if tar.is_file():
        return _decoded("cifar10", [tar], lambda: read_cifar_python(tar))
    if folder.is_dir():
        files = [folder / n for n in CIFAR_PYTHON_FILES]
        if missing := [f.name for f in files if not f.is_file()]:
            raise DataError(f"cifar10: {folder} lacks {', '.join(missing)}")
        return _decoded("cifar10", files, lambda: read_cifar_python(folder), "cifar-10-batches-py")
    raise DataNotFound(f"cifar10: none of {jpeg.name}, {tar.name} or {folder.name}/ in {root}")


def _load_svhn(root: Path) -> ImageDataset:
    """The official root/train_32x32.mat and root/test_32x32.mat (extra_32x32.mat is ignored)."""
    files = [root / "train_32x32.mat", root / "test_32x32.mat"]
    if missing := [f.name for f in files if not f.is_file()]:
        raise DataNotFound(f"svhn: {', '.join(missing)} not found in {root}")
    return _decoded("svhn", files, lambda: read_svhn_dataset(*files), "svhn-32x32.mat")


_LOADERS: dict[str, Callable[[Path], ImageDataset]] = {
    "mnist": _load_mnist,
    "fashion-mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
    "lfw": lambda root: _load_npz("lfw", root / "lfw.npz"),
    "olivetti": lambda root: _load_npz("olivetti", root / "olivetti.npz"),
    "svhn": _load_svhn,
}
