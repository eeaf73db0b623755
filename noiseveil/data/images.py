"""Single images and folders of PNG/JPEG files."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_GREY_MODES = frozenset({"1", "L", "LA"})
# Photographs bundled with scikit-image (no download): images from outside every dataset.
NATURAL_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "horse")
# Real photographs that installed packages ship as files, at their native sizes (300x451 to
# 1411x1411; colour and grey, PNG and JPEG): scikit-image's data folder (no download needed for
# these) and matplotlib's sample data. Drawings, binary masks and synthetic images are left out.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "coins.png",
    "moon.png",
    "cell.png",
)

# What Pillow raises for missing, non-image, corrupt or truncated files (SyntaxError and
# struct.error come from some format plugins on malformed headers).
_PIL_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


def decode_image(source: Path | BinaryIO, channels: int | None, where: str) -> np.ndarray:
    """Decode one image to uint8 (H, W, C); `where` names it in the error message."""
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    try:
        with Image.open(source) as img:
            img.load()  # Pillow decodes lazily: a truncated file only fails here
            grey = channels == 1 or (channels is None and img.mode in _GREY_MODES)
            # A phone's JPEG stores the sensor's rows and says how to turn them (EXIF
            # Orientation): the image is what a viewer shows, so the turn is applied first.
            upright = ImageOps.exif_transpose(img)
            pixels = np.array(upright.convert("L" if grey else "RGB"), dtype=np.uint8)
    except _PIL_ERRORS as exc:
        raise DataError(f"{where}: not a readable image ({exc})") from exc
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)  # grey (H, W) -> (H, W, 1)


def read_image(path: Path, channels: int | None = None) -> np.ndarray:
    """Decode an image file to uint8 (H, W, C).

    channels=1 gives grey ("L"), 3 gives RGB, None keeps grey images as one channel and converts
    everything else (palette, RGBA, CMYK, ...) to RGB. Alpha is dropped.
    """
    return decode_image(Path(path), channels, str(path))


def load_image_folder(
    path: Path, classes: Sequence[str] | None = None
) -> tuple[list[Path], np.ndarray | None, tuple[str, ...]]:
    """List the PNG/JPEG files under `path` (recursively, sorted) without decoding them.

    If every file sits in a direct subfolder of `path`, the subfolder is its class: labels are
    indices into `classes` if given, else into the sorted names of the subfolders holding images
    (pass `classes` when a split may lack some classes, so the indices match the training set).
    Otherwise labels is None. Hidden files and folders (".*", e.g. macOS "._x.jpg") are skipped.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    found = [(rel, file) for rel, file in _visible_files(path) if file.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise DataError(f"{path}: no PNG or JPEG files")
    found.sort(key=lambda item: item[0])  # by path components, so "a/b" sorts before "a-b"
    files = [file for _, file in found]
    if any(len(rel) != 2 for rel, _ in found):
        return files, None, tuple(classes or ())

    folders = [rel[0] for rel, _ in found]
    names = tuple(classes) if classes is not None else tuple(sorted(set(folders)))
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise DataError(f"{path}: class folders not in the given classes: {', '.join(unknown)}")
    index = {name: i for i, name in enumerate(names)}
    return files, np.array([index[f] for f in folders], dtype=np.int64), names


def non_image_files(path: Path) -> list[Path]:
    """The files under the folder ``path`` that :func:`load_image_folder` leaves out for their
    suffix (not PNG or JPEG), sorted; hidden ones, which it skips as not the user's, aside."""
    found = [(rel, f) for rel, f in _visible_files(Path(path)) if f.suffix.lower() not in IMAGE_SUFFIXES]
    return [file for _, file in sorted(found, key=lambda item: item[0])]


def _visible_files(path: Path) -> Iterator[tuple[tuple[str, ...], Path]]:
    """(path components relative to ``path``, file) of every file under ``path`` that is not
    hidden (no ".*" component, e.g. macOS "._x.jpg" or an interrupted write's ".x.png.tmp")."""
    for file in path.rglob("*"):
        rel = file.relative_to(path).parts
        if not any(part.startswith(".") for part in rel) and file.is_file():
            yield rel, file


def conform(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Centre-crop to square if needed, resize (bicubic) and convert channels to ``shape``."""
    h, w, c = shape
    out = []
    for img in images:
        pil = Image.fromarray(img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img)
        side = min(pil.size)
        left, top = (pil.size[0] - side) // 2, (pil.size[1] - side) // 2
        pil = pil.crop((left, top, left + side, top + side)).convert("L" if c == 1 else "RGB")
        if pil.size != (w, h):
            pil = pil.resize((w, h), Image.Resampling.BICUBIC)
        arr = np.asarray(pil)
        out.append(arr[..., None] if c == 1 else arr)
    return np.stack(out)


def sample_photos() -> dict[str, Path]:
    """The real photographs installed packages ship (:data:`SKIMAGE_PHOTOS` and matplotlib's
    Grace Hopper portrait), by name, as files: what a user's own photos look like to noiseveil."""
    import matplotlib.cbook
    import skimage.data

    photos = {Path(name).stem: Path(skimage.data.data_dir) / name for name in SKIMAGE_PHOTOS}
    photos["grace_hopper"] = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    missing = [str(p) for p in photos.values() if not p.is_file()]
    if missing:
        raise DataError(f"sample photos missing from the installed packages: {', '.join(missing)}")
    return photos


# The "dataset" of models made for photos of any size (ric-imagenet, a user's cards): real
# photos at their native sizes, without ground-truth labels.
PHOTOS = "photos"


def load_photos(folder: Path | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 HxWxC) of every photo in ``folder`` (any sizes), or of :func:`sample_photos`."""
    if folder is None:
        return [(name, read_image(path)) for name, path in sample_photos().items()]
    files, _, _ = load_image_folder(folder)
    return [(str(f.relative_to(folder)), read_image(f)) for f in files]


def same_size_batch(images: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Up to ``n`` images of the size most of ``images`` share, stacked (one tensor, one size)."""
    shapes = [img.shape for img in images]
    common = max(set(shapes), key=shapes.count)
    return np.stack([img for img in images if img.shape == common][:n])


def natural_images() -> list[np.ndarray]:
    """Photographs bundled with scikit-image (no download)."""
    import skimage.data

    return [getattr(skimage.data, name)() for name in NATURAL_IMAGES]
