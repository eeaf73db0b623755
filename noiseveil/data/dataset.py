"""The in-memory dataset record shared by every loader, and a reproducible subset rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DataError

# Array names of the bundle .npz files; the decode cache uses the same layout.
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")
Arrays = dict[str, np.ndarray]


def pack_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: Sequence[str],
) -> Arrays:
    """Bundle a decoded dataset into the .npz layout (classes as a unicode array)."""
    values = (x_train, y_train, x_test, y_test, np.array(classes, dtype=str))
    return dict(zip(ARRAY_KEYS, values, strict=True))


# eq=False: field-wise == on numpy arrays raises, so datasets compare (and hash) by identity.
@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A train/test split of uint8 images, channels-last, with int64 labels indexing `classes`."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source_id: str

    def __post_init__(self) -> None:
        # Checking once here means no experiment has to guess at dtypes or layouts later.
        shape = self.x_train.shape[1:]
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] not in (1, 3) or x.shape[1:] != shape:
                raise DataError(
                    f"{self.name}: x_{split} must be uint8 (N, H, W, 1 or 3) matching x_train, "
                    f"got {x.dtype} {x.shape}"
                )
            if y.dtype != np.int64 or y.shape != x.shape[:1]:
                raise DataError(f"{self.name}: y_{split} must be int64 ({len(x)},), got {y.dtype} {y.shape}")
            if y.size and (y.min() < 0 or y.max() >= len(self.classes)):
                raise DataError(f"{self.name}: y_{split} has labels outside 0..{len(self.classes) - 1}")

    @classmethod
    def from_arrays(cls, name: str, arrays: Arrays, source_id: str) -> ImageDataset:
        """Build from the .npz layout of `ARRAY_KEYS`."""
        x_train, y_train, x_test, y_test, classes = (arrays[k] for k in ARRAY_KEYS)
        return cls(name, x_train, y_train, x_test, y_test, tuple(str(c) for c in classes), source_id)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        h, w, c = self.x_train.shape[1:]
        return (h, w, c)

    @property
    def num_classes(self) -> int:
        """Number of classes, including any without images in this split."""
        return len(self.classes)


def fixed_subset(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a fixed subset: `np.random.default_rng(seed).permutation(n_total)[:n]`.

    Written out so that the subset can be reproduced without this package; `n >= n_total` gives
    every index.
    """
    if n < 0 or n_total < 0:
        raise ValueError(f"fixed_subset needs n >= 0 and n_total >= 0, got {n}, {n_total}")
    if n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n]).astype(np.int64)
