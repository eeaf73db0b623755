"""Tests for noiseveil.data: official formats via tiny files written here, plus the real bundle."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import noiseveil.data as nd
from noiseveil.data import (
    DATASETS,
    DataError,
    ImageDataset,
    bundle,
    fixed_subset,
    load_dataset,
    load_image_folder,
    read_image,
    to_tensor,
    to_uint8,
)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets an empty cache, so no test reads or pollutes ~/.cache/noiseveil."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NOISEVEIL_CACHE", str(cache))
    yield cache
    shutil.rmtree(cache, ignore_errors=True)  # the CIFAR-10 cache alone is ~190 MB


def rng_images(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


# --- writers for the official formats ---------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """idx: two zero bytes, type 0x08 (ubyte), ndim, big-endian uint32 dims, then the data."""
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_idx_folder(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    arrays = {
        "x_train": rng_images(5, 28, 28, 1, seed),
        "y_train": np.array([0, 9, 3, 3, 1]),
        "x_test": rng_images(3, 28, 28, 1, seed + 1),
        "y_test": np.array([7, 2, 0]),
    }
    write_idx(folder / "train-images-idx3-ubyte.gz", arrays["x_train"][..., 0])
    write_idx(folder / "train-labels-idx1-ubyte.gz", arrays["y_train"])
    write_idx(folder / "t10k-images-idx3-ubyte", arrays["x_test"][..., 0])  # plain, not gzipped
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", arrays["y_test"])
    return arrays


def write_svhn(path: Path, images: np.ndarray, digits: np.ndarray) -> None:
    """Official layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    scipy.io.savemat(path, {"X": images.transpose(1, 2, 3, 0), "y": y})


def cifar_pickle(obj: dict) -> bytes:
    # Protocol 2 under the numpy < 2 module name, as in the official (Python 2) files.
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_python_blobs() -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    """Official python batches with 2 images each; returns blobs, x_train (HWC), y_train."""
    images = rng_images(12, 32, 32, 3, seed=5)
    labels = np.arange(12) % 10
    blobs = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        chunk = images[2 * i : 2 * i + 2]
        data = chunk.transpose(0, 3, 1, 2).reshape(2, 3072)  # row: 1024 R, 1024 G, 1024 B
        batch = {b"batch_label": name.encode(), b"labels": labels[2 * i : 2 * i + 2].tolist()}
        blobs[name] = cifar_pickle({**batch, b"data": data})
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    blobs["batches.meta"] = cifar_pickle(meta)
    return blobs, images, labels


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array, mode).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(rgb: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), rgb).save(buf, "JPEG", quality=75)
    return buf.getvalue()


# --- idx (MNIST, Fashion-MNIST) ----------------------------------------------------------------


def test_mnist_idx_folder_round_trips(tmp_path: Path) -> None:
    expected = write_idx_folder(tmp_path / "mnist")
    ds = load_dataset("mnist", root=tmp_path)
    for key, value in expected.items():
        np.testing.assert_array_equal(getattr(ds, key), value)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.classes == tuple("0123456789") and ds.image_shape == (28, 28, 1)
    assert ds.source_id.startswith("mnist-idx:sha256:")


def test_mnist_npz_is_preferred_over_idx_folder(tmp_path: Path) -> None:
    write_idx_folder(tmp_path / "mnist")
    x = rng_images(2, 28, 28, 1)
    y = np.array([1, 2])
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y, classes=list("0123456789"))
    ds = load_dataset("mnist", root=tmp_path)
    np.testing.assert_array_equal(ds.x_train, x)
    digest = hashlib.sha256((tmp_path / "mnist.npz").read_bytes()).hexdigest()
    assert ds.source_id == f"mnist.npz:sha256:{digest[:16]}"


def test_fashion_mnist_folder_in_root(tmp_path: Path) -> None:
    expected = write_idx_folder(tmp_path / "fashion-mnist", seed=3)
    ds = load_dataset("fashion-mnist", root=tmp_path)
    np.testing.assert_array_equal(ds.x_test, expected["x_test"])
    np.testing.assert_array_equal(ds.y_train, expected["y_train"])
    assert ds.classes[0] == "T-shirt/top" and ds.classes[-1] == "Ankle boot"


def test_fashion_mnist_missing_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bundle, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00\x08\x01\x00\x00\x00\x05ab", "implies 13"),  # 5 labels promised, 2 present
        (b"\x08\x03\x00\x00" + bytes(16), "bad magic"),
        (b"\x00\x00\x08\x03\x00", "truncated idx header"),
    ],
)
def test_idx_malformed(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message):
        nd.formats.read_idx(path)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x-idx1-ubyte.gz"
    write_idx(path, np.arange(1000) % 10)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="not a readable idx file"):
        nd.formats.read_idx(path)


# --- SVHN --------------------------------------------------------------------------------------


def test_svhn_official_mat_round_trips(tmp_path: Path) -> None:
    x_train, x_test = rng_images(4, 32, 32, 3, seed=1), rng_images(2, 32, 32, 3, seed=2)
    write_svhn(tmp_path / "train_32x32.mat", x_train, np.array([0, 1, 9, 0]))
    write_svhn(tmp_path / "test_32x32.mat", x_test, np.array([5, 0]))
    ds = load_dataset("svhn", root=tmp_path)
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    # Label 10 in the file is the digit 0.
    assert ds.y_train.tolist() == [0, 1, 9, 0] and ds.y_test.tolist() == [5, 0]
    mat = scipy.io.loadmat(tmp_path / "train_32x32.mat")
    assert mat["y"][0, 0] == 10 and ds.x_train[2, 7, 30, 1] == mat["X"][7, 30, 1, 2]
    assert ds.classes == tuple("0123456789")


def test_svhn_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train_32x32.mat, test_32x32.mat not found"):
        load_dataset("svhn", root=tmp_path)
    (tmp_path / "train_32x32.mat").write_text("not matlab")
    write_svhn(tmp_path / "test_32x32.mat", rng_images(1, 32, 32, 3), np.array([1]))
    with pytest.raises(DataError, match="train_32x32.mat: not a readable SVHN .mat file"):
        load_dataset("svhn", root=tmp_path)


# --- CIFAR-10 ------------------------------------------------------------------------------------


def test_cifar_python_folder_chw_to_hwc(tmp_path: Path) -> None:
    blobs, images, labels = cifar_python_blobs()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    ds = load_dataset("cifar10", root=tmp_path)
    np.testing.assert_array_equal(ds.x_train, images[:10])
    np.testing.assert_array_equal(ds.x_test, images[10:])
    assert ds.y_train.tolist() == labels[:10].tolist() and ds.y_test.tolist() == [0, 1]
    # Direct check of the layout: data row = 1024 red, then green, then blue values, row-major.
    data = pickle.loads(blobs["data_batch_2"], encoding="bytes")[b"data"]
    assert ds.x_train[3, 5, 7, 2] == data[1, 2 * 1024 + 5 * 32 + 7]
    assert ds.x_train[2, 31, 0, 0] == data[0, 31 * 32]
    assert ds.classes == CIFAR10_CLASSES
    assert ds.source_id.startswith("cifar-10-batches-py:sha256:")


def test_cifar_python_tar_matches_folder(tmp_path: Path) -> None:
    blobs, images, _ = cifar_python_blobs()
    members = {f"cifar-10-batches-py/{n}": b for n, b in blobs.items()}
    write_tar(tmp_path / "cifar-10-python.tar.gz", {**members, "cifar-10-batches-py/readme.html": b"x"})
    ds = load_dataset("cifar10", root=tmp_path)
    np.testing.assert_array_equal(ds.x_train, images[:10])
    assert ds.source_id.startswith("cifar-10-python.tar.gz:sha256:")


def test_cifar_python_missing_batch(tmp_path: Path) -> None:
    blobs, _, _ = cifar_python_blobs()
    del blobs["data_batch_3"]
    write_tar(tmp_path / "cifar-10-python.tar.gz", blobs)
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_dataset("cifar10", root=tmp_path)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    blobs, _, _ = cifar_python_blobs()
    marker = tmp_path / "pwned"
    blobs["test_batch"] = pickle.dumps({b"data": _RunsCode(marker)}, protocol=2)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for name, blob in blobs.items():
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(blob)
    with pytest.raises(DataError, match="refusing to load global"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


def test_cifar_jpeg_tar_labels_order_and_preference(tmp_path: Path) -> None:
    colours = {"cat": (200, 30, 30), "airplane": (10, 220, 40), "truck": (0, 0, 250)}
    members = {
        "train/cat/0000.jpg": jpeg_bytes(colours["cat"]),
        "train/airplane/0001.jpg": jpeg_bytes(colours["airplane"]),
        "train/airplane/0000.jpg": jpeg_bytes(colours["airplane"]),
        "train/README.txt": b"ignored",
        "test/truck/0000.jpg": jpeg_bytes(colours["truck"]),
    }
    write_tar(tmp_path / "cifar10.tar.gz", members)
    (tmp_path / "cifar-10-batches-py").mkdir()  # the JPEG bundle wins over the python release
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.source_id.startswith("cifar10.tar.gz:sha256:")
    assert ds.y_train.tolist() == [0, 0, 3] and ds.y_test.tolist() == [9]  # official indices
    assert ds.classes == CIFAR10_CLASSES and ds.x_train.shape == (3, 32, 32, 3)
    decoded = read_image_bytes(tmp_path, members["train/cat/0000.jpg"])
    np.testing.assert_array_equal(ds.x_train[2], decoded)
    assert np.abs(ds.x_test[0].astype(int) - colours["truck"]).max() <= 3


def read_image_bytes(tmp_path: Path, blob: bytes) -> np.ndarray:
    path = tmp_path / "one.jpg"
    path.write_bytes(blob)
    return read_image(path)


def test_cifar_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar10: none of cifar10.tar.gz"):
        load_dataset("cifar10", root=tmp_path)


# --- cache ---------------------------------------------------------------------------------------


def write_tiny_svhn(root: Path, seed: int = 0) -> None:
    write_svhn(root / "train_32x32.mat", rng_images(3, 32, 32, 3, seed), np.array([1, 2, 10]))
    write_svhn(root / "test_32x32.mat", rng_images(1, 32, 32, 3, seed + 1), np.array([4]))


def test_decoded_datasets_are_cached(tmp_path: Path, private_cache: Path, monkeypatch, capsys) -> None:
    write_tiny_svhn(tmp_path)
    first = load_dataset("svhn", root=tmp_path)
    assert [p.suffix for p in private_cache.iterdir()] == [".npz"]  # no temporary file left over
    # the decoding (tens of seconds for CIFAR-10) is said, not silent (issue 27); a cached load is quiet
    said = capsys.readouterr().err.splitlines()
    assert said[0] == f"svhn: decoding the dataset into the cache {next(private_cache.iterdir())} (once) ..."
    assert said[1].startswith("svhn: decoded in ") and len(said) == 2

    def fail(*_: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(bundle, "read_svhn_dataset", fail)
    second = load_dataset("svhn", root=tmp_path)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(second.x_train, first.x_train)
    assert second.source_id == first.source_id

    write_tiny_svhn(tmp_path, seed=7)  # new source bytes -> new cache key -> decoded again
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("svhn", root=tmp_path)


def test_broken_or_unwritable_cache_only_warns(tmp_path: Path, private_cache, monkeypatch) -> None:
    write_tiny_svhn(tmp_path)
    expected = load_dataset("svhn", root=tmp_path)
    (cache_file,) = private_cache.iterdir()
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        ds = load_dataset("svhn", root=tmp_path)
    np.testing.assert_array_equal(ds.x_train, expected.x_train)
    assert np.load(cache_file)["x_train"].shape == (3, 32, 32, 3)  # rewritten

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("NOISEVEIL_CACHE", str(not_a_dir))
    with pytest.warns(UserWarning, match="could not write cache"):
        ds = load_dataset("svhn", root=tmp_path)
    np.testing.assert_array_equal(ds.y_train, [1, 2, 0])


# --- dispatch and locations ----------------------------------------------------------------------


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(DataError, match="known: mnist, fashion-mnist, cifar10, lfw, olivetti, svhn"):
        load_dataset("imagenet")
    assert DATASETS == ("mnist", "fashion-mnist", "cifar10", "lfw", "olivetti", "svhn")


@pytest.mark.parametrize("name", ["lfw", "olivetti", "mnist"])
def test_missing_bundle_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match=f"{name}"):
        load_dataset(name, root=tmp_path)


def test_bad_npz(tmp_path: Path) -> None:
    (tmp_path / "lfw.npz").write_text("nope")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset("lfw", root=tmp_path)
    np.savez(tmp_path / "olivetti.npz", x_train=np.zeros((1, 2, 2, 1), np.uint8))
    with pytest.raises(DataError, match="missing arrays y_train, x_test, y_test, classes"):
        load_dataset("olivetti", root=tmp_path)


def test_data_dir_default_and_env_override(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NOISEVEIL_DATA", raising=False)
    repo_root = Path(nd.__file__).resolve().parents[2]
    assert nd.data_dir() == repo_root.parent / "shared" / "data"
    monkeypatch.setenv("NOISEVEIL_DATA", str(tmp_path))
    assert nd.data_dir() == tmp_path
    write_tiny_svhn(tmp_path)
    assert load_dataset("svhn").y_train.tolist() == [1, 2, 0]


def test_an_installed_package_reads_the_per_user_data_folder(tmp_path: Path, monkeypatch) -> None:
    """Outside a checkout (a wheel) there is no ../shared/data: the per-user folder is the default."""
    monkeypatch.delenv("NOISEVEIL_DATA", raising=False)
    monkeypatch.setattr(bundle, "source_checkout", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "xdg" / "noiseveil" / "data"
    assert nd.data_dir() == folder
    with pytest.raises(DataError) as missing:  # no folder at all: where to put the bundle, both ways
        load_dataset("lfw")
    message = str(missing.value)
    assert "\n" not in message and "$NOISEVEIL_DATA" in message and str(folder) in message
    folder.mkdir(parents=True)
    with pytest.raises(DataError, match=r"lfw\.npz not found.*\$NOISEVEIL_DATA"):
        load_dataset("lfw")
    write_tiny_svhn(folder)
    assert load_dataset("svhn").y_train.tolist() == [1, 2, 0]


def test_cache_dir_default_and_env_override(tmp_path: Path, monkeypatch) -> None:
    assert nd.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("NOISEVEIL_CACHE")
    assert nd.cache_dir() == Path.home() / ".cache" / "noiseveil"


# --- single images and folders -------------------------------------------------------------------


def test_read_image_modes(tmp_path: Path) -> None:
    grey = rng_images(1, 5, 7, 1)[0]
    rgb = rng_images(1, 5, 7, 3, seed=1)[0]
    rgba = rng_images(1, 5, 7, 4, seed=2)[0]
    for name, array in (("grey.png", grey), ("rgb.png", rgb), ("rgba.png", rgba)):
        (tmp_path / name).write_bytes(png_bytes(array))
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png"), grey)  # (5, 7, 1)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba[..., :3])  # alpha dropped
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png", channels=3), grey.repeat(3, -1))
    expected_l = np.array(Image.fromarray(rgb).convert("L"))[..., None]
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png", channels=1), expected_l)

    palette = Image.fromarray(rgb).quantize(4)
    palette.save(tmp_path / "palette.PNG")
    np.testing.assert_array_equal(read_image(tmp_path / "palette.PNG"), np.array(palette.convert("RGB")))
    with pytest.raises(ValueError, match="channels"):
        read_image(tmp_path / "rgb.png", channels=4)


def test_read_image_rejects_non_images(tmp_path: Path, monkeypatch) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello")
    truncated = tmp_path / "cut.png"
    blob = png_bytes(rng_images(1, 64, 64, 3)[0])
    truncated.write_bytes(blob[: len(blob) // 2])
    for path in (text, truncated, tmp_path / "missing.png"):
        with pytest.raises(DataError, match=r"^.*: not a readable image \(") as info:
            read_image(path)
        assert str(info.value).startswith(f"{path}: not a readable image (")
        assert "\n" not in str(info.value)

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 * 64 > 2 * 100: a "bomb"
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(blob)
    with pytest.raises(DataError, match="not a readable image"):
        read_image(bomb)


def make_files(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # listing must not decode, so empty files are fine


def test_image_folder_flat(tmp_path: Path) -> None:
    make_files(tmp_path, ["b.JPG", "a.png", "sub/c.jpeg", "notes.txt", ".hidden.png", "x.gif"])
    files, labels, classes = load_image_folder(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.png", "b.JPG", "sub/c.jpeg"]
    assert labels is None and classes == ()


def test_image_folder_with_class_subfolders(tmp_path: Path) -> None:
    make_files(tmp_path, ["dog/1.png", "cat/2.jpg", "cat/1.PNG", "cat/._1.jpg", "empty/x.txt"])
    files, labels, classes = load_image_folder(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "cat/1.PNG",
        "cat/2.jpg",
        "dog/1.png",
    ]
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 1] and classes == ("cat", "dog")

    _, labels, classes = load_image_folder(tmp_path, classes=["dog", "bird", "cat"])
    assert labels.tolist() == [2, 2, 0] and classes == ("dog", "bird", "cat")
    with pytest.raises(DataError, match="not in the given classes: dog"):
        load_image_folder(tmp_path, classes=["cat"])


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no PNG or JPEG files"):
        load_image_folder(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        load_image_folder(tmp_path / "absent")


# --- tensors, subsets, the dataset record --------------------------------------------------------


def test_tensor_round_trip_is_exact() -> None:
    x = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1).repeat(3, -1)
    x[..., 1] = 255 - x[..., 1]
    t = to_tensor(x)
    assert t.dtype == torch.float32 and t.shape == (4, 3, 8, 8) and t.is_contiguous()
    assert t.min() == 0.0 and t.max() == 1.0 and t[0, 1, 0, 0] == 1.0
    np.testing.assert_array_equal(to_uint8(t), x)
    np.testing.assert_array_equal(to_uint8(t.half()), x)
    readonly = x.copy()
    readonly.flags.writeable = False
    assert torch.equal(to_tensor(readonly), t)


def test_to_uint8_rounds_and_clamps() -> None:
    t = torch.tensor([-0.5, 0.0, 0.3 / 255, 0.6 / 255, 1.0, 7.0, float("nan")]).view(1, 1, 1, 7)
    assert to_uint8(t).ravel().tolist() == [0, 0, 0, 1, 255, 255, 0]
    with pytest.raises(ValueError):
        to_tensor(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError):
        to_tensor(np.zeros((1, 2, 2, 3), np.float32))


def test_fixed_subset_is_the_documented_rule() -> None:
    idx = fixed_subset(1000, 50, seed=3)
    np.testing.assert_array_equal(idx, np.sort(np.random.default_rng(3).permutation(1000)[:50]))
    assert idx.dtype == np.int64 and len(set(idx.tolist())) == 50
    np.testing.assert_array_equal(fixed_subset(1000, 50, seed=3), idx)
    assert not np.array_equal(fixed_subset(1000, 50), idx)
    np.testing.assert_array_equal(fixed_subset(5, 9), np.arange(5))


def test_image_dataset_record() -> None:
    x = np.zeros((3, 4, 5, 3), np.uint8)
    y = np.array([0, 1, 1])
    ds = ImageDataset("toy", x, y, x[:1], y[:1], ("a", "b"), "toy:sha256:0")
    assert ds.image_shape == (4, 5, 3) and ds.num_classes == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(DataError, match="labels outside 0..1"):
        ImageDataset("toy", x, np.array([0, 1, 2]), x, y, ("a", "b"), "")
    with pytest.raises(DataError, match="x_test must be uint8"):
        ImageDataset("toy", x, y, x.astype(np.float32), y, ("a", "b"), "")
    with pytest.raises(DataError, match="y_train must be int64"):
        ImageDataset("toy", x, y.astype(np.int32), x, y, ("a", "b"), "")


# --- the real bundle (skipped when it is not on this machine) -----------------------------------


def bundle_file(name: str) -> Path:
    path = nd.data_dir() / name
    if not path.is_file():
        pytest.skip(f"{path} not present (point NOISEVEIL_DATA at the data bundle)")
    return path


def content_sha256(ds: ImageDataset) -> str:
    """The data README's content hash, over the arrays as loaded."""
    h = hashlib.sha256()
    arrays = (ds.x_train, ds.y_train, ds.x_test, ds.y_test, np.array(ds.classes))
    for key, a in zip(("x_train", "y_train", "x_test", "y_test", "classes"), arrays, strict=True):
        a = np.ascontiguousarray(a)
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("name", "n_train", "n_test", "shape", "n_classes", "file_sha", "content_sha"),
    [
        ("mnist", 14262, 10000, (28, 28, 1), 10, "ea19279eb376de77", "988d5852ea61e13d"),
        ("lfw", 2442, 581, (64, 64, 3), 62, "d14466fd22def981", "f5e3f7f25c61a563"),
        ("olivetti", 320, 80, (64, 64, 1), 40, "06cf7a6cf6fe1574", "dad95c0dcd2da927"),
    ],
)
def test_real_npz_bundle(name, n_train, n_test, shape, n_classes, file_sha, content_sha) -> None:
    bundle_file(f"{name}.npz")
    ds = load_dataset(name)
    assert (len(ds.x_train), len(ds.x_test), ds.image_shape) == (n_train, n_test, shape)
    assert ds.num_classes == n_classes and ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and set(np.unique(ds.y_test)) == set(range(n_classes))
    assert ds.source_id == f"{name}.npz:sha256:{file_sha}"
    assert content_sha256(ds).startswith(content_sha)


def test_real_cifar10_and_its_cache() -> None:
    path = bundle_file("cifar10.tar.gz")
    start = time.perf_counter()
    ds = load_dataset("cifar10")
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = load_dataset("cifar10")
    warm = time.perf_counter() - start

    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert ds.classes == CIFAR10_CLASSES and ds.source_id == "cifar10.tar.gz:sha256:0bfcb68717a0ecb0"
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert warm < cold / 3, (cold, warm)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, key), getattr(ds, key))
    # Sorted by official class index, then file number: spot-check against the tar members,
    # in one streaming pass (random access into a .tar.gz re-decompresses from the start).
    wanted = {
        "test/automobile/0001.jpg": ds.x_test[1001],
        "train/airplane/0000.jpg": ds.x_train[0],
        "train/truck/4999.jpg": ds.x_train[-1],
    }
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            if member.name in wanted:
                pil = Image.open(tar.extractfile(member)).convert("RGB")
                np.testing.assert_array_equal(np.array(pil), wanted.pop(member.name))
    assert not wanted
    print(f"cifar10: cold load {cold:.1f} s, cached load {warm:.2f} s")


def test_real_fashion_mnist() -> None:
    if bundle.find_idx_files(bundle.FASHION_MNIST_SYSTEM_DIR) is None:
        pytest.skip("dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)")
    ds = load_dataset("fashion-mnist", root=Path("/nonexistent"))
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
